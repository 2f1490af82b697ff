"""Synthetic clutter around a clean signature: what real crops carry besides the ink.

A signature cut from a document brings along the printed name under it, the line it sits on,
the box of the form, a stamp, dotted leaders, and the scanner's noise, blur and compression.
`clutter(signature, rng)` surrounds and overlaps a clean signature (uint8 grey, ink dark on
white) with a random mix of these and returns the dirty crop together with its target: the
same signature alone on white paper, in the same place. The cleaner is trained on these pairs
and measured on them (test writers only), so the generator is deliberately varied: many fonts,
sizes, rotations and weights; solid, dashed, dotted and double rules; full and partial boxes;
round and rectangular stamps drawn in colour and turned grey the way scanners do; speckle,
scratches, edge shadows; blur, resolution loss, binarisation, noise and JPEG.

Fonts are the system's TrueType/OpenType files (Debian `fonts-*` packages); a few families are
kept out of training (`HELD_OUT_FAMILIES`) so that the measurement sees typefaces the cleaner
never saw. With no fonts installed, PIL's built-in font is used, so this never fails.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "/usr/share/texmf/fonts/opentype", "~/.fonts", "~/.local/share/fonts")
# Symbol, dingbat, maths and script faces: no Latin text, or letters that look handwritten.
_EXCLUDED_FONTS = ("symbol", "dingbat", "d050000l", "z003", "chorus", "math", "emoji", "extralight", "thin")
# Typefaces used only when measuring (never in training), so figures are not on seen fonts.
HELD_OUT_FAMILIES = ("liberation", "carlito", "caladea", "linlibertine", "linbiolinum", "roboto")
# The Debian font packages behind the shipped cleaner and its published figures: installed, they
# give 96 training fonts and 67 of the held-out families
FONT_PACKAGES = ("fonts-dejavu", "fonts-freefont-ttf", "fonts-urw-base35", "fonts-texgyre", "fonts-liberation", "fonts-liberation2",
                 "fonts-crosextra-carlito", "fonts-crosextra-caladea", "fonts-linuxlibertine", "fonts-roboto")
INK_DARKNESS = 0.1  # a target pixel at least this dark (0 paper, 1 black) belongs to the signature

_SALUTATIONS = ("Sincerely,", "Sincerely yours,", "Yours faithfully,", "Very truly yours,", "Best regards,", "Cordially,",
                "Respectfully,", "Kind regards,", "Yours truly,", "With thanks,", "Approved:", "Witnessed by:")
_LABELS = ("Signature", "Signature:", "Signature of Applicant", "Authorized Signatory", "Authorised Signature", "Date:",
           "Name:", "Title:", "Witness", "Received by", "Approved by", "For and on behalf of", "Signature of the Holder",
           "Assinatura", "Firma", "Unterschrift", "Customer Signature", "Signed", "Place:", "Countersigned",
           "Signature of Depositor", "Account Holder", "Sign here", "Director", "Manager", "Notary Public")
_TITLES = ("Ph.D.", "M.D.", "Chairman", "President", "Vice President", "Director", "Manager", "Secretary",
           "Treasurer", "Attorney at Law", "Chief Executive Officer", "Sales Manager", "Professor", "Esq.")
_SURNAMES = ("Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Garcia", "Wilson", "Anderson",
             "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis",
             "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker", "Adams", "Nelson",
             "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Phillips", "Evans", "Turner", "Torres", "Parker",
             "Collins", "Edwards", "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Sharma", "Gupta", "Das", "Roy",
             "Banerjee", "Mukherjee", "Singh", "Kumar", "Patel", "Silva", "Santos", "Oliveira", "Costa", "Pereira")
_WORDS = ("the", "and", "of", "to", "in", "for", "this", "agreement", "company", "please", "contact", "questions",
          "thank", "you", "your", "account", "payment", "date", "amount", "received", "office", "department",
          "report", "copy", "original", "invoice", "number", "total", "bank", "branch", "contract", "party",
          "hereby", "certify", "that", "above", "information", "is", "correct", "dated", "at", "on", "behalf")
_STAMP_WORDS = ("APPROVED", "RECEIVED", "PAID", "CERTIFIED", "VERIFIED", "COPY", "ORIGINAL", "CONFIDENTIAL",
                "NOTARY", "OFFICIAL", "CANCELLED", "ACCOUNTS", "REGISTRAR", "SEAL", "BANK", "ENTERED")


# -- fonts ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _all_fonts() -> tuple[Path, ...]:
    found = set()
    for folder in FONT_DIRS:
        root = Path(folder).expanduser()
        if root.is_dir():
            for suffix in ("*.ttf", "*.otf", "*.TTF", "*.OTF"):
                found.update(p for p in root.rglob(suffix) if not any(x in p.name.lower() for x in _EXCLUDED_FONTS))
    return tuple(sorted(found, key=lambda p: (p.name, str(p))))  # one order whatever the set's: some names are in two packages


def font_files(subset: str = "train") -> tuple[Path, ...]:
    """Font files for `subset`: 'train' (all but the held-out families), 'test' (held-out
    families only) or 'all'. Empty when the system has none (PIL's own font is used then)."""
    if subset not in ("train", "test", "all"):
        raise ValueError(f"font subset must be train, test or all, not {subset!r}")
    fonts = _all_fonts()
    if subset == "all":
        return fonts
    held = tuple(p for p in fonts if any(f in p.name.lower() for f in HELD_OUT_FAMILIES))
    return held if subset == "test" else tuple(p for p in fonts if p not in held)


@lru_cache(maxsize=512)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = int(max(6, min(size, 400)))
    if path is not None:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size)
    except (TypeError, AttributeError, OSError):  # a Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def _random_font(rng: np.random.Generator, fonts: tuple[Path, ...], size: float):
    path = str(fonts[rng.integers(len(fonts))]) if fonts else None
    return _font(path, int(round(size)))


