"""Train the `SpatialHead` of a fused extractor on pairs of training writers.

The ImageNet layers under the head stay fixed, so their maps are computed once per training
image (at the size the model serves) and the head trains on those alone: minutes on a CPU.
Pairs are two genuine signatures of a writer (same), a genuine one and a forgery of it
(different), and genuine signatures of two writers of one dataset (different); the loss is
binary cross-entropy on s * (m - d^2), d the distance between the pair's vectors, s and m
learned. One side's maps move by up to a cell, as two signatures never line up exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import TrainingSet
from .networks import FusedEmbedder, SpatialHead, join_maps
from .run_state import optimizer_and_schedule, run_steps, save_atomically
from .stroke_width import MapCopies, drawer

SAME, FORGED = 0.5, 0.35  # default shares of same-writer and forgery pairs; the rest pair two writers


def imagenet_maps(fused: FusedEmbedder, images: np.ndarray, taps: list[int], batch: int = 64) -> torch.Tensor:
    """(N, C, h, w) float16: the ImageNet maps after `taps`, joined on the deepest tap's grid
    (`join_maps`), for normalised uint8 images."""
    fused.eval()
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            x = torch.from_numpy(images[start : start + batch]).float().div_(255.0)[:, None]
            maps = fused.imagenet_maps(fused.trained.shared(x))
            chunks.append(join_maps(maps, taps).half())
    return torch.cat(chunks)


def spatial_embeddings(head: SpatialHead, maps: torch.Tensor, batch: int = 256) -> np.ndarray:
    head.eval()
    with torch.no_grad():
        return np.concatenate([head(maps[i : i + batch].float()).numpy() for i in range(0, len(maps), batch)])


class PairSampler:
    """Random training pairs of a `TrainingSet`, labelled 1 for the same writer's genuine pair."""

    def __init__(self, data: TrainingSet, same: float = SAME, forged: float = FORGED):
        if len(np.unique(data.writer)) < 2:
            raise ValueError("training a spatial head needs at least two writers")
        if not (0 <= same and 0 <= forged and same + forged <= 1):
            raise ValueError(f"pair shares must be at least 0 and sum to at most 1: same {same}, forged {forged}")
        self.same_share, self.forged_share = same, forged
        self.writers = np.unique(data.writer)
        self.genuine = {w: np.flatnonzero((data.writer == w) & data.genuine) for w in self.writers}
        self.forged = {w: np.flatnonzero((data.writer == w) & ~data.genuine) for w in self.writers}
        dataset_of = {w: data.dataset[self.genuine[w][0]] for w in self.writers}
        others = {w: [v for v in self.writers if v != w] for w in self.writers}
        # a writer's strangers come from its own dataset, or from any other when it is alone there
        self.peers = {w: np.array([v for v in others[w] if dataset_of[v] == dataset_of[w]] or others[w]) for w in self.writers}

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        first, second, same = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.float32)
        for i in range(n):
            writer = rng.choice(self.writers)
            genuine = self.genuine[writer]
            first[i] = rng.choice(genuine)
            kind = rng.random()
            if kind < self.same_share and len(genuine) > 1:
                second[i], same[i] = rng.choice(genuine[genuine != first[i]]), 1.0
            elif kind < self.same_share + self.forged_share and len(self.forged[writer]):
                second[i] = rng.choice(self.forged[writer])
            else:
                second[i] = rng.choice(self.genuine[rng.choice(self.peers[writer])])
        return first, second, same


def head_seeds(spec: dict) -> list[int | None]:
    """The seeds `spec` trains heads with: its `seeds` list, else one head (None: `seed` seeds
    only the pairs, as before `seeds` existed)."""
    return [int(seed) for seed in spec["seeds"]] if "seeds" in spec else [None]


