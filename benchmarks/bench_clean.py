"""Cleaner speed: milliseconds per crop for `signver.clean` on a numpy crop (shrink, network,
resize back, compose), one crop at a time as the pipeline calls it.

`python benchmarks/bench_clean.py [--n 100] [--data DIR] [--cleaner NAME_OR_ONNX]`: synthetic
cluttered crops of three typical sizes, or the signature boxes of a YOLO-labelled detection
split (`DIR/images`, `DIR/labels`), e.g. ../shared/data/signature-detection/valid.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
from common import machine

from signver import overlays, synth
from signver.cleaner import Cleaner, get_cleaner
from signver.images import load_image

SIZES = {"document crop 120x360": (120, 360), "CEDAR-like 300x600": (300, 600), "BHSig-like 300x1000": (300, 1000)}


def synthetic_crops(n: int, size: tuple[int, int]) -> list[np.ndarray]:
    crops = []
    for k in range(n):
        image = overlays.clutter(synth.genuine(k % 40, k // 40), k).image
        crops.append(cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return crops


def real_crops(folder: Path, n: int) -> list[np.ndarray]:
    crops = []
    for label in sorted((folder / "labels").glob("*.txt")):
        images = list((folder / "images").glob(label.stem + ".*"))
        if not images or not label.read_text().strip():
            continue
        page = load_image(images[0])
        height, width = page.shape
        for line in label.read_text().splitlines():
            _, cx, cy, w, h = map(float, line.split()[:5])
            x0, y0 = max(0, int((cx - w / 2) * width)), max(0, int((cy - h / 2) * height))
            x1, y1 = min(width, int((cx + w / 2) * width) + 1), min(height, int((cy + h / 2) * height) + 1)
            if x1 - x0 > 4 and y1 - y0 > 4:
                crops.append(page[y0:y1, x0:x1].copy())
        if len(crops) >= n:
            break
    return crops[:n]


def timed(crops: list[np.ndarray], cleaner: Cleaner) -> np.ndarray:
    for crop in crops[:5]:
        cleaner.clean(crop)  # warm-up
    times = []
    for crop in crops:
        start = time.perf_counter()
        cleaner.clean(crop)
        times.append(time.perf_counter() - start)
    return 1000 * np.array(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--data", type=Path, help="a YOLO-labelled detection split to cut real crops from")
    parser.add_argument("--cleaner", default=None, help="cleaner name or .onnx path (default: the shipped default)")
    args = parser.parse_args()
    cleaner = get_cleaner(args.cleaner)
    print(f"machine: {machine()}")
    print(f"cleaner: {cleaner.name}, working area at most {cleaner.max_pixels} pixels")
    sets = {name: synthetic_crops(args.n, size) for name, size in SIZES.items()}
    if args.data:
        sets[f"real crops of {args.data}"] = real_crops(args.data, args.n)
    for name, crops in sets.items():
        ms = timed(crops, cleaner)
        shapes = np.array([c.shape for c in crops])
        print(f"{name} ({len(crops)} crops, median {int(np.median(shapes[:, 0]))}x{int(np.median(shapes[:, 1]))}): "
              f"median {np.median(ms):.1f} ms, mean {ms.mean():.1f} ms, p95 {np.percentile(ms, 95):.1f} ms per crop")


if __name__ == "__main__":
    main()
