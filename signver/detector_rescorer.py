"""Re-score the detector's candidate boxes with what the heatmap peak alone does not weigh: the
box's shape, size and place on the page.

The centre heatmap scores a well-boxed signature anywhere from 0.3 to 0.9, and a few stray marks
as high, so one threshold must trade recall for clean signature-free pages. A small MLP, fitted
on the candidates the detector finds on the training pages (`signver train detector-rescorer`),
turns the peak score and the box geometry into the probability that the box is a signature.
Its weights live in the detector's model card as plain numbers, so inference is numpy only.
"""

from __future__ import annotations

import numpy as np

FEATURES = ("score logit", "log width/height", "centre x / page width", "centre y / page height",
            "log width / page width", "log height / page height")


def box_features(boxes: np.ndarray, scores: np.ndarray, page_shape: tuple[int, int]) -> np.ndarray:
    """(K, len(FEATURES)) features of boxes (K, 4) x0, y0, x1, y1 in the pixels of a page of
    `page_shape` (h, w), with their network scores."""
    h, w = float(page_shape[0]), float(page_shape[1])
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    p = np.clip(np.asarray(scores, np.float64), 1e-4, 1 - 1e-4)
    bw = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    bh = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    return np.stack([np.log(p / (1 - p)), np.log(bw / bh), (boxes[:, 0] + boxes[:, 2]) / 2 / w, (boxes[:, 1] + boxes[:, 3]) / 2 / h,
                     np.log(bw / w), np.log(bh / h)], axis=1)


class Rescorer:
    """Standardise, one ReLU hidden layer, sigmoid: the card's `rescorer` section."""

    def __init__(self, spec: dict):
        if tuple(spec["features"]) != FEATURES:
            raise ValueError(f"rescorer features {spec['features']} do not match this version's {list(FEATURES)}")
        self.mean, self.scale = np.asarray(spec["mean"]), np.asarray(spec["scale"])
        self.layers = [(np.asarray(layer["weight"]), np.asarray(layer["bias"])) for layer in spec["layers"]]
        self.candidate_floor = float(spec["candidate_floor"])

    def __call__(self, features: np.ndarray) -> np.ndarray:
        h = (features - self.mean) / self.scale
        for weight, bias in self.layers[:-1]:
            h = np.maximum(h @ weight + bias, 0.0)
        weight, bias = self.layers[-1]
        return (1.0 / (1.0 + np.exp(-(h @ weight + bias)[:, 0]))).astype(np.float32)
