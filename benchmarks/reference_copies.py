"""How close is a copy of a reference, and how close are two signings? The gallery refuses a
reference nearer than `signver.matcher.NEAR_COPY_SHARE` of the model's threshold to one the
person already has; this measures both sides of that line, in the same unit.

Two signings: every pair of one training writer's genuine signatures (held-out writers
excluded, so the default's threshold was not chosen on them). Copies: the first genuine scan
of 20 training writers per dataset, re-encoded or resized as scans often are, against itself;
and what a JPEG copy among two references does to a claim of the writer's third signature.

    cd benchmarks && python reference_copies.py [--model NAME] [--data ../../shared/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from common import machine
from signver.datasets import read_dataset
from signver.extractor import Extractor
from signver.matcher import NEAR_COPY_SHARE
from signver.images import load_image
from signver.matcher import distances, fuse
from signver.training.data import load_training_set, writers_for


def jpeg(gray: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], cv2.IMREAD_GRAYSCALE)


def resized(gray: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


COPIES = {"JPEG, quality 90": lambda g: jpeg(g, 90), "JPEG, quality 60": lambda g: jpeg(g, 60),
          "resized to 0.8": lambda g: resized(g, 0.8), "resized to 0.5": lambda g: resized(g, 0.5)}


def same_writer_distances(vectors: np.ndarray, writer: np.ndarray, genuine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances between every two genuine signatures of one writer, and the pairs (i, j)."""
    d = np.sqrt(np.maximum(2 - 2 * vectors @ vectors.T, 0))
    pairs = np.argwhere((writer[:, None] == writer[None, :]) & genuine[:, None] & genuine[None, :] & np.triu(np.ones(d.shape, bool), 1))
    return d[pairs[:, 0], pairs[:, 1]], pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--cache", default="/tmp/reference-copies")
    args = parser.parse_args()
    extractor = Extractor(args.model)
    card = extractor.card
    unit = card.threshold
    line = NEAR_COPY_SHARE * unit
    sources = [{**s, "path": f"{args.data}/{Path(s['path']).name}"} for s in card.details["trained_on"]]
    train = load_training_set(sources, card.input_size, "train", Path(args.cache) / f"train-{card.input_size[0]}.npz")
    vectors = extractor.embed_normalized(train.images)
    print(f"\nmodel {card.name} (threshold {unit:.4f}, copy line {line:.4f}); machine {machine()}")
    print("| pairs | count | min | 0.1 % | 1 % | median | under the copy line | in threshold units: min / median |")
    print("|---|---|---|---|---|---|---|---|")
    under = []
    for name in np.unique(train.dataset):
        mine = np.flatnonzero(train.dataset == name)
        d, pairs = same_writer_distances(vectors[mine], train.writer[mine], train.genuine[mine])
        under += [(mine[i], mine[j]) for i, j in pairs[d < line]]
        low, q01, q1, median = np.quantile(d, [0, 0.001, 0.01, 0.5])
        print(f"| two signings, {name} | {len(d)} | {low:.4f} | {q01:.4f} | {q1:.4f} | {median:.4f} | {int((d < line).sum())} | {low / unit:.2f} / {median / unit:.2f} |")
    if under:
        differences = np.array([np.abs(train.images[i].astype(int) - train.images[j]).mean() for i, j in under])
        print(f"\nThe {len(under)} pairs under the line, normalised: {np.mean(differences == 0):.0%} identical, mean absolute "
              f"difference at most {differences.max():.2f} grey levels")
    writers = []
    for source in sources:
        dataset = read_dataset(source["path"])
        writers += [dataset.genuine(w)[:3] for w in writers_for(source, dataset, "train")[:20]]
    scans = [load_image(signatures[0].path) for signatures in writers]
    originals = extractor.vectors(scans)
    print("\n| a scan and its copy | scans | median | max | under the copy line | in threshold units: median / max |")
    print("|---|---|---|---|---|---|")
    for name, change in COPIES.items():
        d = distances(originals, extractor.vectors([change(s) for s in scans]))
        print(f"| {name} | {len(d)} | {np.median(d):.4f} | {d.max():.4f} | {int((d < line).sum())} | {np.median(d) / unit:.2f} / {d.max() / unit:.2f} |")
    copies = extractor.vectors([COPIES["JPEG, quality 90"](s) for s in scans])
    second, third = (extractor.vectors([signatures[k].path for signatures in writers]) for k in (1, 2))
    rule = card.claim_rule("scaled", 2)
    for what, other in (("a JPEG copy of the first", copies), ("the writer's second signing", second)):
        scores = [fuse(distances(np.stack([a, b]), q[None]), "scaled", np.stack([a, b])) for a, b, q in zip(originals, other, third)]
        print(f"A third signing claimed against the first and {what} (scaled, K = 2): median score {np.median(scores):.2f}, "
              f"{np.mean(np.array(scores) <= rule.threshold):.0%} of {len(scores)} verified at the claim threshold {rule.threshold:.2f}")


if __name__ == "__main__":
    main()
