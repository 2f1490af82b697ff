"""1:N identification through the gallery (`Gallery.identify`): time per query and how many
people each query scores as claims, on a gallery drawn from the Gaussian embedding model of
bench_search.py (5 references a person; queries are fresh signatures of enrolled people).

    python benchmarks/bench_identify.py [--people 20000] [--data ../shared/data/cedar]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_search import REFERENCES, gaussian_gallery, writer_embeddings
from common import machine

from signver.gallery import Gallery


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("-k", type=int, default=5)
    parser.add_argument("--data", help="a dataset folder whose writers fit the embedding model")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    references, queries = gaussian_gallery(writer_embeddings(args.data), args.people, rng)
    scored = [0]
    decide = Gallery._decide

    def counting(self, *a, **kw):  # each person scored as a claim passes here once
        scored[-1] += 1
        return decide(self, *a, **kw)

    Gallery._decide = counting
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory() as folder, Gallery(Path(folder) / "g.sqlite") as gallery:
        for p in range(args.people):
            gallery.enroll(f"p{p}", list(references[p * REFERENCES : (p + 1) * REFERENCES]))
        times, first = [], 0
        for q in range(min(args.queries, args.people)):
            scored.append(0)
            start = time.perf_counter()
            ranked = gallery.identify(queries[q], k=args.k)
            times.append(1000 * (time.perf_counter() - start))
            first += ranked[0].person_id == f"p{q}"
    counts = scored[1:]
    print(f"gallery: {args.people:,} people x {REFERENCES} references of dimension {references.shape[1]}, exact index; k={args.k}")
    print(f"identify: median {np.median(times):.1f} ms, p99 {np.percentile(times, 99):.1f} ms per query; people scored median "
          f"{np.median(counts):.0f}, max {max(counts)}; the query's own writer first in {first} of {len(times)}")


if __name__ == "__main__":
    main()
