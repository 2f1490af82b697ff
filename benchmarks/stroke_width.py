"""How much does a pen or scanner that draws every stroke a pixel finer or broader cost? P1 EER
of an extractor on the CEDAR and BHSig260-Bengali test writers with every scan as it is, a
pixel finer and a pixel broader (`signver.training.stroke_width.CHANGES`, applied to the raw
scan before normalisation), and each scan's stroke width.

    cd benchmarks && python stroke_width.py [--model NAME] [--data ../../shared/data] [--writers holdout]

`--writers holdout` measures the model's own held-out training writers instead of the test split.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from common import held_out_writers, machine, p1_eers_of_changed_scans
from signver.extractor import Extractor
from signver.normalize import ink_mask
from signver.training.stroke_width import CHANGES

DATASETS = ("cedar", "bhsig260-bengali")


def stroke_width(gray: np.ndarray) -> float:
    """Mean width of the ink in pixels: twice its area over its outline's length."""
    ink = ink_mask(gray)[0].view(np.uint8)
    outlines, _ = cv2.findContours(ink, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    return 2 * float(ink.sum()) / max(sum(cv2.arcLength(c, True) for c in outlines), 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--writers", choices=("test", "holdout"), default="test")
    args = parser.parse_args()
    extractor = Extractor(args.model)
    print(f"model {extractor.name}; machine {machine()}; {args.writers} writers; P1 EER skilled / random in %")
    print("| dataset | stroke width (px, mean) | as scanned | a pixel finer | a pixel broader |")
    print("|---|---|---|---|---|")
    changes = (lambda gray, _: gray, lambda gray, _: CHANGES["thin"](gray), lambda gray, _: CHANGES["thick"](gray))
    for dataset in DATASETS:
        writers = held_out_writers(extractor.card)[dataset] if args.writers == "holdout" else None
        scans, eers = p1_eers_of_changed_scans(extractor, args.data, dataset, writers, changes)
        cells = " | ".join(f"{skilled:.2f} / {random:.2f}" for skilled, random in eers)
        print(f"| {dataset} | {np.mean([stroke_width(scan) for scan in scans]):.2f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
