"""Detection on pages wider than tall (cheques, strips cut from a page): the shipped detector, which
pads such a page with paper up to its square input, against squeezing the page into it.

The strips are cut from a YOLO split's pages with signatures: each page is first given back its
letter proportions (the split's pages are stretched to squares), then a band of `fraction` of its
height is cut, centred on its first signature; a band that cuts through a signature is skipped.
The detector is chosen on valid pages, so measure on valid (or train), never on a test split.

`cd benchmarks && python detect_wide_pages.py [--data ../../shared/data/signature-detection/valid] [--n 400]`
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import cv2
import numpy as np
from common import machine
from rich.progress import track

from signver import detector as detector_module
from signver.detector import Detector, get_detector
from signver.evaluation.detection import PageDetections, average_precision, counts_at
from signver.images import load_image
from signver.yolo import read_split, scaled

LETTER = (828, 640)  # (h, w): a 640-pixel-wide page of 8.5 x 11 inches
FRACTIONS = (1.0, 0.65, 0.5, 0.35, 0.2)
FLOOR = 0.05  # candidates kept for average precision


def strips(pages: list[tuple[np.ndarray, np.ndarray]], fraction: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Bands of `fraction` of each page's height around its first box, with the boxes (pixels)
    wholly inside; a band that cuts a box is skipped."""
    for page, boxes in pages:
        height = int(fraction * page.shape[0])
        centre = (boxes[0, 1] + boxes[0, 3]) / 2
        top = int(np.clip(centre - height / 2, 0, page.shape[0] - height))
        inside = np.clip(np.minimum(boxes[:, 3], top + height) - np.maximum(boxes[:, 1], top), 0, None) / (boxes[:, 3] - boxes[:, 1])
        if np.any((inside > 0.1) & (inside < 0.9)):
            continue
        yield page[top : top + height], boxes[inside >= 0.9] - np.float32([0, top, 0, top])


@contextmanager
def squeezing():
    """The detector as it was before it padded wide pages: every page stretched to its input."""
    padded = detector_module.paper_padded
    detector_module.paper_padded = lambda page, size: (page, 0)
    try:
        yield
    finally:
        detector_module.paper_padded = padded


def compare(detector: Detector, bands: Iterable[tuple[np.ndarray, np.ndarray]]) -> dict[str, dict]:
    """AP at IoU 0.5 and 0.75 and the counts at the card's threshold, padded and squeezed."""
    found = {"padded (shipped)": [], "squeezed": []}
    for strip, truth in bands:
        found["padded (shipped)"].append(PageDetections(*detector.find(strip, FLOOR), truth))
        with squeezing():
            found["squeezed"].append(PageDetections(*detector.find(strip, FLOOR), truth))
    results = {}
    for name, pages in found.items():
        tp, fp, missed = counts_at(pages, detector.threshold)
        results[name] = {"ap50": average_precision(pages, 0.5), "ap75": average_precision(pages, 0.75), "found": tp, "false": fp, "missed": missed}
    return results


def letter_pages(split: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    labelled = [p for p in read_split(split) if len(p.boxes)][:n]
    return [(cv2.resize(load_image(p.image), LETTER[::-1], interpolation=cv2.INTER_AREA), scaled(p.boxes, LETTER[1], LETTER[0])) for p in labelled]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../../shared/data/signature-detection/valid", help="a YOLO split (not a test split)")
    parser.add_argument("--n", type=int, default=400, help="pages with signatures to cut strips from")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    detector = get_detector(args.model)
    pages = letter_pages(args.data, args.n)
    print(f"machine: {machine()}; model {detector.name}, threshold {detector.threshold}; {len(pages)} pages of {args.data}")
    print("| band of the page | width / height | strips | signatures | shape | AP@0.5 | AP@0.75 | found | false | missed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for fraction in FRACTIONS:
        bands = list(strips(pages, fraction))
        results = compare(detector, track(bands, description=f"band {fraction}"))
        for name, r in results.items():
            print(f"| {fraction} | {LETTER[1] / (fraction * LETTER[0]):.2f} | {len(bands)} | {sum(len(t) for _, t in bands)} | {name} "
                  f"| {r['ap50']:.3f} | {r['ap75']:.3f} | {r['found']} | {r['false']} | {r['missed']} |")


if __name__ == "__main__":
    main()