# -- text ----------------------------------------------------------------------------------


def _name(rng: np.random.Generator) -> str:
    initials = "".join(f"{c}. " for c in rng.choice(list(string.ascii_uppercase), size=rng.integers(1, 3)))
    surname = str(rng.choice(_SURNAMES))
    name = initials + surname
    if rng.random() < 0.3:
        name = f"{rng.choice(['John', 'Mary', 'Robert', 'Linda', 'Ana', 'Rahul', 'Priya', 'Thomas', 'Carlos'])} {name}"
    if rng.random() < 0.2:
        name += f", {rng.choice(_TITLES)}"
    return name.upper() if rng.random() < 0.25 else name


def _random_text(rng: np.random.Generator, role: str) -> str:
    if role == "below":
        return _name(rng) if rng.random() < 0.7 else str(rng.choice(_LABELS + _TITLES))
    if role == "above":
        return str(rng.choice(_SALUTATIONS)) if rng.random() < 0.6 else " ".join(rng.choice(_WORDS, size=rng.integers(2, 8)))
    if role == "label":
        return str(rng.choice(_LABELS))
    kind = rng.random()
    if kind < 0.15:
        return f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(1960, 2030)}"
    if kind < 0.25:
        return "".join(rng.choice(list(string.ascii_letters + string.digits + "-/.,:"), size=rng.integers(3, 14)))
    return " ".join(rng.choice(_WORDS + _SURNAMES[:10], size=rng.integers(1, 9)))


def _render_text(text: str, font, angle: float) -> np.ndarray:
    """The text as a darkness mask in [0, 1] (tightly cropped), rotated by `angle` degrees."""
    left, top, right, bottom = font.getbbox(text)
    w, h = max(1, right - left + 4), max(1, bottom - top + 4)
    im = Image.new("L", (w, h), 0)
    ImageDraw.Draw(im).text((2 - left, 2 - top), text, fill=255, font=font)
    if abs(angle) > 0.2:
        im = im.rotate(angle, resample=Image.BILINEAR, expand=True)
    return np.asarray(im, np.float32) / 255


def _paste(layer: np.ndarray, patch: np.ndarray, x: int, y: int, darkness: float = 1.0) -> None:
    """Max-combine `patch * darkness` into `layer` with its top-left corner at (x, y), clipped."""
    h, w = layer.shape
    ph, pw = patch.shape
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + pw), min(h, y + ph)
    if x0 >= x1 or y0 >= y1:
        return
    region = patch[y0 - y : y1 - y, x0 - x : x1 - x] * darkness
    np.maximum(layer[y0:y1, x0:x1], region, out=layer[y0:y1, x0:x1])


