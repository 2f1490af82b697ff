"""`signver evaluate`: embed every image once, score the protocol's trials, write the report."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..calibration import Calibration
from ..cleaner import resolve as resolve_clean
from ..datasets import get_split, read_dataset, select_writers
from ..extractor import Extractor
from ..folders import output_folder
from ..models import ModelCard
from ..errors import InputError
from ..matcher import DEFAULT_FUSION, fuse, score_trials
from . import plots
from .metrics import accept_rate, auc, best_balanced_accuracy, brier_score, cllr, eer, expected_calibration_error, named_intervals, writer_bootstrap
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
    for name, impostor in (("skilled", skilled), ("random", random)):
        if len(genuine) and len(impostor):  # balanced_accuracy_{name} is at its best threshold on this data; this is the product's
            result[f"balanced_accuracy_{name}_at_threshold"] = 1 - (result["frr_at_threshold"] + result[f"far_{name}_at_threshold"]) / 2
    return result


def eer_intervals(distances: np.ndarray, trials: Trials, draws: int = 1000) -> dict[str, list[float]]:
    """95 % intervals of the skilled and random EER with the writers drawn again
    (`writer_bootstrap`): how far another set of as many writers could move them. None with
    fewer than two writers: every draw is the one writer again, an interval of zero width."""
    if len(np.unique(trials.claimed)) < 2:
        return {}

    def statistic(indices: np.ndarray) -> np.ndarray:
        d, kind = distances[indices], trials.kind[indices]
        genuine = d[kind == POSITIVE]
        return np.array([eer(genuine, d[kind == k])[0] if len(genuine) and np.any(kind == k) else np.nan for k in (SKILLED, RANDOM)])

    return named_intervals(writer_bootstrap(trials.claimed, statistic, draws=draws), ("eer_skilled", "eer_random"))


def calibration_metrics(distances: np.ndarray, kind: np.ndarray, calibration: Calibration) -> dict[str, float]:
    """How well the card's confidence holds on these trials: genuine vs skilled, each class
    weighing half (the equal priors the calibration assumes); ECE over 10 equal-width bins."""
    genuine, skilled = distances[kind == POSITIVE], distances[kind == SKILLED]
    if not (len(genuine) and len(skilled)):
        return {}
    return {
        "ece": expected_calibration_error(calibration.probability(genuine), calibration.probability(skilled)),
        "brier": brier_score(calibration.probability(genuine), calibration.probability(skilled)),
        "cllr": cllr(calibration.log_lr(genuine), calibration.log_lr(skilled)),
    }


def decision_rule(card: ModelCard, protocol: str, fusion: str, references: int) -> tuple[float | None, Calibration | None, str]:
    """The threshold and calibration the product itself would use for these trials: the
    card's pair rule for P1, its claim rule for this fusion and K for P2."""
    if protocol == "p2":
        rule = card.claim_rule(fusion, references)
        if rule:
            source = "model card pair rule (one reference)" if references == 1 and card.calibration else f"model card claims ({fusion}, K={references})"
            return rule.threshold, rule.calibration, source
        return None, None, "EER on this data (the model card has no claim rule for this fusion)"
    if card.threshold is None:
        return None, None, "EER on this data (no model threshold)"
    return card.threshold, card.calibration, "model card"


def build_trials(data_dir: str | Path, protocol: str, references: int, split: str | None, test_writers: str | None) -> tuple[str, Trials]:
    dataset = read_dataset(data_dir)
    writers = select_writers(dataset, split, test_writers)
    if protocol == "p1":
        return dataset.name, p1_pairs(dataset, writers)
    if protocol == "p2":
        return dataset.name, p2_references(dataset, writers, references)
    raise InputError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def counted(progress: Callable[[int, int], None] | None, total: int) -> Callable[[int], None]:
    """`Extractor.embed`'s progress (images per batch) told on as `progress(done, total)`."""
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(done, total)

    return advance


def evaluate(
    data_dir: str | Path,
    out: str | Path,
    protocol: str = "p1",
    references: int = 5,
    split: str | None = None,
    test_writers: str | None = None,
    model: str | None = None,
    fusion: str = DEFAULT_FUSION,
    progress: Callable[[int, int], None] | None = None,
    clean: bool | None = None,
) -> dict:
    """Run a protocol on a dataset folder and write metrics.json and plots into `out`.

    `progress(done, total)` is told how many images have been embedded; `clean` cleans each
    image first (None: `signver.cleaner.DEFAULT_CLEAN`).
    """
    fuse(np.zeros((1, 1)), fusion)  # an unknown fusion is refused before anything is embedded
    dataset_name, trials = build_trials(data_dir, protocol, references, split, test_writers)
    out = output_folder(out, contents="metrics.json and the plots", outside=data_dir,
                        files=("metrics.json", "roc.png", "det.png", "distances.png", "reliability.png"))
    extractor = Extractor(model)
    embeddings = extractor.embed(trials.images, progress=counted(progress, len(trials.images)), clean=clean)
    distances = score_trials(embeddings, trials.references, trials.questioned, fusion)
    threshold, calibration, source = decision_rule(extractor.card, protocol, fusion, trials.references.shape[1])
    if threshold is None:
        threshold = eer(distances[trials.kind == POSITIVE], distances[trials.kind == SKILLED])[1]
    metrics = {
        "protocol": protocol,
        "dataset": dataset_name,
        "split": split,
        "model": extractor.name,
        "references": int(trials.references.shape[1]),
        "fusion": fusion,
        "cleaned": resolve_clean(clean),
        "n_writers": len(trials.writers),
        "n_images": len(trials.images),
        "n_positive": trials.count(POSITIVE),
        "n_skilled": trials.count(SKILLED),
        "n_random": trials.count(RANDOM),
        **metrics_for(distances, trials.kind, threshold),
        "intervals_95": eer_intervals(distances, trials),
        **(calibration_metrics(distances, trials.kind, calibration) if calibration else {}),
        "threshold_source": source,
        "test_writers": trials.writers,
        **({"split_writers_missing": [w for w in get_split(split).test if w not in trials.writers]} if split else {}),
    }
    write_report(out, metrics, distances, trials.kind, calibration)
    return metrics


def write_report(out: Path, metrics: dict, distances: np.ndarray, kind: np.ndarray, calibration: Calibration | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    title = f"{metrics['dataset']} {metrics['protocol'].upper()} ({metrics['model']})"
    genuine = distances[kind == POSITIVE]
    impostors = {name: distances[kind == k] for name, k in (("skilled", SKILLED), ("random", RANDOM)) if np.any(kind == k)}
    plots.roc_plot(genuine, impostors, title, out / "roc.png")
    plots.det_plot(genuine, impostors, title, out / "det.png")
    plots.distance_plot({"genuine": genuine, **impostors}, metrics["threshold"], title, out / "distances.png")
    if calibration and "ece" in metrics:
        plots.reliability_plot(calibration.probability(genuine), calibration.probability(impostors["skilled"]), title, out / "reliability.png")
    else:  # an earlier model's plot left beside these metrics would read as this model's
        (out / "reliability.png").unlink(missing_ok=True)
    (out / "metrics.json").write_text(metrics_json(metrics))


def metrics_json(metrics: dict) -> str:
    """metrics.json as strict JSON: a rate that cannot be computed (no skilled forgeries, one
    writer) is null, not the NaN that strict parsers reject."""
    def finite(value):
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [finite(v) for v in value]
        return value

    return json.dumps(finite(metrics), indent=2, allow_nan=False) + "\n"
