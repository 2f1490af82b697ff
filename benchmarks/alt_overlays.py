"""A second, independent clutter generator, used only for measuring (never for training).

It shares no code with `signver.overlays`: text is OpenCV's Hershey vector fonts (a glyph
renderer and typefaces the cleaner never saw), lines, boxes and stamps are drawn with OpenCV
primitives, ink is combined by taking the darker pixel rather than by multiplying, and the
scan is degraded with its own choices (box blur, salt-and-pepper, unsharp masking, WebP or
JPEG). A cleaner tuned to one generator's look would show it here.
"""

from __future__ import annotations

import cv2
import numpy as np

HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
           cv2.FONT_HERSHEY_TRIPLEX, cv2.FONT_HERSHEY_COMPLEX_SMALL)
PHRASES = ("Name of signatory", "Signed and delivered", "Managing Director", "Chief Accountant", "Customer copy",
           "Payee", "Date", "Seal of the company", "Specimen signature", "Guarantor", "Borrower", "Lessee",
           "Ref. No. 4471/B", "Tel. 555-0199", "Page 2 of 3", "Official use only", "Stamp & signature")


def _text(canvas: np.ndarray, rng: np.random.Generator, text: str, x: int, y: int, height: float, grey: int) -> None:
    face = HERSHEY[rng.integers(len(HERSHEY))] | (cv2.FONT_ITALIC if rng.random() < 0.2 else 0)
    (_, base_h), _ = cv2.getTextSize("Hg", face, 1.0, 1)
    scale = max(0.25, height / max(1, base_h))
    thickness = max(1, int(round(scale * rng.uniform(0.6, 2.0))))
    cv2.putText(canvas, text, (x, y), face, scale, grey, thickness, cv2.LINE_AA)


def alt_clutter(signature: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The dirty crop and its target (the signature alone on white), from an independent recipe."""
    rng = np.random.default_rng([seed, 7919])
    sig = signature.copy()
    smooth = cv2.GaussianBlur(sig, (3, 3), 0)
    threshold, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    sig[smooth > threshold] = 255
    h, w = sig.shape
    pad_t, pad_b, pad_l, pad_r = (int(v) for v in rng.uniform(0, 0.5, 4) * (h, h, w / 2, w / 2))
    target = cv2.copyMakeBorder(sig, pad_t, pad_b, pad_l, pad_r, cv2.BORDER_CONSTANT, value=255)
    H, W = target.shape
    clutter = np.full((H, W), 255, np.uint8)
    ys, xs = np.nonzero(target < 200)
    top, bottom = (ys.min(), ys.max()) if len(ys) else (0, H - 1)
    left, right = (xs.min(), xs.max()) if len(xs) else (0, W - 1)
    sh = max(10, bottom - top)
    n = 0
    if rng.random() < 0.8:  # typed name below, or across the lower part of the signature
        y = int(bottom - rng.uniform(-0.1, 0.35) * sh)
        _text(clutter, rng, str(rng.choice(PHRASES)), int(left + rng.uniform(-0.1, 0.3) * (right - left)), y,
              sh * rng.uniform(0.15, 0.35), int(rng.uniform(0, 90)))
        n += 1
    if rng.random() < 0.5:  # a line of text above
        _text(clutter, rng, str(rng.choice(PHRASES)), int(rng.uniform(0, W / 3)), int(top + rng.uniform(-0.05, 0.2) * sh),
              sh * rng.uniform(0.1, 0.25), int(rng.uniform(0, 90)))
        n += 1
    if rng.random() < 0.6:  # baseline rule, sometimes dotted
        y = int(bottom - rng.uniform(0, 0.3) * sh)
        grey, t = int(rng.uniform(0, 110)), int(max(1, sh * rng.uniform(0.01, 0.04)))
        if rng.random() < 0.7:
            cv2.line(clutter, (0, y), (W - 1, y + int(rng.normal(0, 3))), grey, t, cv2.LINE_8)
        else:
            for x in range(0, W, max(3, 3 * t)):
                cv2.circle(clutter, (x, y), t, grey, -1)
        n += 1
    if rng.random() < 0.3:  # table cell
        m = rng.uniform(0.0, 0.2, 2) * (W, H)
        cv2.rectangle(clutter, (int(m[0]), int(m[1])), (int(W - 1 - m[0]), int(H - 1 - m[1])), int(rng.uniform(0, 100)),
                      int(max(1, sh * 0.02)))
        n += 1
    if rng.random() < 0.3 or n == 0:  # stamp: grey ellipse(s) and a word
        centre = (int(rng.uniform(left, right)), int(rng.uniform(top, bottom)))
        axes = (int(sh * rng.uniform(0.4, 0.9)), int(sh * rng.uniform(0.3, 0.7)))
        grey = int(rng.uniform(90, 170))
        stamp = np.full((H, W), 255, np.uint8)
        cv2.ellipse(stamp, centre, axes, rng.uniform(0, 180), 0, 360, grey, max(1, int(sh * 0.03)), cv2.LINE_AA)
        cv2.ellipse(stamp, centre, (int(axes[0] * 0.75), int(axes[1] * 0.75)), 0, 0, 360, grey, 1, cv2.LINE_AA)
        _text(stamp, rng, str(rng.choice(["PAID", "FILED", "SEEN", "AUDIT"])), centre[0] - axes[0] // 2, centre[1] + 4, axes[1] * 0.35, grey)
        clutter = np.minimum(clutter, stamp)
    image = np.minimum(target, clutter).astype(np.float32)
    image = image * rng.uniform(0.8, 1.0) + rng.uniform(0, 25)  # paper tone and contrast
    if rng.random() < 0.4:
        image = cv2.blur(image, (2, 2))
    if rng.random() < 0.3:  # unsharp mask, as some scanners do
        image = cv2.addWeighted(image, 1.6, cv2.GaussianBlur(image, (0, 0), 1.0), -0.6, 0)
    image = np.clip(image + rng.normal(0, rng.uniform(0, 8), image.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        noise = rng.random(image.shape)
        image[noise < 0.004] = 0
        image[noise > 0.996] = 255
    if rng.random() < 0.5:
        ext, flag = (".webp", cv2.IMWRITE_WEBP_QUALITY) if rng.random() < 0.5 else (".jpg", cv2.IMWRITE_JPEG_QUALITY)
        ok, data = cv2.imencode(ext, image, [flag, int(rng.uniform(20, 80))])
        if ok:
            image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return image, target
