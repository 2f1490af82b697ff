"""A classical signature detector to compare the network with: connected components of the
ink, kept when they look handwritten (tall, thin strokes, sparse in their bounding box, unlike
printed characters, which at page scale are small and dense), grouped into regions, scored by
how much such ink a region holds and how sparse it is.

It works on the page stretched to 640x640, the scale of the detection dataset's pages. Its
constants were set by looking at component statistics of the training split; its score
threshold was chosen on the validation split by the same rule as the network's
(`evaluation.detection.choose_threshold`).
"""

from __future__ import annotations

import cv2
import numpy as np

WORKING_SIZE = 640
MIN_AREA = 20  # ink pixels: smaller components are scanner speckle or punctuation
MIN_HEIGHT = 7  # most printed body text is 4-8 px tall at this scale
MAX_FILL = 0.35  # ink / bounding-box area: cursive strokes are sparse, printed glyphs dense
INK_LEVEL = 180  # grey levels below this are ink even where Otsu says paper: light pens
RULE_LENGTH = 40  # straight runs at least this long are ruling lines, not ink of a signature
GROUP_KERNEL = (41, 21)  # (w, h): components this close join into one signature
THRESHOLD = 0.9737  # best F1 on valid with 95 % of its signature-free pages left without a box


class BaselineDetector:
    """Same `find(page)` interface as `signver.detector.Detector`."""

    threshold = THRESHOLD

    def find(self, page: np.ndarray, min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        h, w = page.shape
        gray = cv2.resize(page, (WORKING_SIZE, WORKING_SIZE), interpolation=cv2.INTER_AREA)
        candidates = handwriting_mask(gray)
        boxes, scores = regions(candidates)
        boxes = boxes * np.array([w, h, w, h], np.float32) / WORKING_SIZE
        keep = scores >= min_score
        order = np.argsort(-scores[keep], kind="stable")
        return boxes[keep][order], scores[keep][order]


def ink_without_rules(gray: np.ndarray) -> np.ndarray:
    """Otsu ink mask (uint8 0/1) with long horizontal and vertical lines removed."""
    threshold, _ = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = (gray < max(threshold, INK_LEVEL)).astype(np.uint8)
    rules = cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((1, RULE_LENGTH), np.uint8))
    rules |= cv2.morphologyEx(ink, cv2.MORPH_OPEN, np.ones((RULE_LENGTH, 1), np.uint8))
    return ink & (1 - rules)


def handwriting_mask(gray: np.ndarray) -> np.ndarray:
    """Ink of the components that look handwritten, with each kept pixel set to its
    component's fill (so regions can average it); 0 elsewhere."""
    ink = ink_without_rules(gray)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    width, height, area = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_AREA]
    fill = area / np.maximum(width * height, 1)
    keep = (area >= MIN_AREA) & (height >= MIN_HEIGHT) & (fill <= MAX_FILL) & (height < 0.3 * gray.shape[0]) & (width < 0.6 * gray.shape[1])
    keep[0] = False  # the background
    return np.where(keep, fill, 0.0).astype(np.float32)[labels]


def regions(candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (working pixels) and scores of groups of nearby handwriting-like components."""
    ink = (candidates > 0).astype(np.uint8)
    grouped = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_RECT, GROUP_KERNEL))
    count, labels = cv2.connectedComponents(grouped, connectivity=8)
    boxes, scores = [], []
    for k in range(1, count):
        ys, xs = np.nonzero((labels == k) & (ink > 0))
        fills = candidates[ys, xs]
        x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        # more handwriting-like ink and sparser strokes: more likely a signature
        evidence = 1.2 * (np.log(len(xs)) - 5.5) + 6.0 * (MAX_FILL - float(fills.mean())) + 0.5 * np.log((x1 - x0) / (y1 - y0))
        boxes.append((x0, y0, x1, y1))
        scores.append(1 / (1 + np.exp(-evidence)))
    return np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32)
