"""ROC, DET, distance-distribution and reliability plots (PNG) for an evaluation run."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from .metrics import reliability_bins, roc  # noqa: E402

COLOURS = {"genuine": "tab:green", "skilled": "tab:red", "random": "tab:blue"}


def save(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def roc_plot(genuine: np.ndarray, impostors: dict[str, np.ndarray], title: str, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, distances in impostors.items():
        far, tar, _ = roc(genuine, distances)
        axes.plot(far, tar, label=f"{name} forgeries", color=COLOURS[name])
    axes.plot([0, 1], [0, 1], ":", color="grey")
    axes.set(xlabel="false accept rate", ylabel="true accept rate", title=title, xlim=(0, 1), ylim=(0, 1))
    axes.legend(loc="lower right")
    return save(figure, path)


def det_plot(genuine: np.ndarray, impostors: dict[str, np.ndarray], title: str, path: Path) -> Path:
    """Detection error trade-off on normal-deviate axes, as biometrics reports draw it."""
    ticks = np.array([0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6])
    clip = (1e-4, 1 - 1e-4)
    figure, axes = plt.subplots(figsize=(5, 5))
    for name, distances in impostors.items():
        far, tar, _ = roc(genuine, distances)
        axes.plot(norm.ppf(np.clip(far, *clip)), norm.ppf(np.clip(1 - tar, *clip)), label=f"{name} forgeries", color=COLOURS[name])
    axes.set_xticks(norm.ppf(ticks), [f"{t:.1%}" for t in ticks])
    axes.set_yticks(norm.ppf(ticks), [f"{t:.1%}" for t in ticks])
    limits = norm.ppf([0.0005, 0.7])
    axes.set(xlabel="false accept rate", ylabel="false reject rate", title=title, xlim=limits, ylim=limits)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right")
    return save(figure, path)


def distance_plot(groups: dict[str, np.ndarray], threshold: float | None, title: str, path: Path) -> Path:
    figure, axes = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, max(float(np.max(d)) for d in groups.values() if len(d)) * 1.02, 60)
    for name, distances in groups.items():
        if len(distances):  # a density of no pairs is 0 / 0 (one writer has no random pairs)
            axes.hist(distances, bins=bins, density=True, alpha=0.45, label=f"{name} ({len(distances)})", color=COLOURS[name])
    if threshold is not None:
        axes.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    axes.set(xlabel="distance", ylabel="density", title=title)
    axes.legend()
    return save(figure, path)


def reliability_plot(genuine_p: np.ndarray, impostor_p: np.ndarray, title: str, path: Path, bins: int = 10) -> Path:
    """Observed genuine fraction against predicted P(genuine) per bin (classes weighted
    equally), over each bin's share of the trials: on the diagonal means calibrated."""
    predicted, observed, weight = reliability_bins(genuine_p, impostor_p, bins)
    edges = np.linspace(0, 1, bins + 1)
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], ":", color="grey", label="perfectly calibrated")
    top.plot(predicted, observed, "o-", color=COLOURS["genuine"], label="genuine vs skilled")
    top.set(ylabel="observed fraction genuine", title=title, xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left")
    bottom.bar(edges[:-1], weight, width=1 / bins, align="edge", color="grey", edgecolor="white")
    bottom.set(xlabel="predicted P(genuine)", ylabel="share")
    return save(figure, path)


def precision_recall_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], threshold: float, title: str, path: Path) -> Path:
    """Detection precision against recall, one curve per IoU level (from
    `evaluation.detection.precision_recall_curve`), each marked where the score threshold cuts it."""
    figure, axes = plt.subplots(figsize=(5, 5))
    for (label, (precision, recall, scores)), colour in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green")):
        axes.plot(recall, precision, label=label, color=colour)
        kept = np.flatnonzero(scores >= threshold)
        if len(kept):
            axes.plot(recall[kept[-1]], precision[kept[-1]], "o", color=colour)
    axes.plot([], [], "o", color="grey", label=f"score threshold {threshold:.3f}")
    axes.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1.01), ylim=(0, 1.01))
    axes.grid(alpha=0.3)
    axes.legend(loc="lower left")
    return save(figure, path)
