"""Distances between embeddings, fusion over several references, and the decision."""

from __future__ import annotations

import numpy as np

from .errors import InputError

FUSIONS = ("mean", "min", "median")
# The distance to the nearest reference: lowest P2 skilled EER on held-out training writers
# (benchmarks/fusion.py; docs/benchmarks.md, "Fusing K references").
DEFAULT_FUSION = "min"


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors, row by row (broadcasting like numpy)."""
    return np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1)


def check_threshold(threshold: float | None) -> float | None:
    """A decision threshold is a distance between unit vectors: refuse anything outside 0..2
    (NaN included) before any work, rather than deciding every case the same way."""
    if threshold is not None and not 0 <= threshold <= 2:
        raise InputError(f"a threshold is a distance between unit vectors, from 0 to 2; got {threshold}")
    return threshold


def fuse(reference_distances: np.ndarray, method: str = DEFAULT_FUSION) -> np.ndarray:
    """One distance per questioned signature from its distances to K references (last axis)."""
    if method not in FUSIONS:
        raise InputError(f"unknown fusion {method!r}; choose one of {', '.join(FUSIONS)}")
    return getattr(np, method)(reference_distances, axis=-1)


def score_trials(embeddings: np.ndarray, references: np.ndarray, questioned: np.ndarray, fusion: str = DEFAULT_FUSION) -> np.ndarray:
    """Fused distance of each questioned embedding to its references (indices into embeddings)."""
    reference_vectors = embeddings[references]  # (n, K, D)
    questioned_vectors = embeddings[questioned][:, None, :]  # (n, 1, D)
    return fuse(distances(reference_vectors, questioned_vectors), fusion)
