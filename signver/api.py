"""The one-call API: `embed` and `verify`, taking any input kind the images module reads."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import InputError
from .extractor import get_extractor
from .images import SourceLike
from .matcher import distances

SignatureLike = SourceLike | np.ndarray  # an image of any kind, or a precomputed embedding


@dataclass
class VerificationResult:
    verified: bool
    distance: float
    threshold: float
    model: str
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def embed(images: SourceLike | Sequence[SourceLike], model: str | None = None) -> np.ndarray:
    """Unit-length embedding of one image (D,), or of a list of images (N, D)."""
    extractor = get_extractor(model)
    if isinstance(images, (list, tuple)):
        return extractor.embed(images)
    return extractor.embed([images])[0]


def _as_vector(value: SignatureLike, model: str | None) -> np.ndarray:
    extractor = get_extractor(model)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        if value.dtype.kind != "f" or len(value) != extractor.dimension:
            raise InputError(f"an embedding must be a float vector of length {extractor.dimension}, got {value.dtype} of length {len(value)}")
        return value / max(float(np.linalg.norm(value)), 1e-12)
    return extractor.embed([value])[0]


def verify(a: SignatureLike, b: SignatureLike, threshold: float | None = None, model: str | None = None) -> VerificationResult:
    """Were `a` and `b` written by the same person? Accepted when distance <= threshold."""
    extractor = get_extractor(model)
    start = time.perf_counter()
    vector_a, vector_b = _as_vector(a, model), _as_vector(b, model)
    embedded = time.perf_counter()
    distance = float(distances(vector_a, vector_b))
    threshold = extractor.card.threshold if threshold is None else float(threshold)
    if threshold is None:
        raise InputError(f"model {extractor.name} has no default threshold; pass threshold=")
    return VerificationResult(
        verified=distance <= threshold,
        distance=distance,
        threshold=threshold,
        model=extractor.name,
        timings_ms={"embed": 1000 * (embedded - start), "total": 1000 * (time.perf_counter() - start)},
    )
