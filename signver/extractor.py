"""Signature embeddings: normalise, run the ONNX network, L2-normalise.

Vectors are unit length, so Euclidean distance (0 to 2) ranks pairs exactly as cosine
similarity does and FAISS L2 indexes work unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import numpy as np

from . import cleaner
from .errors import InputError
from .images import SourceLike, load_image
from .models import DEFAULT_EXTRACTOR, ModelCard, inference_session, load_card
from .normalize import normalize, to_model_input

BATCH_SIZE = 32  # images read and normalised per step (the unit of progress)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Images the network runs at once: about one per core. Small batches keep each layer's
# activations in the CPU's cache: 2.3-3.1 ms per image at 2 against 3.1-3.3 ms at 16 and 3.4-3.6
# at 32 on a 2-core EPYC, with the same vectors (docs/benchmarks.md, Speed); more cores need more
# images to share out (a guess: not measured on a larger machine).
NETWORK_BATCH = max(2, _cores())


class Extractor:
    """A feature extractor described by a model card."""

    def __init__(self, model: str | None = None):
        self.card: ModelCard = load_card(model or DEFAULT_EXTRACTOR)
        if self.card.kind != "extractor":
            raise InputError(f"model {self.card.name} is a {self.card.kind}, not a signature extractor")
        self.session = inference_session(self.card.path)
        self.input_name = self.session.get_inputs()[0].name

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def dimension(self) -> int:
        return int(self.session.get_outputs()[0].shape[-1])

    def embed_normalized(self, images: Sequence[np.ndarray], batch_size: int = NETWORK_BATCH) -> np.ndarray:
        """Embed already-normalised uint8 images, returning unit vectors (N, D) float32; the
        network sees `batch_size` at a time, so any number of images fits in memory."""
        chunks = [np.zeros((0, self.dimension), np.float32)]
        for start in range(0, len(images), batch_size):
            (vectors,) = self.session.run(None, {self.input_name: to_model_input(images[start : start + batch_size])})
            chunks.append(vectors.reshape(len(vectors), -1).astype(np.float32))
        vectors = np.concatenate(chunks)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    def embed(
        self,
        sources: Iterable[SourceLike],
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
        clean: bool | None = None,
    ) -> np.ndarray:
        """Embed images of any input kind; `progress(n)` is told of each batch done. `clean`
        runs the cleaner on each image before normalisation (None: `cleaner.DEFAULT_CLEAN`)."""
        sources = list(sources)
        chunks = [np.zeros((0, self.dimension), np.float32)]
        prepare = cleaner.for_embedding if cleaner.resolve(clean) else (lambda image: image)
        for start in range(0, len(sources), batch_size):
            batch = [normalize(prepare(load_image(s)), self.card.input_size) for s in sources[start : start + batch_size]]
            chunks.append(self.embed_normalized(batch))
            if progress:
                progress(len(batch))
        return np.concatenate(chunks)

    def vectors(self, values: Sequence[SourceLike | np.ndarray], clean: bool | None = None) -> np.ndarray:
        """Unit vectors (N, D) for a mix of images of any kind and precomputed embeddings
        (1-D float arrays of this model's dimension); images are embedded in one batch,
        cleaned first if `clean` (None: the default)."""
        values = list(values)
        images = [i for i, v in enumerate(values) if not _is_embedding(v)]
        out = np.zeros((len(values), self.dimension), np.float32)
        if images:
            out[images] = self.embed([values[i] for i in images], clean=clean)
        for i, value in enumerate(values):
            if _is_embedding(value):
                if value.dtype.kind != "f" or len(value) != self.dimension or not np.all(np.isfinite(value)):
                    raise InputError(
                        f"an embedding for model {self.name} must be a finite float vector of length {self.dimension}, "
                        f"got {value.dtype} of length {len(value)}"
                    )
                if not np.any(value):
                    raise InputError(f"an embedding of all zeros has no direction, so it cannot stand for a signature (model {self.name})")
                out[i] = value / max(float(np.linalg.norm(value)), 1e-12)
        return out


def _is_embedding(value) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 1


@lru_cache(maxsize=4)
def get_extractor(model: str | None = None) -> Extractor:
    """A shared extractor per model, so sessions load once per process."""
    return Extractor(model)
