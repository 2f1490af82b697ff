"""Do heads trained on fixed ImageNet maps gain from augmented copies of the training images?
Writer cross-validation of a heads recipe (lite0-heads' by default, one seed per head), with
and without copies.

For each fold scored, a global head and a spatial head are trained on the other folds' writers
twice: on the maps of the images as normalised, and drawing each image from its copies
(`--copies`) except with `--original-share`. The fold's writers are then scored with the
ImageNet part joined to both heads at every pair of shares (global w, spatial v), P1 skilled
EER, as `signver train spatial-heads` cross-validates a recipe (5 folds drawn per dataset).

    cd benchmarks && python head_copies.py [--config ../configs/extractor-lite0-heads.yaml]
        [--copies augmented-100 augmented-101] [--original-share 0.5] [--folds 0 1]
        [--data ../../shared/data]

Heads are kept in --cache, so a second run only scores. About 25 minutes per fold and arm on a
2-core CPU (both arms, 2 folds: about 100 minutes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx

from common import machine
from signver.extractor import Extractor
from signver.training.config import read_config
from signver.training.data import load_training_set
from signver.training.spatial_refit import copy_images, cross_validated_grid, pooled_and_maps, trunk, trunk_session

FOLDS = 5
GLOBAL_SHARES = (0.0, 0.01, 0.02, 0.03, 0.05)
SHARES = (0.0, 0.01, 0.015, 0.02, 0.03, 0.05)
CHOSEN = (0.02, 0.02)  # lite0-heads' pair, chosen by 5-fold cross-validation with three spatial seeds
COPY_KEYS = ("copies", "original_share")


def arm_specs(config: dict, copies: list[str], original_share: float) -> dict[str, tuple[dict, dict]]:
    """(spatial spec, global spec) of each arm: one seed per head, with or without the copies."""
    def spec(part: str, extra: dict) -> dict:
        own = {k: v for k, v in config[part].items() if k not in COPY_KEYS}
        return {**own, "seeds": [int(own.get("seeds", [0])[0])], **extra}

    with_copies = {"copies": list(copies), "original_share": float(original_share)}
    return {"as normalised": (spec("spatial", {}), spec("global", {})),
            "with copies": (spec("spatial", with_copies), spec("global", with_copies))}


def table(grids: dict[str, dict]) -> list[str]:
    """Markdown rows: per arm, the best pair of shares, lite0-heads' pair and the ImageNet part alone."""
    names = [n for n in next(iter(next(iter(grids.values())).values())) if n != "mean"]
    rows = ["| arm | shares (global w, spatial v) | " + " | ".join(names) + " | mean |", "|---|---|" + "---|" * (len(names) + 1)]
    for arm, grid in grids.items():
        best = min(grid, key=lambda key: grid[key]["mean"])
        for label, key in ((f"best, {best}", best), (f"lite0-heads' pair, {CHOSEN}", CHOSEN), ("ImageNet part alone, (0, 0)", (0.0, 0.0))):
            rows.append(f"| {arm} | {label} | " + " | ".join(f"{100 * grid[key][n]:.2f}" for n in names + ["mean"]) + " |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="../configs/extractor-lite0-heads.yaml")
    parser.add_argument("--copies", nargs="+", default=["augmented-100", "augmented-101"])
    parser.add_argument("--original-share", type=float, default=0.5)
    parser.add_argument("--folds", type=int, nargs="+", default=[0, 1], help=f"which of the {FOLDS} folds to score")
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--cache", default="/tmp/head-copies", help="folder for the normalised training images and the folds' heads")
    args = parser.parse_args()
    config = read_config(Path(args.config))
    base = Extractor(config["base"])
    size = base.card.input_size
    sources = [{**s, "path": f"{args.data}/{Path(s['path']).name}"} for s in base.card.details["trained_on"]]
    cache = Path(args.cache)
    train = load_training_set(sources, size, "train", cache / f"train-{size[0]}.npz")
    session = trunk_session(trunk(onnx.load(base.card.path), imagenet_only=True))
    pooled, maps = pooled_and_maps(session, train.images)
    changed = {name: pooled_and_maps(session, copy_images(name, train, sources, size, cache))[1] for name in args.copies}
    grids = {}
    for arm, (spatial, global_) in arm_specs(config, args.copies, args.original_share).items():
        heads = cache / ("heads-" + ("-".join(args.copies) + f"-{args.original_share}" if "copies" in spatial else "plain"))
        grids[arm] = cross_validated_grid(pooled, maps, train, spatial, FOLDS, SHARES, heads, global_, GLOBAL_SHARES, changed, scored_folds=args.folds)
    print(f"\nconfig {args.config}; copies {' '.join(args.copies)} (each image as normalised with share {args.original_share}); machine {machine()}")
    print(f"P1 skilled EER (%), folds {args.folds} of {FOLDS} over {len(np.unique(train.writer))} training writers, one seed per head")
    print("\n".join(table(grids)))


if __name__ == "__main__":
    main()
