"""Verification metrics from distances: EER, ROC AUC, balanced accuracy, FAR/FRR.

Convention: a smaller distance means "more likely the same writer"; a pair is accepted when
its distance is at most the threshold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

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


def writer_bootstrap(writers: np.ndarray, statistic: Callable[[np.ndarray], float | np.ndarray], draws: int = 1000,
                     level: float = 0.95, seed: int = 0) -> np.ndarray:
    """Percentile interval of `statistic` when the writers are drawn again, with replacement.

    A writer's trials share their references and forger, so they are not independent:
    resampling single trials would make the interval too narrow. `writers` names each trial's
    writer; `statistic(indices)` is given the trial indices of one draw (a writer drawn twice
    appears twice) and returns a number or an array. Returns the lower and upper bounds, stacked
    on a first axis of 2; draws where the statistic is NaN are left out (NaN bounds if every draw is).
    """
    _, group = np.unique(np.asarray(writers), return_inverse=True)
    members = [np.flatnonzero(group == k) for k in range(group.max() + 1)]
    rng = np.random.default_rng(seed)
    values = np.array([statistic(np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))]))
                       for _ in range(draws)], dtype=np.float64)
    tail = 100 * (1 - level) / 2
    with warnings.catch_warnings():  # a statistic no draw can compute has NaN bounds, said above
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(values, [tail, 100 - tail], axis=0)


def named_intervals(bounds: np.ndarray, names: Sequence[str]) -> dict[str, list[float]]:
    """`writer_bootstrap`'s bounds of several statistics by name, leaving out those no draw could compute."""
    return {name: [float(bounds[0, k]), float(bounds[1, k])] for k, name in enumerate(names) if np.isfinite(bounds[:, k]).all()}


def _equal_priors(genuine_p: np.ndarray, impostor_p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Probabilities, labels and weights where each class weighs one half in all, matching the
    equal priors a calibration's probabilities assume, however many trials each class has."""
    p = np.r_[genuine_p, impostor_p].astype(np.float64)
    y = np.r_[np.ones(len(genuine_p)), np.zeros(len(impostor_p))]
    w = np.r_[np.full(len(genuine_p), 0.5 / len(genuine_p)), np.full(len(impostor_p), 0.5 / len(impostor_p))]
    return p, y, w


def reliability_bins(genuine_p: np.ndarray, impostor_p: np.ndarray, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin of P(genuine): mean predicted, observed genuine fraction and the
    bin's share of the weight (classes weighted equally); empty bins are NaN with weight 0."""
    p, y, w = _equal_priors(genuine_p, impostor_p)
    which = np.minimum((p * bins).astype(int), bins - 1)
    weight = np.bincount(which, w, bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        predicted = np.bincount(which, w * p, bins) / weight
        observed = np.bincount(which, w * y, bins) / weight
    return predicted, observed, weight


def expected_calibration_error(genuine_p: np.ndarray, impostor_p: np.ndarray, bins: int = 10) -> float:
    """Sum over bins of the bin's weight x |observed genuine fraction - mean predicted|."""
    predicted, observed, weight = reliability_bins(genuine_p, impostor_p, bins)
    filled = weight > 0
    return float(np.sum(weight[filled] * np.abs(observed[filled] - predicted[filled])))


def brier_score(genuine_p: np.ndarray, impostor_p: np.ndarray) -> float:
    """Mean squared error of P(genuine), classes weighted equally (0.25 = always saying 0.5)."""
    p, y, w = _equal_priors(genuine_p, impostor_p)
    return float(np.sum(w * (p - y) ** 2))


def cllr(genuine_log_lr: np.ndarray, impostor_log_lr: np.ndarray) -> float:
    """Log-likelihood-ratio cost (bits), the forensic measure of an LR system: 0 is perfect,
    1 is a system that always says LR = 1, above 1 the LRs mislead."""
    return float((np.mean(np.logaddexp(0, -genuine_log_lr)) + np.mean(np.logaddexp(0, impostor_log_lr))) / (2 * np.log(2)))
