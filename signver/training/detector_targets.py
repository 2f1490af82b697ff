"""What the centre detector is trained to output for a page's boxes (TTFNet-style targets).

Heatmap: an elliptical Gaussian per box on the stride-s grid, its spread proportional to the
box's width and height, 1 at the cell holding the box centre. Box regression: every cell in a
smaller Gaussian around the centre learns the whole box (not just the centre cell), weighted by
the Gaussian and by log(box area), so each signature gives many training samples; where boxes
share cells the smaller box wins. numpy only, built per page in the data pipeline.
"""

from __future__ import annotations

import numpy as np

HEAT_SPREAD = 0.54  # Gaussian sigma = spread x side / 6 (TTFNet's alpha)
BOX_SPREAD = 0.54  # share of each side, around the centre, whose cells regress the box (beta)


def centre_targets(boxes: np.ndarray, size: tuple[int, int], stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Heatmap (h, w), box targets (4, h, w) x0, y0, x1, y1 in input pixels, and regression
    weights (h, w) for boxes (N, 4) on an input of `size` (H, W)."""
    h, w = size[0] // stride, size[1] // stride
    heat = np.zeros((h, w), np.float32)
    box_target = np.zeros((4, h, w), np.float32)
    weight = np.zeros((h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for x0, y0, x1, y1 in boxes[np.argsort(-areas, kind="stable")]:
        bw, bh = (x1 - x0) / stride, (y1 - y0) / stride
        if bw <= 0 or bh <= 0:
            continue
        cx = min(int((x0 + x1) / 2 / stride), w - 1)
        cy = min(int((y0 + y1) / 2 / stride), h - 1)
        dx2, dy2 = (xs - cx) ** 2, (ys - cy) ** 2
        sx, sy = max(HEAT_SPREAD * bw / 6, 0.3), max(HEAT_SPREAD * bh / 6, 0.3)
        np.maximum(heat, np.exp(-dx2 / (2 * sx * sx) - dy2 / (2 * sy * sy)), out=heat)
        heat[cy, cx] = 1.0
        rx, ry = max(BOX_SPREAD * bw / 2, 0.5), max(BOX_SPREAD * bh / 2, 0.5)
        region = (dx2 <= rx * rx) & (dy2 <= ry * ry)
        gaussian = np.exp(-dx2 / (2 * (rx / 3) ** 2) - dy2 / (2 * (ry / 3) ** 2)) * region
        box_target[:, region] = np.array([x0, y0, x1, y1], np.float32)[:, None]
        weight[region] = gaussian[region] / gaussian.sum() * np.log(max(bw * bh * stride * stride, 2.0))
    return heat, box_target, weight
