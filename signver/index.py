"""Nearest-neighbour search over unit embeddings with FAISS, keyed by reference ids.

`flat` is exact and the default: it answers in milliseconds up to a few hundred thousand
vectors. `hnsw` is approximate (a graph index) for galleries of millions, where exact search
costs tens of milliseconds a query; its recall against `flat` is measured in
benchmarks/bench_search.py. Distances returned are Euclidean (0 to 2), as everywhere else.

Searches run on one OpenMP thread: a single query gains nothing from more, and when other
work shares the cores, FAISS's spinning threads made one query 4 to 10 times slower here.
Concurrent queries come from the caller's threads instead. Building uses every core.
"""

from __future__ import annotations

import os

import faiss
import numpy as np

from .errors import InputError

INDEX_KINDS = ("flat", "hnsw")
HNSW_NEIGHBOURS = 32  # graph degree M: recall/speed/memory trade-off measured in the benchmark
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 96


def check_index_kind(kind: str) -> str:
    if kind not in INDEX_KINDS:
        raise InputError(f"unknown index kind {kind!r}; choose one of {', '.join(INDEX_KINDS)}")
    return kind


class VectorIndex:
    """FAISS index of (id, unit vector) rows; ids are the gallery's reference row ids."""

    def __init__(self, dimension: int, kind: str = "flat", ef_search: int = HNSW_EF_SEARCH):
        check_index_kind(kind)
        self.kind, self.dimension = kind, dimension
        if kind == "flat":
            inner = faiss.IndexFlatL2(dimension)
        else:
            inner = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = ef_search
        self._inner = inner
        self._index = faiss.IndexIDMap2(inner)

    @property
    def ef_search(self) -> int | None:
        """HNSW's search breadth: higher is slower and closer to exact."""
        return self._inner.hnsw.efSearch if self.kind == "hnsw" else None

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._inner.hnsw.efSearch = int(value)

    def __len__(self) -> int:
        return self._index.ntotal

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dimension)
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        self._index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    @property
    def supports_removal(self) -> bool:
        """HNSW graphs cannot drop nodes: their owner rebuilds them instead."""
        return self.kind == "flat"

    def remove(self, ids: np.ndarray) -> None:
        self._index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))

    def save(self, path: str) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: str, kind: str) -> VectorIndex:
        """An index written by `save` (building a million-vector HNSW graph takes minutes)."""
        stored = faiss.read_index(str(path))
        index = cls(stored.d, kind)
        index._index = stored
        index._inner = faiss.downcast_index(stored.index)
        return index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest rows of each query: (distances, ids), id -1 where fewer exist."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        k = max(1, min(k, len(self))) if len(self) else 1
        faiss.omp_set_num_threads(1)
        squared, ids = self._index.search(queries, k)
        return np.sqrt(np.maximum(squared, 0)), ids
