"""The one-call API: `embed` and `verify`, taking any input kind the images module reads."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .calibration import Calibration
from .errors import InputError
from .extractor import get_extractor
from .images import SourceLike
from .matcher import check_threshold, copy_note, distances

SignatureLike = SourceLike | np.ndarray  # an image of any kind, or a precomputed embedding


@dataclass
class VerificationResult:
    """The decision and what it rests on. `confidence` is P(genuine) at equal priors and
    `log10_lr` the log10 likelihood ratio (same writer vs skilled forgery), both from the
    model card's calibration; None when the model has none. Neither depends on `threshold`."""

    verified: bool
    distance: float
    threshold: float
    model: str
    confidence: float | None = None
    log10_lr: float | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    note: str | None = None  # what the decision alone does not say: the questioned scan is a copy of a reference

    def to_dict(self) -> dict:
        return asdict(self)


def embed(images: SourceLike | Sequence[SourceLike], model: str | None = None, clean: bool | None = None,
          dropout: str | None = None) -> np.ndarray:
    """Unit-length embedding of one image (D,), or of a list of images (N, D). `clean`: remove
    printed text, lines and stamps around the ink first (None: `signver.cleaner.DEFAULT_CLEAN`).
    `dropout` (red, green, blue): read colour images without marks of that colour, such as a stamp."""
    extractor = get_extractor(model)
    if isinstance(images, (list, tuple)):
        return extractor.embed(images, clean=clean, dropout=dropout)
    return extractor.embed([images], clean=clean, dropout=dropout)[0]


def verify(a: SignatureLike, b: SignatureLike, threshold: float | None = None, model: str | None = None,
           clean: bool | None = None, dropout: str | None = None) -> VerificationResult:
    """Were `a` and `b` written by the same person? Accepted when distance <= threshold.
    `clean`: clean images before embedding (None: `signver.cleaner.DEFAULT_CLEAN`); `dropout`
    as for `embed`."""
    check_threshold(threshold)  # before any work
    extractor = get_extractor(model)
    start = time.perf_counter()
    vector_a, vector_b = extractor.vectors([a, b], clean=clean, dropout=dropout)
    embedded = time.perf_counter()
    distance = float(distances(vector_a, vector_b))
    threshold = extractor.card.threshold if threshold is None else float(threshold)
    return VerificationResult(**decision(distance, threshold, extractor.card.calibration, extractor.name, start, embedded,
                                         copy_note(distance, extractor.card.threshold, "the reference")))


def decision(distance: float, threshold: float | None, calibration: Calibration | None, model: str, started: float, embedded: float,
             note: str | None = None) -> dict:
    """The fields every verification result shares: accept when distance <= threshold."""
    if threshold is None:
        raise InputError(f"model {model} has no default threshold; pass threshold=")
    check_threshold(threshold)
    return {
        "verified": distance <= threshold,
        "distance": distance,
        "threshold": threshold,
        "model": model,
        "confidence": float(calibration.probability(distance)) if calibration else None,
        "log10_lr": float(calibration.log10_lr(distance)) if calibration else None,
        "timings_ms": {"embed": 1000 * (embedded - started), "total": 1000 * (time.perf_counter() - started)},
        "note": note,
    }
