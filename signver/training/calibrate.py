"""Fit a model's confidence (signver.calibration) and store it in its model card.

Fitted on the held-out training writers: they belong to the training split, so no test writer
shapes the confidence, yet the network never saw them in its gradient, so their distances
look like those of people it has never met. Needs no torch.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np

from ..calibration import Calibration, fit_calibration
from ..datasets import Dataset, read_dataset
from ..errors import DatasetError, ModelError
from ..evaluation.metrics import eer
from ..evaluation.protocols import POSITIVE, SKILLED, Trials, p1_pairs, p2_references
from ..extractor import Extractor, get_extractor
from ..matcher import FUSIONS, score_trials
from ..models import DEFAULT_EXTRACTOR, ModelCard, load_card, write_card
from .data import embedded, writers_for

RULE = "logistic on distance; genuine vs skilled-forgery P1 pairs of held-out training writers, classes weighted equally"
CLAIM_RULE = ("P2 on held-out training writers with K references and this fusion: threshold at the skilled-forgery EER point, "
              "calibration as for pairs")
MAX_REFERENCES = 12  # held-out writers have 24 genuine signatures: K = 12 leaves 12 to question


def calibration_sources(card: ModelCard, data_root: str | Path) -> list[dict]:
    """The card's training sources with their held-out writers, read from `data_root`. A model
    trained on no signatures (the ImageNet baseline) borrows the default model's writers."""
    sources = card.details.get("trained_on")
    if not (isinstance(sources, list) and sources and all(s.get("holdout") for s in sources)):
        sources = load_card(DEFAULT_EXTRACTOR).details.get("trained_on")
        if not (isinstance(sources, list) and all(s.get("holdout") for s in sources)):
            raise ModelError(f"neither {card.name} nor {DEFAULT_EXTRACTOR} lists held-out training writers to calibrate on")
    return [{**s, "path": str(Path(data_root) / Path(s["path"]).name)} for s in sources]


def _entry(calibration: Calibration) -> dict:
    return {**calibration.to_dict(), "a": round(calibration.a, 6), "b": round(calibration.b, 6)}


def held_out_embeddings(extractor: Extractor, sources: list[dict]) -> list[tuple[Dataset, list[str], dict[Path, np.ndarray]]]:
    """Per source: its dataset, its held-out writers, and every image of theirs embedded once."""
    found = []
    for source in sources:  # every source checked before any embedding
        dataset = read_dataset(source["path"])
        writers = writers_for(source, dataset, "holdout")
        missing = sorted({str(w) for w in source["holdout"]} - set(writers), key=lambda w: (len(w), w))
        if missing:  # fitting on fewer writers would silently rewrite the card from a fraction of them
            raise DatasetError(f"{source['path']} lacks held-out writer(s) {', '.join(missing)} of the card: calibrate needs all of them")
        found.append((dataset, writers))
    result = []
    for dataset, writers in found:
        paths = [s.path for w in writers for s in dataset.genuine(w) + dataset.forged(w)]
        result.append((dataset, writers, dict(zip(paths, embedded(extractor, paths, f"embedding {dataset.name}'s held-out writers")))))
    return result


def trial_distances(trials: Trials, vectors: dict[Path, np.ndarray], fusion: str) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and skilled-forgery distances of a protocol's trials."""
    embeddings = np.stack([vectors[p] for p in trials.images])
    distances = score_trials(embeddings, trials.references, trials.questioned, fusion)
    return distances[trials.kind == POSITIVE], distances[trials.kind == SKILLED]


def fit_model_calibration(model_name: str, data_root: str | Path = "../shared/data", max_references: int = MAX_REFERENCES) -> dict:
    """Fit a model's pair calibration (P1 pairs) and its claim rules (P2 with K = 1 ..
    `max_references` for every fusion: threshold at the EER point, calibration as for pairs),
    all on held-out training writers; write them into the card and return what was written."""
    card = load_card(model_name)
    sources = calibration_sources(card, data_root)
    embedded = held_out_embeddings(Extractor(model_name), sources)
    fitted_on = [{"dataset": Path(s["path"]).name, "split": s.get("split"), "writers": s["holdout"]} for s in sources]

    def pooled(make_trials, fusion: str) -> tuple[np.ndarray, np.ndarray]:
        parts = [trial_distances(make_trials(dataset, writers), vectors, fusion) for dataset, writers, vectors in embedded]
        return np.concatenate([g for g, _ in parts]), np.concatenate([s for _, s in parts])

    pair = fit_calibration(*pooled(p1_pairs, "mean"), "skilled", fitted_on)
    fewest_genuine = min(len(dataset.genuine(w)) for dataset, writers, _ in embedded for w in writers)
    claims = {}
    for fusion in FUSIONS:
        by_references = {}
        for k in range(1, min(max_references, fewest_genuine - 1) + 1):
            genuine, skilled = pooled(lambda dataset, writers: p2_references(dataset, writers, k), fusion)
            rate, threshold = eer(genuine, skilled)
            by_references[str(k)] = {"threshold": round(threshold, 6), "eer_skilled": round(rate, 4),
                                     "calibration": _entry(fit_calibration(genuine, skilled, "skilled"))}
        claims[fusion] = {"rule": CLAIM_RULE, "fitted_on": fitted_on, "by_references": by_references}
    written = {
        "calibration": {**_entry(pair), "rule": RULE, "date": date.today().isoformat(), "made_by": f"signver calibrate --model {card.name}"},
        "claims": claims,
    }
    card_path = card.path.with_suffix(".json")
    data = json.loads(card_path.read_text())
    data.update(written)
    write_card(card_path, data)
    get_extractor.cache_clear()  # so verify() in this process sees the new card
    return written
