"""How much does a scanner or pen that draws lighter ink cost? P1 EER of an extractor on the
CEDAR and BHSig260-Bengali test writers with every scan as it is, every scan's ink at
`--lighter` of its darkness, and half the scans so (chosen by a seeded draw, so that a
reference and its questioned signature often differ in tone). The change is made on the raw
scan before normalisation: grey -> 255 - (255 - grey) x f, paper included.

    cd benchmarks && python ink_tone.py [--model NAME] [--data ../../shared/data] [--writers holdout] [--lighter 0.6]

`--writers holdout` measures the model's own held-out training writers instead of the test split.
"""

from __future__ import annotations

import argparse

import numpy as np

from common import held_out_writers, machine, p1_eers_of_changed_scans
from signver.extractor import Extractor

DATASETS = ("cedar", "bhsig260-bengali")


def lighter(gray: np.ndarray, factor: float) -> np.ndarray:
    """The scan with its darkness (ink and paper) scaled by `factor`."""
    return (255 - np.round((255 - gray.astype(np.float32)) * factor)).astype(np.uint8)


def drawn_lighter(index: int, seed: int = 0) -> bool:
    """Whether scan `index` is one of the half made lighter: a seeded draw of its own."""
    return bool(np.random.default_rng([seed, index]).random() < 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--writers", choices=("test", "holdout"), default="test")
    parser.add_argument("--lighter", type=float, default=0.6, help="the lighter scans' share of their darkness")
    args = parser.parse_args()
    extractor = Extractor(args.model)
    print(f"model {extractor.name}; machine {machine()}; {args.writers} writers; ink at {args.lighter:g} of its darkness; P1 EER skilled / random in %")
    print("| dataset | as scanned | every scan lighter | half the scans lighter |")
    print("|---|---|---|---|")
    changes = (lambda gray, _: gray, lambda gray, _: lighter(gray, args.lighter),
               lambda gray, i: lighter(gray, args.lighter) if drawn_lighter(i) else gray)
    for dataset in DATASETS:
        writers = held_out_writers(extractor.card)[dataset] if args.writers == "holdout" else None
        _, eers = p1_eers_of_changed_scans(extractor, args.data, dataset, writers, changes)
        print(f"| {dataset} | " + " | ".join(f"{skilled:.2f} / {random:.2f}" for skilled, random in eers) + " |", flush=True)


if __name__ == "__main__":
    main()
