"""Does a reference's stability under small deformations predict how far its writer's genuine
signatures fall from it? Protocol P1 with the pair distance divided by that stability.

With one reference there is no spread of the writer's own signatures to scale by (the `scaled`
fusion needs K >= 2). A stand-in: embed the reference again turned by a few degrees, or scaled,
or shifted, and take the mean distance of those copies from the original. The score is
distance / stability^a. Chosen on held-out TRAINING writers; the test splits are printed beside
it, not used to choose.

    python benchmarks/reference_stability.py [--model NAME] [--exponents 0.25,0.5,0.75]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
from common import held_out_writers

from signver.evaluation.metrics import eer
from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED
from signver.evaluation.report import build_trials
from signver.extractor import Extractor
from signver.images import load_image
from signver.models import load_card
from signver.normalize import normalize

TEST_SPLITS = ("cedar", "bhsig260-bengali")
# (degrees, scale, x shift as a share of the width): each set's copies, compared with the original
DEFORMATIONS = {
    "turn +-3 deg": [(3, 1, 0), (-3, 1, 0)],
    "turn +3 deg": [(3, 1, 0)],
    "scale 0.9 / 1.1": [(0, 0.9, 0), (0, 1.1, 0)],
    "shift +-3 %": [(0, 1, 0.03), (0, 1, -0.03)],
    "turn +-3 deg, scale 0.9 / 1.1": [(3, 1, 0), (-3, 1, 0), (0, 0.9, 0), (0, 1.1, 0)],
}


def deform(image: np.ndarray, degrees: float, scale: float, shift: float) -> np.ndarray:
    h, w = image.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    matrix[0, 2] += shift * w
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def p1_eers(extractor: Extractor, data_dir: str, split: str | None, writers: str | None, exponents: list[float]) -> dict[str, tuple[float, float]]:
    """Skilled and random P1 EER for the plain distance and for each deformation set and exponent."""
    _, trials = build_trials(data_dir, "p1", 1, split, writers)
    images = [normalize(load_image(p), extractor.card.input_size) for p in trials.images]
    vectors = extractor.embed_normalized(images)
    reference, questioned = trials.references[:, 0], trials.questioned
    distance = np.linalg.norm(vectors[reference] - vectors[questioned], axis=1)
    scores = {"plain distance": distance}
    for name, copies in DEFORMATIONS.items():
        moved = np.stack([extractor.embed_normalized([deform(i, *c) for i in images]) for c in copies], axis=1)
        stability = np.linalg.norm(moved - vectors[:, None], axis=2).mean(axis=1)
        for a in exponents:
            scores[f"{name}, a = {a}"] = distance / stability[reference] ** a
    genuine = trials.kind == POSITIVE
    return {
        name: (eer(s[genuine], s[trials.kind == SKILLED])[0], eer(s[genuine], s[trials.kind == RANDOM])[0])
        for name, s in scores.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--exponents", default="0.25,0.5,0.75")
    args = parser.parse_args()
    exponents = [float(a) for a in args.exponents.split(",")]
    extractor = Extractor(args.model)
    held_out, test = {}, {}
    for name, writers in held_out_writers(load_card(extractor.name)).items():
        held_out[name] = p1_eers(extractor, f"{args.data}/{name}", None, writers, exponents)
        if name in TEST_SPLITS:
            test[name] = p1_eers(extractor, f"{args.data}/{name}", name, None, exponents)
    print(f"model {extractor.name}; P1 EER skilled / random (%)")
    print("| score | held-out: " + " | ".join(held_out) + " | held-out mean | test: " + " | ".join(test) + " |")
    print("|---|" + "---|" * (len(held_out) + len(test) + 1))
    for score in next(iter(held_out.values())):
        cells = [held_out[d][score] for d in held_out]
        mean = np.mean(cells, axis=0)
        row = [f"{100 * s:.2f} / {100 * r:.2f}" for s, r in cells + [tuple(mean)] + [test[d][score] for d in test]]
        print(f"| {score} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