def train_spatial_heads(fused: FusedEmbedder, spec: dict, train: TrainingSet, run_dir: Path) -> list[SpatialHead]:
    """Train heads as `spec` says (taps, width, channels, pool, steps, batch, lr, the pair
    shares same_pairs and forged_pairs, and seed or seeds) on `train`'s images at the served
    size, one per seed of `head_seeds`: one head's held-out EER moves by most of a point with
    its initialisation alone, so a spec may list several and let the held-out writers choose.
    A head `run_dir` holds for the same spec is loaded instead."""
    taps = [int(t) for t in spec["taps"]]
    channels_in = imagenet_maps(fused, train.images[:1], taps).shape[1]
    train_maps = cache(lambda: imagenet_maps(fused, train.images, taps))  # computed once, and only if a head must train
    return [trained_head(spec, seed, channels_in, train_maps, train, run_dir / f"spatial{'' if seed is None else f'-seed{seed}'}.pt")
            for seed in head_seeds(spec)]


def trained_head(spec: dict, seed: int | None, channels_in: int, maps: Callable[[], torch.Tensor | MapCopies], train: TrainingSet, saved: Path,
                 made_from: str = "") -> SpatialHead:
    """The head `spec` and `seed` describe: the one `saved` holds for the same spec and data
    (`train`, its maps `made_from`), else one trained on `train` (whose maps, or maps and
    copies, `maps()` gives, in the same order) and saved there with its loss log beside it."""
    own = spec if seed is None else {**{k: v for k, v in spec.items() if k != "seeds"}, "seed": seed}
    if seed is not None:
        torch.manual_seed(seed)  # the head's initialisation, not just its pairs
    head = SpatialHead([int(t) for t in spec["taps"]], channels_in, int(spec.get("width", 96)), int(spec.get("channels", 32)), int(spec.get("pool", 2)))
    return load_or_fit(head, own, saved, lambda: fit_head(head, maps(), own, train), train.fingerprint + made_from)


def load_or_fit(head: nn.Module, own: dict, saved: Path, fit: Callable[[], list[dict]], data: str) -> nn.Module:
    """`head` with the weights `saved` holds when they were trained for the same spec `own` on
    the same `data` (`TrainingSet.fingerprint`: a run's other held-out writers make another
    training set); else trained by `fit` (which returns its loss log) and saved there, the log beside it."""
    state = torch.load(saved, weights_only=False) if saved.is_file() else {}
    if state.get("spec") == own and state.get("data", data) == data:  # a head saved before data were recorded: as it was
        head.load_state_dict(state["head"])
    else:
        started = time.time()
        log = fit()
        saved.parent.mkdir(parents=True, exist_ok=True)
        save_atomically({"head": head.state_dict(), "spec": own, "data": data, "log": log, "seconds": round(time.time() - started, 3)}, saved)
        saved.with_name(saved.name.replace("-", "-log-", 1) if "-" in saved.stem else saved.stem + "-log").with_suffix(".json").write_text(json.dumps(log) + "\n")
    return head.eval()


def fit_head(head: SpatialHead, maps: torch.Tensor | MapCopies, spec: dict, train: TrainingSet) -> list[dict]:
    """Train `head` on pairs of `train` (whose images' maps are `maps`, in the same order, with
    or without stroke-width copies) as `spec` says; returns the loss log."""
    scale, margin = nn.Parameter(torch.tensor(5.0)), nn.Parameter(torch.tensor(1.0))
    holder = nn.ParameterList([scale, margin])
    steps, batch = int(spec.get("steps", 2000)), int(spec.get("batch", 128))
    optimizer, scheduler = optimizer_and_schedule(nn.ModuleList([head, holder]), {"lr": spec.get("lr", 0.001), "weight_decay": spec.get("weight_decay", 0.001)},
                                                  steps, int(spec.get("warmup", 200)))
    sampler = PairSampler(train, float(spec.get("same_pairs", SAME)), float(spec.get("forged_pairs", FORGED)))
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    draw = drawer(maps, spec)
    head.train()

    def loss_at(step: int) -> torch.Tensor:
        first, second, same = sampler.sample(batch, rng)
        a, b = draw(first).float(), draw(second).float()
        b = torch.roll(b, tuple(int(s) for s in rng.integers(-1, 2, 2)), dims=(2, 3))
        d2 = (head(a) - head(b)).pow(2).sum(dim=1)
        return F.binary_cross_entropy_with_logits(scale * (margin - d2), torch.from_numpy(same))

    return run_steps("spatial head", steps, optimizer, scheduler, loss_at)
