"""How well a cleaner restores a signature: PSNR, SSIM, ink F-measure and stroke recall.

All compare an output crop with its target, the clean signature alone on white paper (uint8
grey, ink dark, same shape). Ink is what the pipeline would call ink: pixels at or below the
image's own Otsu threshold (`signver.normalize.ink_mask`), so a cleaner is scored on what
the extractor will see.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import BlankImageError
from ..normalize import ink_mask


def psnr(output: np.ndarray, target: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (uint8 peak 255); 100 for identical images."""
    mse = float(np.mean((output.astype(np.float64) - target.astype(np.float64)) ** 2))
    return 100.0 if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(output: np.ndarray, target: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03)."""
    x, y = output.astype(np.float64), target.astype(np.float64)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(a: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(a, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def ink(image: np.ndarray) -> np.ndarray:
    """The pipeline's ink mask of a grey crop; all False for a blank one."""
    try:
        return ink_mask(image)[0]
    except BlankImageError:
        return np.zeros(image.shape, bool)


def ink_scores(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Ink precision, recall (stroke recall: the share of the signature's ink kept) and F-measure."""
    predicted, truth = ink(output), ink(target)
    tp = float(np.count_nonzero(predicted & truth))
    precision = tp / max(1, np.count_nonzero(predicted))
    recall = tp / max(1, np.count_nonzero(truth))
    f = 2 * precision * recall / max(1e-12, precision + recall)
    return {"ink_precision": precision, "stroke_recall": recall, "ink_f": f}


def restoration_scores(output: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Every per-image figure: PSNR, SSIM and the ink scores."""
    return {"psnr": psnr(output, target), "ssim": ssim(output, target), **ink_scores(output, target)}


def mean_scores(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each figure over images."""
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}
