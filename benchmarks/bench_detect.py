"""Signature detection speed per 640x640 page: the network (resize, ONNX, decoding, NMS) on a
decoded page, `signver.detect` on a JPEG file (decoding included), and the classical baseline.

`python benchmarks/bench_detect.py [--model NAME] [--data SPLIT_DIR] [--n 200]`
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from common import machine

import signver
from signver.detector import get_detector
from signver.detector_baseline import BaselineDetector
from signver.images import load_image
from signver.synth_pages import page


def timed(function, items) -> np.ndarray:
    """Milliseconds per call, after one warm-up call."""
    function(items[0])
    times = []
    for item in items:
        start = time.perf_counter()
        function(item)
        times.append(1000 * (time.perf_counter() - start))
    return np.array(times)


def summary(name: str, ms: np.ndarray) -> str:
    return f"{name}: median {np.median(ms):.1f} ms, mean {ms.mean():.1f} ms, p95 {np.percentile(ms, 95):.1f} ms per page"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--data", help="a YOLO split whose images/ to use instead of synthetic 640x640 pages")
    args = parser.parse_args()
    if args.data:
        paths = sorted((Path(args.data) / "images").iterdir())[: args.n]
        pages = [cv2.resize(load_image(p), (640, 640), interpolation=cv2.INTER_AREA) for p in paths]
    else:
        pages = [page(seed, (640, 640)).image for seed in range(args.n)]
    detector = get_detector(args.model)
    with tempfile.TemporaryDirectory() as folder:
        files = []
        for k, image in enumerate(pages):
            files.append(Path(folder) / f"page{k}.jpg")
            cv2.imwrite(str(files[-1]), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        file_ms = timed(lambda f: signver.detect(f, model=args.model), files)
    print(f"machine: {machine()}")
    print(f"model: {detector.name}, input {detector.card.input_size}, {len(pages)} {'real' if args.data else 'synthetic'} 640x640 pages")
    print(summary("detect on a decoded page", timed(detector.find, pages)))
    print(summary("signver.detect(JPEG file)", file_ms))
    print(summary("classical baseline on a decoded page", timed(BaselineDetector().find, pages)))


if __name__ == "__main__":
    main()
