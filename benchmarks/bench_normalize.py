"""Normalisation throughput, single process: `python benchmarks/bench_normalize.py [--data DIR]`.

Target (issue 2): at least 1,000 typical 600x300 scans per second on a 2-core machine.
"""

from __future__ import annotations

import argparse
import time

from common import machine, real_scans, typical_scans

from signver.normalize import normalize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=500, help="distinct images")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--data", help="a folder of real scans (*.png) to use instead of synthetic ones")
    args = parser.parse_args()
    scans = real_scans(args.data, args.n) if args.data else typical_scans(args.n)
    for scan in scans[:20]:
        normalize(scan)  # warm-up
    start = time.perf_counter()
    for _ in range(args.repeat):
        for scan in scans:
            normalize(scan)
    seconds = time.perf_counter() - start
    count = args.repeat * len(scans)
    mean_shape = tuple(int(sum(s.shape[i] for s in scans) / len(scans)) for i in (0, 1))
    print(f"machine: {machine()}")
    print(f"images: {len(scans)} {'real' if args.data else 'synthetic'}, mean size {mean_shape[1]}x{mean_shape[0]}")
    print(f"normalise: {count / seconds:.0f} images/s ({1000 * seconds / count:.3f} ms each), single process")


if __name__ == "__main__":
    main()