@dataclass
class _Scene:
    """What the drawing functions need: the canvas layer and where the signature lies."""

    layer: np.ndarray  # clutter darkness, float32 (H, W) in [0, 1]
    box: tuple[int, int, int, int]  # signature ink box (x0, y0, x1, y1)
    fonts: tuple[Path, ...]
    rng: np.random.Generator

    @property
    def sig_h(self) -> int:
        return max(8, self.box[3] - self.box[1])

    @property
    def sig_w(self) -> int:
        return max(8, self.box[2] - self.box[0])

    @property
    def pen(self) -> float:
        """A typical line width at this scale, in pixels."""
        return max(1.0, self.sig_h / 60)


def _u(rng: np.random.Generator, a: float, b: float, size=None):
    """Uniform between a and b in either order (placements can invert on tiny crops)."""
    return rng.uniform(min(a, b), max(a, b), size)


def _text_line(s: _Scene, role: str | None = None) -> None:
    rng = s.rng
    role = role or str(rng.choice(["below", "above", "over", "label", "anywhere"], p=[0.35, 0.2, 0.2, 0.1, 0.15]))
    size = s.sig_h * _u(rng, 0.1, 0.4) if role != "over" else s.sig_h * _u(rng, 0.15, 0.5)
    size = max(7.0, size)
    font = _random_font(rng, s.fonts, size)
    angle = rng.normal(0, 1.5) if rng.random() < 0.85 else _u(rng, -20, 20)
    if rng.random() < 0.02:
        angle = 90.0 * rng.choice([-1, 1])
    patch = _render_text(_random_text(rng, role), font, angle)
    if rng.random() < 0.2:  # heavy typewriter / bold-by-overprint, or faint toner
        patch = cv2.dilate(patch, np.ones((2, 2), np.uint8))
    ph, pw = patch.shape
    x0, y0, x1, y1 = s.box
    h, w = s.layer.shape
    cx = int(_u(rng, x0 - 0.2 * s.sig_w, max(x0 - 0.2 * s.sig_w + 1, x1 - 0.5 * pw)))
    if role == "below":
        y = int(_u(rng, y1 - 0.6 * ph, y1 + 0.5 * ph))
    elif role == "above":
        y = int(_u(rng, y0 - 1.2 * ph, y0 + 0.2 * ph))
    elif role == "over":
        y = int(_u(rng, y0, max(y0 + 1, y1 - ph)))
    elif role == "label":
        cx = int(_u(rng, x0 - pw - 0.1 * s.sig_w, x0 + 0.1 * s.sig_w))
        y = int(_u(rng, y0 + 0.2 * s.sig_h, y1 - 0.5 * ph))
    else:
        cx, y = int(_u(rng, -pw / 2, w - pw / 2)), int(_u(rng, -ph / 2, h - ph / 2))
    _paste(s.layer, patch, cx, y, _u(rng, 0.55, 1.0))


def _paragraph(s: _Scene) -> None:
    """Several lines of body text, cut by the crop: the letter the signature closes."""
    rng = s.rng
    size = max(7.0, s.sig_h * _u(rng, 0.1, 0.25))
    font = _random_font(rng, s.fonts, size)
    lines = int(rng.integers(2, 5))
    spacing = size * _u(rng, 1.2, 1.8)
    above = rng.random() < 0.7
    start = s.box[1] - lines * spacing if above else s.box[3] + 0.2 * spacing
    x = int(_u(rng, -0.3 * s.sig_w, 0.3 * s.sig_w))
    darkness = _u(rng, 0.55, 1.0)
    for i in range(lines):
        patch = _render_text(" ".join(rng.choice(_WORDS, size=rng.integers(5, 12))), font, rng.normal(0, 0.5))
        _paste(s.layer, patch, x, int(start + i * spacing), darkness)


