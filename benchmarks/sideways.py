"""Signatures on their side, as on a page scanned turned: what reading them turned back does to
P1 EER on the CEDAR and BHSig260-Bengali test writers.

Each questioned scan is turned a quarter, clockwise or anticlockwise (seeded), and read four
ways against its upright reference: as scanned (upright, for reference), on its side as it is
(what every release before the forty-third session did with a box taller than wide), turned a
quarter each way taking the way nearer the reference, and as `check --document` now reads such
a box: as it is and turned a quarter each way, the claim taking the way nearest the reference
(a tall box may hold an upright signature).

    cd benchmarks && python sideways.py [--model NAME] [--data ../../shared/data] [--writers holdout]
"""

from __future__ import annotations

import argparse

import numpy as np

from common import held_out_writers, machine
from signver.evaluation.metrics import eer
from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED
from signver.evaluation.report import build_trials
from signver.extractor import Extractor
from signver.images import load_image
from signver.normalize import normalize

DATASETS = ("cedar", "bhsig260-bengali")


def rates(references: np.ndarray, questioned: list[np.ndarray], trials) -> tuple[float, float]:
    """P1 skilled and random EER in % of questioned scans read each of the ways in
    `questioned` (vectors per scan) against their references, each trial taking its nearer way."""
    distance = np.minimum.reduce([np.linalg.norm(references[trials.references[:, 0]] - way[trials.questioned], axis=1) for way in questioned])
    genuine = distance[trials.kind == POSITIVE]
    return 100 * eer(genuine, distance[trials.kind == SKILLED])[0], 100 * eer(genuine, distance[trials.kind == RANDOM])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--writers", choices=("test", "holdout"), default="test", help="the test split, or the card's held-out training writers")
    args = parser.parse_args()
    extractor = Extractor(args.model)
    held = held_out_writers(extractor.card) if args.writers == "holdout" else {}
    size = extractor.card.input_size
    print(f"model {extractor.name}; {args.writers} writers; machine {machine()}")
    print("| dataset | P1 EER skilled / random, %: upright | on its side, read as it is | read turned a quarter, the way nearer the reference "
          "| read as it is or turned a quarter, the way nearest the reference (the pipeline's rule) |")
    print("|---|---|---|---|---|")
    for dataset in DATASETS:
        _, trials = build_trials(f"{args.data}/{dataset}", "p1", 1, None if held else dataset, held.get(dataset))
        scans = [load_image(path) for path in trials.images]
        upright = extractor.embed_normalized([normalize(scan, size) for scan in scans])
        way = np.random.default_rng(0).choice((1, 3), len(scans))  # np.rot90 counts anticlockwise quarters
        sideways = [np.rot90(scan, k) for scan, k in zip(scans, way)]
        as_is = extractor.embed_normalized([normalize(scan, size) for scan in sideways])
        turned = [extractor.embed_normalized([normalize(np.rot90(scan, k), size) for scan in sideways]) for k in (1, -1)]  # a quarter each way
        cells = [rates(upright, [upright], trials), rates(upright, [as_is], trials), rates(upright, turned, trials), rates(upright, [as_is] + turned, trials)]
        print(f"| {dataset} | " + " | ".join(f"{s:.2f} / {r:.2f}" for s, r in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
