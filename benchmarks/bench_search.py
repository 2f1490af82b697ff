"""1:N search at scale: exact and approximate (HNSW) search over a million enrolled vectors,
recall@10 of approximate against exact search, and enrolment throughput of the gallery.

A million real signatures do not exist, so the gallery is drawn from a Gaussian model of
embeddings fitted on real ones: between-writer spread from writers' mean embeddings,
within-writer spread from each writer's signatures around its mean, in the model's own
embedding space (unit vectors after sampling). Queries are fresh signatures of enrolled
people. Without `--data`, the model is fitted on synthetic signatures the project draws.

    python benchmarks/bench_search.py [--vectors 1000000] [--data ../shared/data/cedar]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine

from signver import synth
from signver.datasets import read_dataset
from signver.extractor import get_extractor
from signver.gallery import Gallery
from signver.index import VectorIndex

REFERENCES = 5  # per enrolled person


def writer_embeddings(data: str | None, writers: int = 60, per_writer: int = 8) -> list[np.ndarray]:
    extractor = get_extractor()
    if data:
        dataset = read_dataset(data)
        return [extractor.embed([s.path for s in dataset.genuine(w)][:per_writer]) for w in dataset.writers()[:writers]]
    return [extractor.embed([synth.genuine(w, s) for s in range(per_writer)]) for w in range(writers)]


def gaussian_gallery(groups: list[np.ndarray], people: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(people * REFERENCES) reference vectors and one fresh query vector per person."""
    means = np.stack([g.mean(0) for g in groups])
    within = np.concatenate([g - g.mean(0) for g in groups])
    between_factor = np.linalg.cholesky(np.cov(means.T) + 1e-6 * np.eye(means.shape[1]))
    within_factor = np.linalg.cholesky(np.cov(within.T) + 1e-6 * np.eye(means.shape[1]))
    dim = means.shape[1]
    centres = means.mean(0) + rng.standard_normal((people, dim), dtype=np.float32) @ between_factor.T.astype(np.float32)
    samples = np.repeat(centres, REFERENCES + 1, axis=0)
    samples += rng.standard_normal(samples.shape, dtype=np.float32) @ within_factor.T.astype(np.float32)
    samples /= np.linalg.norm(samples, axis=1, keepdims=True)
    samples = samples.reshape(people, REFERENCES + 1, dim)
    return samples[:, :REFERENCES].reshape(-1, dim), samples[:, REFERENCES]


def per_query_ms(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[float, float, np.ndarray]:
    """Median and p99 latency of one query at a time, and the ids found."""
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, ids = index.search(q, k)
        times.append(1000 * (time.perf_counter() - start))
        found.append(ids[0])
    return float(np.median(times)), float(np.percentile(times, 99)), np.stack(found)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def enrolment_throughput(groups: list[np.ndarray], people: int) -> tuple[float, float]:
    """People enrolled per second (5 precomputed vectors each, one durable transaction each),
    and people per second when the references are images (embedding included)."""
    rng = np.random.default_rng(1)
    references, _ = gaussian_gallery(groups, people, rng)
    with tempfile.TemporaryDirectory() as folder, Gallery(Path(folder) / "g.sqlite") as gallery:
        start = time.perf_counter()
        for p in range(people):
            gallery.enroll(f"person-{p}", list(references[p * REFERENCES : (p + 1) * REFERENCES]))
        vectors_rate = people / (time.perf_counter() - start)
        images = [[synth.genuine(1000 + p, s) for s in range(REFERENCES)] for p in range(40)]
        start = time.perf_counter()
        for p, refs in enumerate(images):
            gallery.enroll(f"drawn-{p}", refs)
        images_rate = len(images) / (time.perf_counter() - start)
    return vectors_rate, images_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--data", help="a dataset folder whose writers fit the embedding model")
    parser.add_argument("--ef", default="32,64,96,128,192")
    parser.add_argument("--enrol", type=int, default=2000, help="people enrolled for the throughput figure")
    parser.add_argument("--cache", default="../out/bench_search", help="folder keeping the built HNSW index between runs")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    groups = writer_embeddings(args.data)
    people = args.vectors // REFERENCES
    references, queries = gaussian_gallery(groups, people, rng)
    queries = queries[rng.choice(people, args.queries, replace=False)]
    ids = np.arange(len(references))
    print(f"machine: {machine()}")
    print(f"gallery: {len(references):,} vectors of dimension {references.shape[1]} ({people:,} people x {REFERENCES}); {len(queries)} queries")

    exact = VectorIndex(references.shape[1], "flat")
    exact.add(ids, references)
    median, p99, truth = per_query_ms(exact, queries, 10)
    print(f"exact (flat): median {median:.2f} ms, p99 {p99:.2f} ms per query")

    cache = Path(args.cache) / f"hnsw-{len(references)}-{references.shape[1]}.faiss"
    if cache.is_file():  # the same gallery (fixed seed) built by an earlier run
        approximate = VectorIndex.load(cache, "hnsw")
        print(f"hnsw: loaded {cache} (build time measured by the run that wrote it)")
    else:
        start = time.perf_counter()
        approximate = VectorIndex(references.shape[1], "hnsw")
        approximate.add(ids, references)
        print(f"hnsw build: {time.perf_counter() - start:.0f} s")
        cache.parent.mkdir(parents=True, exist_ok=True)
        approximate.save(cache)
    for ef in (int(e) for e in args.ef.split(",")):
        approximate.ef_search = ef
        median, p99, found = per_query_ms(approximate, queries, 10)
        print(f"hnsw efSearch {ef}: recall@10 {recall(found, truth):.4f}, median {median:.3f} ms, p99 {p99:.3f} ms per query")
    del approximate, exact

    vectors_rate, images_rate = enrolment_throughput(groups, args.enrol)
    print(f"enrolment: {vectors_rate:.0f} people/s with precomputed vectors ({REFERENCES} each, one fsynced transaction each); "
          f"{images_rate:.1f} people/s from images ({REFERENCES} each, embedding included)")


if __name__ == "__main__":
    main()