def _line(s: _Scene, p0: tuple[float, float], p1: tuple[float, float], width: float, style: str, darkness: float) -> None:
    """A straight rule: solid, dashed, dotted or double, drawn anti-aliased into the layer."""
    rng = s.rng
    length = math.hypot(p1[0] - p0[0], p1[1] - p0[1])
    if length < 2:
        return
    canvas = np.zeros_like(s.layer)
    thickness = max(1, int(round(width)))
    ux, uy = (p1[0] - p0[0]) / length, (p1[1] - p0[1]) / length

    def seg(a: float, b: float, off: float = 0.0) -> None:
        q0 = (p0[0] + ux * a - uy * off, p0[1] + uy * a + ux * off)
        q1 = (p0[0] + ux * b - uy * off, p0[1] + uy * b + ux * off)
        cv2.line(canvas, (int(round(q0[0] * 4)), int(round(q0[1] * 4))), (int(round(q1[0] * 4)), int(round(q1[1] * 4))),
                 1.0, thickness, cv2.LINE_AA, shift=2)

    if style == "solid":
        seg(0, length)
    elif style == "double":
        gap = max(2.0, width * _u(rng, 1.5, 3.0))
        seg(0, length, -gap / 2)
        seg(0, length, gap / 2)
    elif style == "dashed":
        dash, gap = width * _u(rng, 3, 10), width * _u(rng, 1.5, 5)
        for a in np.arange(0, length, dash + gap):
            seg(a, min(length, a + dash))
    else:  # dotted
        step = max(2.0, width * _u(rng, 2, 4))
        for a in np.arange(0, length, step):
            c = (p0[0] + ux * a, p0[1] + uy * a)
            cv2.circle(canvas, (int(round(c[0] * 4)), int(round(c[1] * 4))), max(2, int(width * 2)), 1.0, -1, cv2.LINE_AA, shift=2)
    if rng.random() < 0.3:  # worn or broken print: gaps along the line
        grain = max(2, int(length / 20))
        breaks = cv2.resize(rng.random((grain, grain)).astype(np.float32), (canvas.shape[1], canvas.shape[0]))
        canvas *= breaks > 0.2
    np.maximum(s.layer, canvas * darkness, out=s.layer)


def _rule(s: _Scene) -> None:
    """The line a signature sits on, or one crossing it."""
    rng = s.rng
    h, w = s.layer.shape
    x0, y0, x1, y1 = s.box
    y = _u(rng, y0 + 0.5 * s.sig_h, y1 + 0.15 * s.sig_h) if rng.random() < 0.75 else _u(rng, 0, h)
    tilt = math.tan(math.radians(rng.normal(0, 1.0)))
    a = _u(rng, -0.1 * w, x0 + 0.3 * s.sig_w) if rng.random() < 0.5 else -10
    b = _u(rng, x1 - 0.3 * s.sig_w, 1.1 * w) if rng.random() < 0.5 else w + 10
    style = str(rng.choice(["solid", "dashed", "dotted", "double"], p=[0.6, 0.15, 0.15, 0.1]))
    _line(s, (a, y), (b, y + tilt * (b - a)), s.pen * _u(rng, 0.6, 2.5), style, _u(rng, 0.5, 1.0))


def _box(s: _Scene) -> None:
    """A form field or table cell around (or cutting into) the signature; some sides only."""
    rng = s.rng
    x0, y0, x1, y1 = s.box
    mx, my = s.sig_w * _u(rng, -0.15, 0.3), s.sig_h * _u(rng, -0.3, 0.5)
    left, top, right, bottom = x0 - mx, y0 - my, x1 + mx * _u(rng, 0.5, 1.5), y1 + my * _u(rng, 0.2, 1.5)
    width = s.pen * _u(rng, 0.6, 2.0)
    darkness = _u(rng, 0.5, 1.0)
    style = "solid" if rng.random() < 0.8 else str(rng.choice(["dashed", "dotted"]))
    sides = [((left, top), (right, top)), ((right, top), (right, bottom)), ((right, bottom), (left, bottom)), ((left, bottom), (left, top))]
    for side in sides:
        if rng.random() < 0.75:
            _line(s, side[0], side[1], width, style, darkness)


def _leader(s: _Scene) -> None:
    """A dotted or underscored fill-in line, typed with a font: 'Signature ............'."""
    rng = s.rng
    char = str(rng.choice([".", "_", "-", "…"])) if rng.random() < 0.8 else "."
    size = max(7.0, s.sig_h * _u(rng, 0.12, 0.3))
    font = _random_font(rng, s.fonts, size)
    count = max(4, int(1.3 * s.layer.shape[1] / max(2.0, size * 0.45)))
    text = char * count
    if rng.random() < 0.4:
        text = f"{rng.choice(_LABELS)} {text}"
    patch = _render_text(text, font, rng.normal(0, 0.7))
    y = int(_u(rng, s.box[1] + 0.3 * s.sig_h, s.box[3] + 0.1 * s.sig_h) - 0.7 * patch.shape[0])
    _paste(s.layer, patch, int(_u(rng, -0.3, 0.1) * patch.shape[1]), y, _u(rng, 0.5, 1.0))


