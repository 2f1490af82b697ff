"""Embedding throughput (normalisation included, batched), in-process pair latency, and the
network alone by how many images it runs at once (what `signver.extractor.NETWORK_BATCH` rests on).

`python benchmarks/bench_embed.py [--model NAME] [--data DIR]`
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, real_scans, typical_scans

import signver
from signver.extractor import NETWORK_BATCH, get_extractor
from signver.normalize import normalize, to_model_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--data", help="a folder of real scans (*.png) to use instead of synthetic ones")
    args = parser.parse_args()
    scans = real_scans(args.data, args.n) if args.data else typical_scans(args.n)
    extractor = get_extractor(args.model)
    extractor.embed(scans[: args.batch])  # warm-up
    start = time.perf_counter()
    extractor.embed(scans, batch_size=args.batch)
    batched = time.perf_counter() - start

    for _ in range(5):
        signver.verify(scans[0], scans[1], model=args.model)
    latencies = []
    for k in range(100):
        start = time.perf_counter()
        signver.verify(scans[k], scans[k + 1], model=args.model)
        latencies.append(time.perf_counter() - start)

    norm_start = time.perf_counter()
    for scan in scans:
        normalize(scan, extractor.card.input_size)
    norm_seconds = time.perf_counter() - norm_start
    print(f"machine: {machine()}")
    print(f"model: {extractor.name}, input {extractor.card.input_size}, {len(scans)} {'real' if args.data else 'synthetic'} images")
    print(f"embed, batched ({args.batch}), normalisation included: {len(scans) / batched:.0f} images/s")
    print(f"  of which normalisation: {1000 * norm_seconds / len(scans):.2f} ms/image")
    print(f"verify one pair in-process: median {1000 * np.median(latencies):.1f} ms, p95 {1000 * np.percentile(latencies, 95):.1f} ms")
    inputs = to_model_input([normalize(scan, extractor.card.input_size) for scan in scans[:64]])
    per_image = {size: network_ms(extractor, inputs, size) for size in (1, 2, 4, 8, 16, 32)}
    print("network alone, ms per image at batch " + ", ".join(f"{size}: {ms:.2f}" for size, ms in per_image.items()),
          f"(signver runs {NETWORK_BATCH} at a time here)")


def network_ms(extractor, inputs: np.ndarray, size: int) -> float:
    """Milliseconds per image when the network runs `size` images at a time over `inputs`."""
    run = lambda: [extractor.session.run(None, {extractor.input_name: inputs[i : i + size]}) for i in range(0, len(inputs) - size + 1, size)]  # noqa: E731
    run()
    start = time.perf_counter()
    for _ in range(2):
        run()
    return 1000 * (time.perf_counter() - start) / (2 * (len(inputs) // size) * size)


if __name__ == "__main__":
    main()
