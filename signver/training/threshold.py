"""The default decision threshold of a model, chosen on training writers only.

It is the distance at which false accepts of skilled forgeries equal false rejects (EER) over
P1 pairs of the training writers of every dataset listed, so no test writer ever shapes it.
"""

from __future__ import annotations

import numpy as np

from ..datasets import read_dataset, split_for
from ..evaluation.metrics import eer
from ..evaluation.protocols import POSITIVE, SKILLED, p1_pairs
from ..extractor import Extractor
from ..matcher import score_trials
from .data import embedded


def training_pair_distances(extractor: Extractor, sources: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Genuine and skilled-forgery P1 distances over the training writers of each source
    (`{"path": DATA_DIR, "split": NAME}`)."""
    genuine, skilled = [], []
    for source in sources:
        dataset = read_dataset(source["path"])
        writers = split_for(dataset, source["split"]).train_writers(dataset.writers())
        trials = p1_pairs(dataset, writers)
        embeddings = embedded(extractor, trials.images, f"embedding {dataset.name}'s training writers")
        distances = score_trials(embeddings, trials.references, trials.questioned)
        genuine.append(distances[trials.kind == POSITIVE])
        skilled.append(distances[trials.kind == SKILLED])
    return np.concatenate(genuine), np.concatenate(skilled)


def choose_threshold(extractor: Extractor, sources: list[dict]) -> tuple[float, dict]:
    genuine, skilled = training_pair_distances(extractor, sources)
    rate, threshold = eer(genuine, skilled)
    return threshold, {"training_eer_skilled": rate, "n_positive": len(genuine), "n_skilled": len(skilled)}
