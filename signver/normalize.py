"""Signature normalisation: the one function training, evaluation and inference all use.

Scans differ in paper tone, ink darkness, position and size; the network should see none of
that. Following SigNet's preprocessing: Otsu separates ink from paper, paper is set to white,
the image is cropped to the ink, inverted (ink bright on a black background, so padding is
zero) and scaled to fit the network input without changing its aspect ratio, centred.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .errors import BlankImageError, InputError

DEFAULT_SIZE = (128, 256)  # (height, width) of the network input
MIN_CONTRAST = 24  # grey levels between the darkest and lightest pixel for there to be ink
MIN_INK_PIXELS = 12
MIN_SIDE = 8  # pixels; a signature crop narrower than this on either side holds none
MAX_INK_SHARE = 0.5  # of a scan taken by ink: at most 11 % in CEDAR and BHSig260; more is an inverted image
TRIM_FRACTION = 0.002  # ink mass ignored at each edge when cropping, so a stray speck can't
MARGIN_FRACTION = 0.02  # widen the crop; margin kept around the ink, of its larger side


def ink_mask(gray: np.ndarray) -> tuple[np.ndarray, int]:
    """Return the ink mask (True = ink) and the Otsu threshold of a uint8 grey scan.

    Raises BlankImageError when the image has no ink to find.
    """
    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise InputError(f"expected a 2-D uint8 grey image, got {gray.dtype} array of shape {gray.shape}")
    if gray.size == 0:
        raise BlankImageError("the image is empty (0 pixels)")
    lo, hi = cv2.minMaxLoc(gray)[:2]
    if hi - lo < MIN_CONTRAST:
        raise BlankImageError(f"blank image: no ink found (all pixels within {int(hi - lo)} grey levels)")
    smooth = cv2.GaussianBlur(gray, (3, 3), 0)
    threshold, _ = cv2.threshold(smooth, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ones = cv2.threshold(smooth, threshold, 1, cv2.THRESH_BINARY_INV)[1]  # 1 where smooth <= threshold
    if cv2.countNonZero(ones) < MIN_INK_PIXELS:
        raise BlankImageError("blank image: too few ink pixels to hold a signature")
    return ones.view(bool), int(threshold)


def _trimmed_extent(profile: np.ndarray) -> tuple[int, int]:
    """First and last index holding the ink mass once TRIM_FRACTION is ignored at each end."""
    cumulative = np.cumsum(profile)
    total = cumulative[-1]
    first = int(np.searchsorted(cumulative, total * TRIM_FRACTION, side="right"))
    last = int(np.searchsorted(cumulative, total * (1 - TRIM_FRACTION), side="left"))
    return first, max(first, last)


def ink_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box (x0, y0, x1, y1), exclusive ends, of the ink with a small margin."""
    ones = np.asarray(mask, bool).view(np.uint8)  # OpenCV sums rows and columns several times faster than numpy
    y0, y1 = _trimmed_extent(cv2.reduce(ones, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel())
    x0, x1 = _trimmed_extent(cv2.reduce(ones, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel())
    margin = max(2, int(MARGIN_FRACTION * max(x1 - x0, y1 - y0)))
    h, w = mask.shape
    return max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + 1 + margin), min(h, y1 + 1 + margin)


def normalize(gray: np.ndarray, size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """Turn a grey scan (ink dark on paper) into the network's uint8 input of `size` (h, w).

    The result has ink bright on black, the signature centred and as large as fits.
    """
    if gray.ndim == 2 and 0 < min(gray.shape) < MIN_SIDE:  # a 1 x 400 strip would be stretched into a "signature"
        raise InputError(f"a {gray.shape[1]} x {gray.shape[0]} pixel image (width x height) is too small to hold a signature "
                         f"(a side under {MIN_SIDE} pixels)")
    mask, threshold = ink_mask(gray)
    ink_share = cv2.countNonZero(mask.view(np.uint8)) / mask.size
    if ink_share > MAX_INK_SHARE:
        raise InputError(f"{ink_share:.0%} of the image is darker than its paper, so its "
                         "ink cannot be told from it: light ink on a dark background (invert it: 255 - image; a bool array is True "
                         "for paper), or a shadow or shaded field over the paper (clean it first: clean=True, --clean)")
    x0, y0, x1, y1 = ink_box(mask)
    crop = gray[y0:y1, x0:x1]
    # 255 - crop where crop <= threshold, else 0 (paper); as two OpenCV passes, not numpy's four
    ink = cv2.threshold(cv2.bitwise_not(crop), 254 - threshold, 255, cv2.THRESH_TOZERO)[1]
    height, width = size
    scale = min(height / ink.shape[0], width / ink.shape[1])
    new_h = max(1, min(height, round(ink.shape[0] * scale)))
    new_w = max(1, min(width, round(ink.shape[1] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(ink, (new_w, new_h), interpolation=interpolation)
    canvas = np.zeros(size, np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = resized
    return canvas


def to_model_input(normalized: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Stack normalised uint8 images into the float32 NCHW batch in [0, 1] models take."""
    batch = np.asarray(normalized, dtype=np.float32)
    if batch.ndim == 2:
        batch = batch[None]
    return (batch / 255.0)[:, None, :, :]
