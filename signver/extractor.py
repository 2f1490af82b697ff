"""Signature embeddings: normalise, run the ONNX network, L2-normalise.

Vectors are unit length, so Euclidean distance (0 to 2) ranks pairs exactly as cosine
similarity does and FAISS L2 indexes work unchanged.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import numpy as np

from . import cleaner
from .errors import InputError
from .images import SourceLike, check_dropout, errors_naming, load_image, source_name
from .models import DEFAULT_EXTRACTOR, ModelCard, inference_session, load_card, made_once
from .normalize import normalize, to_model_input

BATCH_SIZE = 32  # images read and normalised per step (the unit of progress)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Images the network runs at once: about one per core. Small batches keep each layer's
# activations in the CPU's cache: 2.3-3.1 ms per image at 2 against 3.1-3.3 ms at 16 and 3.4-3.6
# at 32 on a 2-core EPYC, with the same vectors (docs/benchmarks.md, Speed); more cores need more
# images to share out (a guess: not measured on a larger machine).
NETWORK_BATCH = max(2, _cores())
# Many images are shared out over one worker thread per core, each normalising its own and
# running its batches on a one-thread session: no thread waits for another inside each of the
# network's few hundred operations, about 8 % more images per second (docs/benchmarks.md, Speed).
WORKERS = _cores()


@made_once(maxsize=1)
def _workers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="signver-embed")


def _shared_out(work: Callable, items: Sequence) -> list:
    """`work` on each item, over the worker threads when there are several items and cores."""
    return list(_workers().map(work, items)) if WORKERS > 1 and len(items) > 1 else [work(item) for item in items]


class Extractor:
    """A feature extractor described by a model card."""

    def __init__(self, model: str | None = None):
        self.card: ModelCard = load_card(model or DEFAULT_EXTRACTOR)
        if self.card.kind != "extractor":
            raise InputError(f"model {self.card.name} is {self.card.a_kind}, not a signature extractor")
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
        return self._embed_batches(images, lambda batch: batch, batch_size)

    def _embed_batches(self, items: Sequence, prepare: Callable[[Sequence], Sequence[np.ndarray]], batch_size: int = NETWORK_BATCH) -> np.ndarray:
        """Unit vectors for `items`, which `prepare` turns into normalised images a network batch
        at a time; the batches are shared out over the worker threads when there are several."""
        batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
        session = self.worker_session if WORKERS > 1 and len(batches) > 1 else self.session

        def run(batch: Sequence) -> np.ndarray:
            (vectors,) = session.run(None, {self.input_name: to_model_input(prepare(batch))})
            return vectors.reshape(len(vectors), -1).astype(np.float32)

        vectors = np.concatenate([np.zeros((0, self.dimension), np.float32)] + _shared_out(run, batches))
        return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)

    @cached_property
    def worker_session(self):
        """A one-thread session of the same model, for the worker threads."""
        return inference_session(self.card.path, threads=1)

    def embed(
        self,
        sources: Iterable[SourceLike],
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
        clean: bool | None = None,
        labels: Sequence[str] | None = None,
        dropout: str | None = None,
    ) -> np.ndarray:
        """Embed images of any input kind; `progress(n)` is told of each batch done. `clean`
        runs the cleaner on each image before normalisation (None: `cleaner.DEFAULT_CLEAN`);
        `dropout` reads colour images without the marks of that colour (`signver.load_image`).
        An input error names the image: its path, or its label (default: image 3 of 5)."""
        dropout = check_dropout(dropout)
        sources = list(sources)
        if labels is None:
            labels = numbered(range(len(sources)), len(sources))
        chunks = [np.zeros((0, self.dimension), np.float32)]
        prepare = cleaner.for_embedding if cleaner.resolve(clean) else (lambda image: image)

        def prepared(index: int, source: SourceLike) -> np.ndarray:
            label = labels[index]
            with contextlib.nullcontext() if source_name(source) else errors_naming(source, label):  # a path's load errors name it already
                image = load_image(source, dropout=dropout)
            with errors_naming(source, label):
                return normalize(prepare(image), self.card.input_size)

        for start in range(0, len(sources), batch_size):
            batch = list(enumerate(sources[start : start + batch_size], start))
            chunks.append(self._embed_batches(batch, lambda group: [prepared(i, s) for i, s in group]))
            if progress:
                progress(len(batch))
        return np.concatenate(chunks)

    def vectors(self, values: Sequence[SourceLike | np.ndarray], clean: bool | None = None, dropout: str | None = None) -> np.ndarray:
        """Unit vectors (N, D) for a mix of images of any kind and precomputed embeddings
        (1-D float arrays of this model's dimension); images are embedded in one batch,
        cleaned first if `clean` (None: the default), read without `dropout`'s colour."""
        dropout = check_dropout(dropout)
        values = list(values)
        for value in values:
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.shape in ((1, self.dimension), (self.dimension, 1)):
                raise InputError(f"an embedding is a 1-D vector of length {self.dimension}, not an array of shape {value.shape}: "
                                 "pass it raveled (vector.ravel())")
        images = [i for i, v in enumerate(values) if not _is_embedding(v)]
        out = np.zeros((len(values), self.dimension), np.float32)
        if images:
            out[images] = self.embed([values[i] for i in images], clean=clean, labels=numbered(images, len(values)), dropout=dropout)  # counted among every value
        for i, value in enumerate(values):
            if _is_embedding(value):
                if value.dtype.kind != "f" or len(value) != self.dimension or not np.all(np.isfinite(value)):
                    raise InputError(
                        f"an embedding for model {self.name} must be a finite float vector of length {self.dimension}, "
                        f"got {value.dtype} of length {len(value)}"
                    )
                wide = value.astype(np.float64)  # 1e20 squared overflows float32, 1e-200 is zero in it
                wide /= max(np.abs(wide).max(), np.finfo(np.float64).tiny)
                norm = float(np.linalg.norm(wide))
                if norm == 0:
                    raise InputError(f"an embedding of all zeros has no direction, so it cannot stand for a signature (model {self.name})")
                out[i] = wide / norm
        return out


def numbered(indices: Iterable[int], total: int) -> list[str | None]:
    """How errors call inputs without a name: image 3 of 5 (nothing when there is one)."""
    return [f"image {i + 1} of {total}" if total > 1 else None for i in indices]


def _is_embedding(value) -> bool:
    return isinstance(value, np.ndarray) and value.ndim == 1


@made_once(maxsize=4)
def get_extractor(model: str | None = None) -> Extractor:
    """A shared extractor per model, so sessions load once per process."""
    return Extractor(model)
