"""Detection on pages of other shapes than the training pages: wider than tall (cheques, strips cut
from a page), which the shipped detector pads with paper up to its square input, and much taller
(long receipts, pages scanned as one image), which it reads in page-shaped windows; against
stretching every page whole into the input, as it did before.

Wide: strips cut from a YOLO split's pages with signatures. Each page is first given back its
letter proportions (the split's pages are stretched to squares), then a band of `fraction` of its
height is cut, centred on its first signature; a band that cuts through a signature is skipped.
Tall: two or three such pages one above the other, and bands turned a quarter (a cheque
photographed upright), which it also reads turned both ways, keeping the reading with the better
box. The detector is chosen on valid pages, so
measure on valid (or train), never on a test split.

`cd benchmarks && python detect_page_shapes.py [--data ../../shared/data/signature-detection/valid] [--n 400]`
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


def _shape_kept_if_wide(shape: tuple[int, int], size: tuple[int, int]) -> tuple[bool, ...]:
    return (True,) if shape[1] * size[0] > shape[0] * size[1] else (False,)


WAYS = {  # how pages are read: the detector's functions replaced, by name
    "shipped": {},
    "stretched whole (before)": {"readings": lambda shape, size: (False,), "page_windows": lambda height, width: [(0, height)]},
    "shape kept only": {"readings": _shape_kept_if_wide},
    "not read turned (before)": {"turned_reading_wins": lambda scores, turned_scores: False},
    "read turned whatever its lines": {"lines_run_across": lambda page: False},
}


@contextmanager
def read_as(replaced: dict):
    """The detector with some of its functions replaced for the while."""
    kept = {name: getattr(detector_module, name) for name in replaced}
    for name, function in replaced.items():
        setattr(detector_module, name, function)
    try:
        yield
    finally:
        for name, function in kept.items():
            setattr(detector_module, name, function)


def turned(examples: Iterable[tuple[np.ndarray, np.ndarray]], quarters: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each page turned `quarters` quarter turns anticlockwise (1 or 3), with its boxes: a wide page scanned turned."""
    out = []
    for page, boxes in examples:
        height, width = page.shape
        x0, y0, x1, y1 = boxes.reshape(-1, 4).T
        moved = [y0, width - x1, y1, width - x0] if quarters == 1 else [height - y1, x0, height - y0, x1]
        out.append((np.ascontiguousarray(np.rot90(page, quarters)), np.stack(moved, axis=1).astype(np.float32).reshape(-1, 4)))
    return out


def stacked(pages: list[tuple[np.ndarray, np.ndarray]], count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` pages one above the other (as many groups as the pages make), with their boxes."""
    groups = zip(*[pages[i::count] for i in range(count)])
    return [(np.vstack([page for page, _ in group]),
             np.concatenate([boxes + np.float32([0, i * page.shape[0], 0, i * page.shape[0]]) for i, (page, boxes) in enumerate(group)]))
            for group in groups]


def compare(detector: Detector, examples: Iterable[tuple[np.ndarray, np.ndarray]], ways: list[str]) -> dict[str, dict]:
    """AP at IoU 0.5 and 0.75, the counts at the card's threshold, and the pages given a box
    there, for each way of reading the pages."""
    found = {way: [] for way in ways}
    for page, truth in examples:
        for way in ways:
            with read_as(WAYS[way]):
                found[way].append(PageDetections(*detector.find(page, FLOOR), truth))
    results = {}
    for way, pages in found.items():
        tp, fp, missed = counts_at(pages, detector.threshold)
        boxed = sum(bool((p.scores >= detector.threshold).any()) for p in pages)
        results[way] = {"ap50": average_precision(pages, 0.5), "ap75": average_precision(pages, 0.75), "found": tp, "false": fp,
                        "missed": missed, "boxed": boxed}
    return results


def signature_free_strips(split: str, fraction: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Bands of `fraction` of each signature-free page's height (letter proportions), top to bottom."""
    free = [p for p in read_split(split) if not len(p.boxes)]
    out = []
    for p in free:
        page = cv2.resize(load_image(p.image), LETTER[::-1], interpolation=cv2.INTER_AREA)
        height = int(fraction * page.shape[0])
        out += [(page[top : top + height], np.zeros((0, 4), np.float32)) for top in range(0, page.shape[0] - height + 1, height)]
    return out


def letter_pages(split: str, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    labelled = [p for p in read_split(split) if len(p.boxes)][:n]
    return [(cv2.resize(load_image(p.image), LETTER[::-1], interpolation=cv2.INTER_AREA), scaled(p.boxes, LETTER[1], LETTER[0])) for p in labelled]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../../shared/data/signature-detection/valid", help="a YOLO split (not a test split)")
    parser.add_argument("--n", type=int, default=400, help="pages with signatures to cut strips from")
    parser.add_argument("--model", default=None)
    parser.add_argument("--tall-only", action="store_true", help="only the pages read in windows: pages one above the other, turned bands")
    args = parser.parse_args()
    detector = get_detector(args.model)
    pages = letter_pages(args.data, args.n)
    print(f"machine: {machine()}; model {detector.name}, threshold {detector.threshold}; {len(pages)} pages of {args.data}")
    print("| page | width / height | pages | signatures | read | AP@0.5 | AP@0.75 | found | false | missed |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    wide, tall = list(WAYS)[:3], ["shipped", "stretched whole (before)", "not read turned (before)", "read turned whatever its lines"]
    shapes = [] if args.tall_only else [(f"band of {fraction} of a page", LETTER[1] / (fraction * LETTER[0]), list(strips(pages, fraction)), wide)
                                        for fraction in FRACTIONS]
    shapes += [(f"{count} pages one above the other", LETTER[1] / (count * LETTER[0]), stacked(pages, count), tall) for count in (2, 3)]
    shapes += [(f"band of {fraction} of a page, turned a quarter {way}", fraction * LETTER[0] / LETTER[1],
                turned(strips(pages, fraction), quarters), tall[::2] + tall[3:]) for fraction in (0.35, 0.2) for quarters, way in ((1, "anticlockwise"), (3, "clockwise"))]
    for label, shape, examples, ways in shapes:
        results = compare(detector, track(examples, description=label), ways)
        for way, r in results.items():
            print(f"| {label} | {shape:.2f} | {len(examples)} | {sum(len(t) for _, t in examples)} | {way} "
                  f"| {r['ap50']:.3f} | {r['ap75']:.3f} | {r['found']} | {r['false']} | {r['missed']} |")
    print("\n| signature-free page | width / height | bands | read | bands given a box |\n|---|---|---|---|---|")
    for fraction in () if args.tall_only else (0.5, 0.35, 0.2):
        examples = signature_free_strips(args.data, fraction)
        for way, r in compare(detector, track(examples, description=f"signature-free, {fraction}"), wide).items():
            print(f"| band of {fraction} | {LETTER[1] / (fraction * LETTER[0]):.2f} | {len(examples)} | {way} | {r['boxed']} |")
    for fraction in (0.35, 0.2):
        examples = turned(signature_free_strips(args.data, fraction), 1)
        for way, r in compare(detector, track(examples, description=f"signature-free, {fraction}, turned"), tall[::2] + tall[3:]).items():
            print(f"| band of {fraction}, turned a quarter | {fraction * LETTER[0] / LETTER[1]:.2f} | {len(examples)} | {way} | {r['boxed']} |")

if __name__ == "__main__":
    main()
