"""Verification metrics from distances: EER, ROC AUC, balanced accuracy, FAR/FRR.

Convention: a smaller distance means "more likely the same writer"; a pair is accepted when
its distance is at most the threshold.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def roc(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False-accept rate, true-accept rate and distance thresholds, thresholds increasing."""
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    far, tar, thresholds = roc_curve(labels, -np.r_[genuine, impostor], drop_intermediate=False)
    return far[1:], tar[1:], -thresholds[1:]


def eer(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the distance threshold where FAR and FRR cross (interpolated)."""
    far, tar, thresholds = roc(genuine, impostor)
    frr = 1 - tar
    i = int(np.argmax(far >= frr))  # first point where FAR has caught up with FRR
    if i == 0:
        return float((far[0] + frr[0]) / 2), float(thresholds[0])
    # interpolate between points i-1 and i, where (far - frr) changes sign
    d0, d1 = far[i - 1] - frr[i - 1], far[i] - frr[i]
    t = d0 / (d0 - d1) if d1 != d0 else 0.0
    rate = far[i - 1] + t * (far[i] - far[i - 1])
    threshold = thresholds[i - 1] + t * (thresholds[i] - thresholds[i - 1])
    return float(rate), float(threshold)


def auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    labels = np.r_[np.ones(len(genuine)), np.zeros(len(impostor))]
    return float(roc_auc_score(labels, -np.r_[genuine, impostor]))


def best_balanced_accuracy(genuine: np.ndarray, impostor: np.ndarray) -> tuple[float, float]:
    """Max over thresholds of (TPR + TNR) / 2, and the threshold reaching it."""
    far, tar, thresholds = roc(genuine, impostor)
    balanced = (tar + 1 - far) / 2
    i = int(np.argmax(balanced))
    return float(balanced[i]), float(thresholds[i])


def accept_rate(distances: np.ndarray, threshold: float) -> float:
    return float(np.mean(distances <= threshold)) if len(distances) else float("nan")