_STAMP_COLOURS = ((30, 50, 170), (90, 40, 150), (180, 30, 40), (20, 110, 60), (40, 40, 40), (20, 90, 190), (150, 20, 110))


def _stamp(s: _Scene) -> None:
    """A rubber stamp: rings or a rectangle with text, drawn in a colour, inked unevenly, then
    turned grey with one of several scanner colour-to-grey conversions."""
    rng = s.rng
    size = s.sig_h * _u(rng, 0.6, 1.8)
    round_stamp = rng.random() < 0.55
    w = int(size * (1 if round_stamp else _u(rng, 1.4, 2.8)))
    h = int(size if round_stamp else size * _u(rng, 0.4, 0.8))
    w, h = max(w, 16), max(h, 12)
    im = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(im)
    line = max(1, int(size * _u(rng, 0.015, 0.04)))
    font_size = max(7, int(size * _u(rng, 0.1, 0.18)))
    font = _random_font(rng, s.fonts, font_size)
    word = str(rng.choice(_STAMP_WORDS))
    if round_stamp:
        draw.ellipse((1, 1, w - 2, h - 2), outline=255, width=line)
        if rng.random() < 0.7:
            inner = int(size * _u(rng, 0.12, 0.2))
            draw.ellipse((inner, inner, w - 1 - inner, h - 1 - inner), outline=255, width=max(1, line // 2))
            ring_text = " ".join(rng.choice(_STAMP_WORDS + _SURNAMES[:20], size=3)).upper() + " * "
            radius = (w / 2 - inner / 2 - 1)
            for i, ch in enumerate(ring_text):
                theta = 2 * math.pi * i / len(ring_text) + _u(rng, 0, 0.01)
                glyph = Image.new("L", (font_size * 2, font_size * 2), 0)
                ImageDraw.Draw(glyph).text((font_size // 2, font_size // 3), ch, fill=255, font=font)
                glyph = glyph.rotate(-math.degrees(theta), resample=Image.BILINEAR)
                cx = w / 2 + radius * math.sin(theta) - font_size
                cy = h / 2 - radius * math.cos(theta) - font_size
                im.paste(255, (int(cx), int(cy)), glyph)
        centre = _render_text(word, _random_font(rng, s.fonts, font_size * 1.3), 0)
    else:
        draw.rectangle((1, 1, w - 2, h - 2), outline=255, width=line)
        if rng.random() < 0.4:
            draw.rectangle((line * 3, line * 3, w - 1 - line * 3, h - 1 - line * 3), outline=255, width=max(1, line // 2))
        centre = _render_text(word, _random_font(rng, s.fonts, min(h * 0.5, w / max(1, len(word)) * 1.6)), 0)
    mask = np.asarray(im, np.float32) / 255
    ch, cw = centre.shape
    if ch < h and cw < w:
        _paste(mask, centre, (w - cw) // 2, (h - ch) // 2)
    if rng.random() < 0.4:  # a date line inside
        date = _render_text(_random_text(rng, "anywhere")[:10], _random_font(rng, s.fonts, font_size), 0)
        if date.shape[0] < h and date.shape[1] < w:
            _paste(mask, date, (w - date.shape[1]) // 2, min(h - date.shape[0], (h + ch) // 2 + 1))
    texture = cv2.resize(rng.random((max(2, h // 6), max(2, w // 6))).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    mask *= np.clip(_u(rng, 0.5, 1.0) + 0.6 * (texture - 0.5), 0.15, 1.0)  # uneven inking
    pil = Image.fromarray((mask * 255).astype(np.uint8)).rotate(_u(rng, -30, 30), resample=Image.BILINEAR, expand=True)
    mask = np.asarray(pil, np.float32) / 255
    colour = np.array(_STAMP_COLOURS[rng.integers(len(_STAMP_COLOURS))], np.float32) + rng.normal(0, 15, 3)
    weights = [(0.299, 0.587, 0.114), (0.2126, 0.7152, 0.0722), (0.0, 1.0, 0.0), (1 / 3, 1 / 3, 1 / 3), (0.0, 0.0, 1.0)][
        rng.choice(5, p=[0.4, 0.25, 0.15, 0.15, 0.05])]
    grey = float(np.clip(np.dot(weights, np.clip(colour, 0, 255)), 0, 230))
    x0, y0, x1, y1 = s.box
    x = int(_u(rng, x0 - 0.5 * mask.shape[1], x1 - 0.5 * mask.shape[1]))
    y = int(_u(rng, y0 - 0.5 * mask.shape[0], y1 - 0.5 * mask.shape[0]))
    _paste(s.layer, mask, x, y, (255 - grey) / 255)


def _speckle(s: _Scene) -> None:
    """Dust, toner specks, a hair or scratch, or the dark edge of the scanned page."""
    rng = s.rng
    h, w = s.layer.shape
    kind = rng.random()
    if kind < 0.5:
        n = int(_u(rng, 5, 60) * h * w / 40000)
        ys, xs = rng.integers(0, h, n), rng.integers(0, w, n)
        radius = _u(rng, 0.3, 1.5, n) * max(1.0, s.pen)
        for x, y, r in zip(xs, ys, radius):
            cv2.circle(s.layer, (int(x), int(y)), int(max(0, r)), float(_u(rng, 0.4, 1.0)), -1)
    elif kind < 0.75:  # a hair or scratch: a thin smooth curve across
        t = np.linspace(0, 1, 30)
        a, b = _u(rng, 0, 1, 2) * (w, h), _u(rng, 0, 1, 2) * (w, h)
        bend = rng.normal(0, 0.15, 2) * (w, h)
        points = np.outer(1 - t, a) + np.outer(t, b) + np.outer(np.sin(np.pi * t), bend)
        canvas = np.zeros_like(s.layer)
        cv2.polylines(canvas, [np.round(points * 4).astype(np.int32)], False, 1.0, 1, cv2.LINE_AA, shift=2)
        np.maximum(s.layer, canvas * _u(rng, 0.3, 0.8), out=s.layer)
    else:  # page edge or scanner shadow along one border
        band = int(_u(rng, 0.02, 0.12) * (h if kind < 0.88 else w))
        ramp = np.linspace(_u(rng, 0.4, 1.0), 0, max(1, band), dtype=np.float32)
        side = rng.integers(4)
        if side == 0:
            np.maximum(s.layer[:band], ramp[:, None], out=s.layer[:band])
        elif side == 1:
            np.maximum(s.layer[h - band:], ramp[::-1, None], out=s.layer[h - band:])
        elif side == 2:
            np.maximum(s.layer[:, :band], ramp[None, :], out=s.layer[:, :band])
        else:
            np.maximum(s.layer[:, w - band:], ramp[None, ::-1], out=s.layer[:, w - band:])


_ELEMENTS = {"text": _text_line, "paragraph": _paragraph, "rule": _rule, "box": _box, "leader": _leader,
             "stamp": _stamp, "speckle": _speckle}
_ELEMENT_P = {"text": 0.75, "paragraph": 0.25, "rule": 0.55, "box": 0.2, "leader": 0.15, "stamp": 0.2, "speckle": 0.35}


# -- scanning ------------------------------------------------------------------------------


def degrade(image: np.ndarray, rng: np.random.Generator, strength: float = 1.0, fade_probability: float = 1.0) -> np.ndarray:
    """What paper, scanner and file format do to a page: paper tone and uneven light, faded ink,
    blur, resolution loss, noise, occasional binarisation (fax / bitonal scans) and JPEG.

    The ink fades in a `fade_probability` share of crops and keeps its darkness in the rest
    (one more random draw when below 1), so a tone model trained on them learns that grey ink
    is not always faded ink; at 1 (the default) every crop's ink fades and the draws are as
    they always were."""
    h, w = image.shape
    dark = 1 - image.astype(np.float32) / 255
    paper = rng.uniform(0.78, 1.0) if rng.random() < 0.6 * strength else 1.0
    gradient = np.linspace(0, rng.normal(0, 0.06 * strength), w, dtype=np.float32)[None, :] + \
        np.linspace(0, rng.normal(0, 0.06 * strength), h, dtype=np.float32)[:, None]
    ink_left = rng.uniform(0.75, 1.0)  # of the ink's darkness, after fading
    if fade_probability < 1 and rng.random() >= fade_probability:
        ink_left = 1.0
    grey = np.clip(paper + gradient, 0.5, 1.0) * (1 - dark * ink_left) * 255
    if rng.random() < 0.5 * strength:
        grey = cv2.GaussianBlur(grey, (0, 0), rng.uniform(0.3, 1.2))
    if rng.random() < 0.3 * strength:  # scanned at a lower resolution
        f = rng.uniform(0.4, 0.8)
        small = cv2.resize(grey, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        grey = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR if rng.random() < 0.7 else cv2.INTER_NEAREST)
    if rng.random() < 0.6 * strength:
        grey = grey + rng.normal(0, rng.uniform(2, 12), grey.shape).astype(np.float32)
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    if rng.random() < 0.15 * strength:  # bitonal: fax machines and 1-bit document scanners
        level = np.clip(cv2.threshold(grey, 0, 255, cv2.THRESH_OTSU)[0] + rng.normal(0, 15), 60, 230)
        grey = np.where(grey > level, 255, 0).astype(np.uint8)
    if rng.random() < 0.03 * strength:  # salt: ink dropping out in bitonal scans
        grey[rng.random(grey.shape) < rng.uniform(0.002, 0.02)] = 255
    if rng.random() < 0.5 * strength:
        ok, data = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(15, 90))])
        grey = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
    return grey


# -- the whole overlay ---------------------------------------------------------------------


@dataclass
class Cluttered:
    image: np.ndarray  # the dirty crop, uint8 grey
    target: np.ndarray  # the clean signature alone on white, same shape and place, uint8
    elements: list[str]  # what was drawn, for inspection and tests

    @property
    def ink(self) -> np.ndarray:
        """The target's ink mask: pixels of the signature itself."""
        return self.target <= 255 * (1 - INK_DARKNESS)


def whiten(signature: np.ndarray) -> np.ndarray:
    """A clean signature with its paper set to pure white (pixels above Otsu's threshold)."""
    smooth = cv2.GaussianBlur(signature, (3, 3), 0)
    threshold, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    out = signature.copy()
    out[smooth > threshold] = 255
    return out


def clutter(signature: np.ndarray, rng: np.random.Generator | int, *, fonts: str = "train", strength: float = 1.0,
            margin: float = 1.0, elements: dict[str, float] | None = None, degrade_image: bool = True,
            fade_probability: float = 1.0) -> Cluttered:
    """Surround and overlap a clean signature (uint8 grey, ink dark on white) with clutter.

    `fonts` picks the font subset ('train', 'test' or 'all'); `strength` scales how much is
    drawn and how hard the scan degrades; `margin` scales the paper added around the
    signature; `elements` overrides the probability of each element (see `_ELEMENT_P`);
    `fade_probability` goes to `degrade`.
    At least one element is always drawn. An element name not in `_ELEMENTS` is a ValueError.
    """
    unknown = sorted(set(elements or {}) - set(_ELEMENTS))
    if unknown:
        raise ValueError(f"unknown overlay element(s) {unknown}; known: {sorted(_ELEMENTS)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    clean = whiten(np.asarray(signature, np.uint8))
    h, w = clean.shape
    top, bottom = (int(h * rng.uniform(0, 0.6) * margin) for _ in range(2))
    left, right = (int(w * rng.uniform(0, 0.25) * margin) for _ in range(2))
    target = np.full((h + top + bottom, w + left + right), 255, np.uint8)
    target[top : top + h, left : left + w] = clean
    ink = np.argwhere(clean < 255 * (1 - INK_DARKNESS))
    if len(ink):
        (iy0, ix0), (iy1, ix1) = ink.min(axis=0), ink.max(axis=0) + 1
    else:
        iy0, ix0, iy1, ix1 = 0, 0, h, w
    scene = _Scene(np.zeros(target.shape, np.float32), (left + ix0, top + iy0, left + ix1, top + iy1), font_files(fonts), rng)
    probabilities = {**_ELEMENT_P, **(elements or {})}
    drawn = []
    for name, p in probabilities.items():
        repeats = 1 + int(rng.random() < 0.3 * strength) + int(rng.random() < 0.1 * strength)
        for _ in range(repeats):
            if rng.random() < min(1.0, p * strength):
                _ELEMENTS[name](scene)
                drawn.append(name)
    if not drawn:
        name = str(rng.choice([n for n, p in probabilities.items() if p > 0] or ["text"]))
        _ELEMENTS[name](scene)
        drawn.append(name)
    sig_dark = 1 - target.astype(np.float32) / 255
    combined = 1 - (1 - sig_dark) * (1 - scene.layer)
    image = np.clip(255 * (1 - combined), 0, 255).astype(np.uint8)
    if degrade_image:
        image = degrade(image, rng, strength, fade_probability)
    return Cluttered(image, target, drawn)
