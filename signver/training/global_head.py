"""Train a `GlobalHead`: a metric-learned global vector on the fixed ImageNet maps.

The same batches and loss as the trained network branch (P writers x K genuine + F of their
forgeries, a writer's forgeries its hardest negatives; multi-similarity loss), but on maps
computed once per training image, so a head trains in minutes on a CPU and one can be trained
per fold of writers (`signver.training.spatial_refit`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .data import TrainingSet, writer_batches
from .losses import chosen_loss
from .networks import GlobalHead
from .run_state import optimizer_and_schedule, run_steps
from .spatial import load_or_fit
from .stroke_width import MapCopies, drawer


def global_seeds(spec: dict) -> list[int]:
    """The seeds `spec` trains global heads with (several are read as one ensemble)."""
    return [int(seed) for seed in spec.get("seeds", [0])]


def trained_global_head(spec: dict, seed: int, channels_in: int, maps: Callable[[], torch.Tensor | MapCopies], train: TrainingSet, saved: Path,
                        made_from: str = "") -> GlobalHead:
    """The head `spec` and `seed` describe: the one `saved` holds for the same spec, else one
    trained on `train` (whose maps `maps()` gives, in the same order) and saved there."""
    own = {**{k: v for k, v in spec.items() if k != "seeds"}, "seed": seed}
    torch.manual_seed(seed)
    head = GlobalHead([int(t) for t in spec["taps"]], channels_in, int(spec.get("width", 256)), int(spec.get("dim", 128)))
    return load_or_fit(head, own, saved, lambda: fit_global_head(head, maps(), own, train), train.fingerprint + made_from)


DEFAULT_GLOBAL_LOSS = {"name": "multi_similarity"}


def fit_global_head(head: GlobalHead, maps: torch.Tensor | MapCopies, spec: dict, train: TrainingSet) -> list[dict]:
    """Train `head` on writer batches of `train` (whose images' maps are `maps`, with or
    without stroke-width copies) as `spec` says (steps, lr, weight_decay, warmup, batch
    {writers, genuine, forged}, loss {name, ...}, seed, precision fp32 or bf16, copies,
    original_share); returns the loss log."""
    steps, batch = int(spec.get("steps", 800)), spec.get("batch", {"writers": 32, "genuine": 4, "forged": 2})
    loss_fn = chosen_loss(spec.get("loss", DEFAULT_GLOBAL_LOSS), "global, loss")
    optimizer, scheduler = optimizer_and_schedule(head, {"lr": spec.get("lr", 0.001), "weight_decay": spec.get("weight_decay", 1e-4)}, steps, int(spec.get("warmup", 100)))
    writers = min(int(batch["writers"]), len(np.unique(train.writer)))  # a small fold may hold fewer writers than a batch
    batches = writer_batches(train, writers, int(batch["genuine"]), int(batch["forged"]), np.random.default_rng(int(spec.get("seed", 0))))
    draw = drawer(maps, spec)
    bf16 = spec.get("precision", "fp32") == "bf16"  # about twice as fast on a CPU with bf16 support
    if bf16:
        head.to(memory_format=torch.channels_last)
    head.train()

    def loss_at(step: int) -> torch.Tensor:
        index = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            vectors = head(draw(index).float().contiguous(memory_format=torch.channels_last))
        return loss_fn(vectors.float(), torch.from_numpy(train.labels(index)))

    return run_steps("global head", steps, optimizer, scheduler, loss_at)
