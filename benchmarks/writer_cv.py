"""How well do 20 held-out writers predict unseen writers? Writer cross-validation of the parts
of an extractor that never trained on training writers' signatures.

The shipped vector is mostly ImageNet features (never trained on signatures) and a spatial head
trained on ImageNet maps of the training writers. Both can be measured on every training writer:
the ImageNet part as it is, the spatial head by k-fold cross-validation (a head trained, with
the card's own spec and seed, on the other folds' writers, scored on the fold's). Folds are
drawn per dataset. The trained network saw the training writers, so it is left out here; this
measures the ImageNet + spatial part, P1 skilled EER, next to the same part on the card's 20
held-out writers.

    cd benchmarks && python writer_cv.py [--model NAME] [--folds 5] [--data ../../shared/data]

The folds' heads are kept in --cache, so a second run only scores.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx

from common import machine
from signver.extractor import Extractor
from signver.training.data import load_training_set
from signver.training.loop import holdout_eers
from signver.training.spatial_refit import SHARES, cross_validated_shares, joined, pooled_and_maps, trunk, trunk_session, unit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--cache", default="/tmp/writer-cv", help="folder for the normalised training images and the folds' heads")
    args = parser.parse_args()
    extractor = Extractor(args.model)
    card = extractor.card
    spec = dict(card.details["spatial"])
    # the card's heads: all its seeds for an ensemble, else the one seed it kept
    spec["seeds"] = spec["seeds"] if spec.get("heads", 1) > 1 else [int(spec.get("seed", 0))]
    sources = [{**s, "path": f"{args.data}/{Path(s['path']).name}"} for s in card.details["trained_on"]]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    train = load_training_set(sources, card.input_size, "train", cache / f"train-{card.input_size[0]}.npz")
    holdout = load_training_set(sources, card.input_size, "holdout", cache / f"holdout-{card.input_size[0]}.npz")
    session = trunk_session(trunk(onnx.load(card.path)))
    pooled, maps = pooled_and_maps(session, train.images)
    imagenet_size = pooled.shape[1] - int(card.details["network"]["dim"])
    cv = cross_validated_shares(unit(pooled[:, :imagenet_size]), maps, train, spec, args.folds, SHARES, cache / f"heads-{card.name}")
    held = extractor.embed_normalized(holdout.images)
    local_size = held.shape[1] - pooled.shape[1]
    # the shipped vector holds the head's part scaled by its share: none to rescale at share 0
    shipped = {v: holdout_eers(joined(unit(held[:, :imagenet_size]), unit(held[:, -local_size:]), v), holdout) for v in SHARES} if spec["weight"] > 0 else {}
    names = [n for n in cv[SHARES[0]] if n != "mean"]
    print(f"\nmodel {card.name}; machine {machine()}")
    print(f"P1 skilled EER (%) of the ImageNet part + spatial head; {args.folds}-fold writer cross-validation over "
          f"{len(np.unique(train.writer))} training writers, against the card's {len(np.unique(holdout.writer))} held-out writers (shipped head)")
    print("| writers | spatial share v | " + " | ".join(names) + " | mean |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for v in SHARES:
        print(f"| cross-validated training writers | {v} | " + " | ".join(f"{100 * cv[v][n]:.2f}" for n in names + ["mean"]) + " |")
    if not shipped:
        print("(the card's spatial share is 0, so its vectors keep nothing of the head to score the held-out writers with)")
    for v in shipped:
        print(f"| held-out writers | {v} | " + " | ".join(f"{100 * shipped[v][n]:.2f}" for n in names + ["mean"]) + " |")


if __name__ == "__main__":
    main()
