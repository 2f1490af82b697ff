"""Refine the detector's boxes with a second, closer look at each one.

The centre heatmap places signatures well but sizes them loosely (median IoU with the labels
0.76 on the validation pages), which is what holds mAP@0.5:0.95 down. A small CNN
(`signver train detector-refiner`) sees a window around each found box, widened so that the
true box lies inside it, and moves the box's four sides. Its ONNX file sits beside the
detector's and the card's `refiner` section names it. The network was trained on windows and
their mirror images alike, so the card can ask (`mirror`) for the shifts read from both to be
averaged, and (`passes`) for the refined boxes to be looked at again: with both, valid
mAP@0.5:0.95 0.538 -> 0.560, at 2.5 ms per window looked at (see docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .models import inference_session


def windows_around(boxes: np.ndarray, expand: tuple[float, float], pad: float) -> np.ndarray:
    """(K, 4) windows x0, y0, x1, y1 centred on `boxes`, `expand` (x, y) times their size plus
    `pad` pixels: room for a side that the detector placed too far in."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.maximum(boxes[:, 2:] - boxes[:, :2], 8.0) * np.asarray(expand, np.float32) + pad
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def crop_window(page: np.ndarray, window: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The grey page's `window` stretched to `size` (h, w); outside the page is white paper."""
    h, w = size
    sx, sy = w / (window[2] - window[0]), h / (window[3] - window[1])
    warp = np.array([[sx, 0, -window[0] * sx], [0, sy, -window[1] * sy]], np.float32)
    interpolation = cv2.INTER_AREA if min(sx, sy) < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(page, warp, (w, h), flags=interpolation, borderValue=255)


def to_window(boxes: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Boxes in page pixels as fractions of their windows (0 at a window's left/top, 1 at its right/bottom)."""
    origin, extent = windows[:, [0, 1, 0, 1]], (windows[:, 2:] - windows[:, :2])[:, [0, 1, 0, 1]]
    return (np.asarray(boxes, np.float32) - origin) / extent


def from_window(fractions: np.ndarray, windows: np.ndarray) -> np.ndarray:
    origin, extent = windows[:, [0, 1, 0, 1]], (windows[:, 2:] - windows[:, :2])[:, [0, 1, 0, 1]]
    return fractions * extent + origin


class BoxRefiner:
    """The card's `refiner` section: its ONNX file (beside the detector's), input size and window."""

    def __init__(self, spec: dict, model_dir: Path):
        # one thread: the network is small, and a second thread pool would spin against the detector's
        self.session = inference_session(Path(model_dir) / spec["model"], threads=1)
        self.input_name = self.session.get_inputs()[0].name
        self.size = (int(spec["input"]["height"]), int(spec["input"]["width"]))
        self.expand = tuple(spec["expand"])
        self.pad = float(spec["pad"])
        self.mirror = bool(spec.get("mirror", False))
        self.passes = int(spec.get("passes", 1))

    def inputs(self, page: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network's input (K, 1, H, W) in [0, 1], dark ink on white, and the windows it shows."""
        windows = windows_around(boxes, self.expand, self.pad)
        crops = np.stack([crop_window(page, window, self.size) for window in windows])
        return (crops.astype(np.float32) / 255.0)[:, None], windows

    def __call__(self, page: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """`boxes` (K, 4) on the grey `page` with their sides moved, clipped to the page."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        if not len(boxes):
            return boxes
        for _ in range(self.passes):
            boxes = self._refine_once(page, boxes)
        return boxes

    def shifts(self, crops: np.ndarray) -> np.ndarray:
        """The network's side shifts (K, 4) for windows `crops`, averaged with those read from
        the mirrored windows (left and right swapped back) where the card asks for it."""
        (shifts,) = self.session.run(None, {self.input_name: crops})
        if self.mirror:
            (mirrored,) = self.session.run(None, {self.input_name: np.ascontiguousarray(crops[..., ::-1])})
            shifts = (shifts + np.stack([-mirrored[:, 2], mirrored[:, 1], -mirrored[:, 0], mirrored[:, 3]], axis=1)) / 2
        return shifts

    def _refine_once(self, page: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        crops, windows = self.inputs(page, boxes)
        refined = from_window(to_window(boxes, windows) + self.shifts(crops), windows)
        refined[:, 2:] = np.maximum(refined[:, 2:], refined[:, :2] + 1)  # a side never crosses its opposite
        h, w = page.shape[:2]
        return np.clip(refined, 0, [w, h, w, h]).astype(np.float32)
