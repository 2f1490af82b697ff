"""`signver evaluate`: embed every image once, score the protocol's trials, write the report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..datasets import read_dataset, select_writers
from ..extractor import Extractor
from ..matcher import score_trials
from . import plots
from .metrics import accept_rate, auc, best_balanced_accuracy, eer
from .protocols import POSITIVE, RANDOM, SKILLED, Trials, p1_pairs, p2_references

PROTOCOLS = ("p1", "p2")


def metrics_for(distances: np.ndarray, kind: np.ndarray, threshold: float) -> dict[str, float]:
    """Every metric of the README's protocols from trial distances and their kinds."""
    genuine, skilled, random = (distances[kind == k] for k in (POSITIVE, SKILLED, RANDOM))
    result: dict[str, float] = {"threshold": float(threshold)}
    for name, impostor in (("skilled", skilled), ("random", random)):
        if len(genuine) and len(impostor):
            result[f"eer_{name}"], result[f"eer_threshold_{name}"] = eer(genuine, impostor)
            result[f"auc_{name}"] = auc(genuine, impostor)
            result[f"balanced_accuracy_{name}"], result[f"balanced_accuracy_threshold_{name}"] = best_balanced_accuracy(genuine, impostor)
        result[f"far_{name}_at_threshold"] = accept_rate(impostor, threshold)
    result["frr_at_threshold"] = 1 - accept_rate(genuine, threshold)
    return result


def build_trials(data_dir: str | Path, protocol: str, references: int, split: str | None, test_writers: str | None) -> tuple[str, Trials]:
    dataset = read_dataset(data_dir)
    writers = select_writers(dataset, split, test_writers)
    if protocol == "p1":
        return dataset.name, p1_pairs(dataset, writers)
    if protocol == "p2":
        return dataset.name, p2_references(dataset, writers, references)
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def evaluate(
    data_dir: str | Path,
    out: str | Path,
    protocol: str = "p1",
    references: int = 5,
    split: str | None = None,
    test_writers: str | None = None,
    model: str | None = None,
    fusion: str = "mean",
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Run a protocol on a dataset folder and write metrics.json and plots into `out`.

    `progress(done, total)` is told how many images have been embedded.
    """
    dataset_name, trials = build_trials(data_dir, protocol, references, split, test_writers)
    extractor = Extractor(model)
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, len(trials.images))

    embeddings = extractor.embed(trials.images, progress=advance)
    distances = score_trials(embeddings, trials.references, trials.questioned, fusion)
    threshold = extractor.card.threshold
    if threshold is None:
        threshold = eer(distances[trials.kind == POSITIVE], distances[trials.kind == SKILLED])[1]
    metrics = {
        "protocol": protocol,
        "dataset": dataset_name,
        "split": split,
        "model": extractor.name,
        "references": int(trials.references.shape[1]),
        "fusion": fusion,
        "n_writers": len(trials.writers),
        "n_images": len(trials.images),
        "n_positive": trials.count(POSITIVE),
        "n_skilled": trials.count(SKILLED),
        "n_random": trials.count(RANDOM),
        **metrics_for(distances, trials.kind, threshold),
        "threshold_source": "model card" if extractor.card.threshold is not None else "EER on this data (no model threshold)",
        "test_writers": trials.writers,
    }
    write_report(Path(out), metrics, distances, trials.kind)
    return metrics


def write_report(out: Path, metrics: dict, distances: np.ndarray, kind: np.ndarray) -> None:
    out.mkdir(parents=True, exist_ok=True)
    title = f"{metrics['dataset']} {metrics['protocol'].upper()} ({metrics['model']})"
    genuine = distances[kind == POSITIVE]
    impostors = {name: distances[kind == k] for name, k in (("skilled", SKILLED), ("random", RANDOM)) if np.any(kind == k)}
    plots.roc_plot(genuine, impostors, title, out / "roc.png")
    plots.det_plot(genuine, impostors, title, out / "det.png")
    plots.distance_plot({"genuine": genuine, **impostors}, metrics["threshold"], title, out / "distances.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
