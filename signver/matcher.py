"""Distances between embeddings, fusion over several references, and the decision."""

from __future__ import annotations

import numbers

import numpy as np

from .errors import InputError

FUSIONS = ("mean", "min", "median", "scaled")
# "scaled": the distance to the nearest reference divided by the references' own spread (their
# mean distance to each other) to the power SPREAD_EXPONENT, so a writer whose signatures vary
# is not held to the distances of one who signs the same way every time. Lowest P2 skilled EER
# on held-out training writers (benchmarks/fusion.py; docs/benchmarks.md, "Fusing K references").
DEFAULT_FUSION = "scaled"
SPREAD_EXPONENT = 0.75  # chosen on held-out training writers from 0, 0.25, 0.5, 0.75, 1
# Signatures closer than this share of the model's decision distance are one scan given twice,
# perhaps saved again: JPEG at quality 90 moved lite0-heads' vectors by at most 0.05 of it. No
# two signings of CEDAR's training writers come closer than 0.32 of it (docs/benchmarks.md,
# "Claims against enrolled references").
NEAR_COPY_SHARE = 0.15


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors, row by row (broadcasting like numpy)."""
    return np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1)


def copy_distance(threshold: float | None) -> float:
    """The distance under which two signatures are one scan: NEAR_COPY_SHARE of the model's threshold."""
    return NEAR_COPY_SHARE * (threshold or 0.0) or 1e-4


def copy_note(nearest: float, threshold: float | None, of: str) -> str | None:
    """What to say when the questioned signature is a copy of `of` (its distance `nearest`): a
    scan pasted or saved again is no evidence of a new signing, whatever the decision says."""
    if nearest >= copy_distance(threshold):
        return None
    return (f"the same scan as {of} (distance {nearest:.4f}, under {copy_distance(threshold):.4f}), perhaps saved again: "
            "a copy is no evidence of a new signing")


def check_threshold(threshold: float | None) -> float | None:
    """A decision threshold is a non-negative number: refuse anything else (NaN included)
    before any work, rather than deciding every case the same way."""
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold < float("inf")
                                  or not fits_float(threshold)):
        raise InputError(f"a threshold must be a finite, non-negative number; got {threshold!r}")
    return threshold


def fits_float(value: numbers.Real) -> bool:
    """Whether a number converts to a float: a Python int of 400 digits compares below infinity but does not."""
    try:
        float(value)
    except OverflowError:
        return False
    return True


def check_k(k: int) -> int:
    """How many candidates identification returns: a whole number of at least 1, as a Python
    int (a numpy integer would overflow when multiplied, and faiss refuses one)."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise InputError(f"k must be a whole number of at least 1, got {k!r}")
    return int(k)


def reference_spread(reference_vectors: np.ndarray) -> np.ndarray:
    """The mean distance between a set's K references to each other (K, D -> a number, or
    batched ..., K, D); 1 where K = 1, which leaves a scaled distance unscaled."""
    vectors = np.asarray(reference_vectors, np.float32)
    k = vectors.shape[-2]
    if k < 2:
        return np.ones(vectors.shape[:-2], np.float32)
    # |a - b|^2 = |a|^2 + |b|^2 - 2 a.b from the K x K products: broadcasting the differences
    # would hold K x K x D numbers per set, gigabytes over an evaluation's trials
    squared = np.einsum("...kd,...kd->...k", vectors, vectors)
    gram = np.einsum("...id,...jd->...ij", vectors, vectors)
    pairwise = np.sqrt(np.maximum(squared[..., :, None] + squared[..., None, :] - 2 * gram, 0)) * (1 - np.eye(k, dtype=np.float32))
    return pairwise.sum(axis=(-1, -2)) / (k * (k - 1))


def fuse(reference_distances: np.ndarray, method: str = DEFAULT_FUSION, references: np.ndarray | None = None) -> np.ndarray:
    """One score per questioned signature from its distances to K references (last axis).
    The "scaled" fusion also reads the reference vectors themselves (..., K, D) for their
    spread; without them it is left unscaled."""
    if method not in FUSIONS:
        raise InputError(f"unknown fusion {method!r}; choose one of {', '.join(FUSIONS)}")
    if method == "scaled":
        spread = 1.0 if references is None else reference_spread(references)
        return np.min(reference_distances, axis=-1) / np.maximum(spread, 1e-6) ** SPREAD_EXPONENT
    return getattr(np, method)(reference_distances, axis=-1)


def score_trials(embeddings: np.ndarray, references: np.ndarray, questioned: np.ndarray, fusion: str = DEFAULT_FUSION,
                 chunk: int = 1024) -> np.ndarray:
    """Fused score of each questioned embedding against its references (indices into embeddings),
    `chunk` trials at a time so that memory stays bounded however many trials there are."""
    scores = [np.zeros(0, np.float32)]
    for start in range(0, len(questioned), chunk):
        reference_vectors = embeddings[references[start : start + chunk]]  # (n, K, D)
        questioned_vectors = embeddings[questioned[start : start + chunk]][:, None, :]  # (n, 1, D)
        scores.append(fuse(distances(reference_vectors, questioned_vectors), fusion, reference_vectors))
    return np.concatenate(scores)
