"""`signver train extractor`: train an embedding network by deep metric learning, export it.

Training writers only: each source's split gives its training writers, and a few of those
(`holdout`) are kept out of the gradient to follow training and to choose the threshold.
Runs are resumable: `runs/<name>/last.pt` is written every `eval_every` steps, and
`best.pt` whenever the held-out writers' EER (mean over datasets) improves; best is exported.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
from rich.progress import Progress

from ..errors import InputError
from ..evaluation.metrics import eer
from ..extractor import Extractor
from ..models import inference_session, write_card
from .augment import augment
from .data import TrainingSet, load_training_set, writer_batches
from .export import export_onnx, input_spec
from .losses import chosen_loss
from .networks import FusedEmbedder, build_network
from .spatial import head_seeds, imagenet_maps, spatial_embeddings, train_spatial_heads
from .run_state import (holding_run_dir, machine_name, optimizer_and_schedule, progress_columns, resume, save_atomically, save_checkpoint, shaping, training_device,
                        training_log)


def holdout_distances(embeddings: np.ndarray, data: TrainingSet) -> tuple[np.ndarray, np.ndarray]:
    """Genuine-genuine and genuine-forgery distances within each held-out writer (P1 pairs)."""
    d = np.sqrt(np.maximum(2 - 2 * embeddings @ embeddings.T, 0))
    same = data.writer[:, None] == data.writer[None, :]
    both = data.genuine[:, None] & data.genuine[None, :]
    upper = np.triu(np.ones_like(same), k=1)
    skilled = same & data.genuine[:, None] & ~data.genuine[None, :]
    return d[same & both & upper], d[skilled]


def holdout_eers(embeddings: np.ndarray, data: TrainingSet) -> dict[str, float]:
    """Skilled-forgery EER of the held-out writers, pooled and per dataset."""
    result = {"all": eer(*holdout_distances(embeddings, data))[0]}
    per_dataset = {}
    for name in np.unique(data.dataset):
        mine = data.dataset == name
        per_dataset[str(name)] = eer(*holdout_distances(embeddings[mine], data.subset(mine)))[0]
    result["mean"] = float(np.mean(list(per_dataset.values())))  # each dataset counts the same
    return {k: round(v, 4) for k, v in {**result, **per_dataset}.items()}


def embed_with(network: torch.nn.Module, images: np.ndarray, batch: int = 128) -> np.ndarray:
    """Embed normalised uint8 images on whichever device the network lives on."""
    device = next(network.parameters()).device
    network.eval()
    with torch.no_grad():
        out = [network(_as_batch(images[i : i + batch]).to(device)).float().cpu().numpy() for i in range(0, len(images), batch)]
    network.train()
    return np.concatenate(out)


def _as_batch(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).float().div_(255.0)[:, None].contiguous(memory_format=torch.channels_last)


def train_extractor(config: dict, config_path: str) -> Path:
    size = (int(config["input"]["height"]), int(config["input"]["width"]))
    run_dir = Path(config.get("run_dir", f"runs/{config['name']}"))
    with holding_run_dir(run_dir):  # the spatial heads and the finer caches are written there after the network trains
        trained = train_network(config, run_dir)
        network, seconds = trained.network, trained.seconds
        config = {**config, "chosen_step": trained.chosen_step, "machine": trained.machine}
        served = served_size(config)  # the network is convolutional up to its pooling: it may serve a finer input
        train, holdout = trained.train, trained.holdout
        if served != size:
            holdout = load_training_set(config["data"], served, "holdout", run_dir / f"holdout-{served[0]}x{served[1]}.npz")
        if "fuse_imagenet" in config:
            network, config["fusion_weight"] = fuse_with_imagenet(network, config["fuse_imagenet"], holdout)
        if "spatial" in config:
            if "fuse_imagenet" not in config:
                raise ValueError("a spatial head compares ImageNet maps: the config needs fuse_imagenet as well")
            if served != size:
                train = load_training_set(config["data"], served, "train", run_dir / f"train-{served[0]}x{served[1]}.npz")
            config["spatial_result"] = add_spatial_head(network, config["spatial"], train, holdout, run_dir)
        return export_extractor(network, config, config_path, holdout, seconds)


@dataclass
class TrainedNetwork:
    network: torch.nn.Module  # at the held-out writers' best step, on the CPU
    seconds: float  # training time over all stretches of the run
    chosen_step: int
    machine: str  # where the run's last stretch trained
    train: TrainingSet  # the images it trained on and the held-out ones, at the training size
    holdout: TrainingSet


def train_network(config: dict, run_dir: Path) -> TrainedNetwork:
    """Train (or resume, or find finished) the run in `run_dir`, which the caller holds (`holding_run_dir`)."""
    torch.manual_seed(config.get("seed", 0))
    torch.set_num_threads(config.get("threads", 2))
    device = training_device(config)
    size = (int(config["input"]["height"]), int(config["input"]["width"]))
    batch, loss_config = config["batch"], config["loss"]
    if not (isinstance(batch, dict) and {"writers", "genuine", "forged"} <= set(batch)):
        raise InputError(f"batch must say how many writers, and genuine and forged signatures of each, such as "
                         f"{{writers: 32, genuine: 4, forged: 2}}, not {batch!r}")
    loss_fn = chosen_loss(loss_config)
    holdout = load_training_set(config["data"], size, "holdout", run_dir / "holdout.npz")  # the smaller: a wrong holdout fails first
    train = load_training_set(config["data"], size, "train", run_dir / "train.npz")
    network = build_network(config["network"]).to(device, memory_format=torch.channels_last)
    steps, warmup = int(config["steps"]), int(config.get("warmup", 100))
    optimizer, scheduler = optimizer_and_schedule(network, config, steps, warmup)
    checkpoint = run_dir / "last.pt"
    state = resume(checkpoint, network, optimizer, scheduler, steps, config=config)
    made_by = shaping(config)
    start, seconds, best = state.get("step", 0), state.get("seconds", 0.0), state.get("best", float("inf"))
    machine = state.get("machine", machine_name(device)) if start >= steps else machine_name(device)
    batches = writer_batches(train, batch["writers"], batch["genuine"], batch["forged"], np.random.default_rng(config.get("seed", 0) + start))
    with Progress(*progress_columns()) as progress, training_log(run_dir / "log.jsonl", start) as log:
        task = progress.add_task("train", total=steps, completed=start, status="")
        began, running = time.time(), None
        for step in range(start, steps):
            index = next(batches)
            network.train()
            if step < config.get("adapt_frozen_bn_steps", 0):
                network.frozen.train()  # frozen weights, but batch-norm statistics adapt to signatures
            images = torch.from_numpy(train.images[index]).to(device)
            x = augment(images.float().div_(255.0)[:, None], config.get("augment_strength", 1.0))
            with torch.autocast(device.type, dtype=torch.bfloat16):
                embeddings = network(x.contiguous(memory_format=torch.channels_last))
            loss = loss_fn(embeddings.float(), torch.from_numpy(train.labels(index)).to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
            done = step + 1
            if done % config.get("eval_every", 250) == 0 or done == steps:
                holdout_eer = holdout_eers(embed_with(network, holdout.images), holdout)
                elapsed = seconds + time.time() - began
                record = {"step": done, "loss": round(running, 4), "holdout_eer_skilled": holdout_eer, "seconds": round(elapsed)}
                log.write(json.dumps(record) + "\n")
                log.flush()
                if holdout_eer["mean"] < best:
                    best = holdout_eer["mean"]
                    save_atomically({"network": network.state_dict(), "step": done, "holdout_eer_skilled": holdout_eer}, run_dir / "best.pt")
                save_checkpoint(checkpoint, network, optimizer, scheduler, step=done, seconds=elapsed, best=best, machine=machine, made_by=made_by)
                progress.update(task, status=f"loss {running:.3f} holdout EER {holdout_eer['all']:.3f}")
            progress.update(task, completed=done)
    seconds += time.time() - began
    chosen = torch.load(run_dir / "best.pt", weights_only=False, map_location="cpu")
    network = network.cpu()
    network.load_state_dict(chosen["network"])
    return TrainedNetwork(network, seconds, chosen["step"], machine, train, holdout)


def add_spatial_head(fused: FusedEmbedder, spec: dict, train: TrainingSet, holdout: TrainingSet, run_dir: Path) -> dict:
    """Train a `SpatialHead` on the training writers (one per seed the spec lists) and join the
    one the held-out writers score best to `fused`, with the share of the squared distance that
    minimises their EER (mean over datasets)."""
    heads = train_spatial_heads(fused, spec, train, run_dir)
    pooled = embed_with(fused, holdout.images)
    maps = imagenet_maps(fused, holdout.images, heads[0].taps)
    weights = np.round(np.arange(0.0, 0.91, 0.05), 2)
    tried = []
    for head in heads:
        local = spatial_embeddings(head, maps)
        scores = [holdout_eers(np.hstack([pooled * (1 - v) ** 0.5, local * v**0.5]), holdout)["mean"] for v in weights]
        tried.append((int(np.argmin(scores)), scores))
    chosen = min(range(len(heads)), key=lambda i: tried[i][1][tried[i][0]])
    best, scores = tried[chosen]
    fused.add_spatial(heads[chosen], float(weights[best]))
    fused.eval()
    result = {"weight": float(weights[best]), "holdout_eer_mean_without": scores[0], "holdout_eer_mean_with": scores[best]}
    seeds = head_seeds(spec)
    if seeds != [None]:
        result |= {"seed": seeds[chosen], "holdout_eer_mean_with_by_seed": {str(s): t[1][t[0]] for s, t in zip(seeds, tried)}}
    return result


def fuse_with_imagenet(network: torch.nn.Module, fusion: dict, holdout: TrainingSet) -> tuple[FusedEmbedder, float]:
    """Join the trained network with ImageNet features (`fusion`: blocks, pooling), weighted
    to minimise the held-out writers' EER (mean over datasets)."""
    fused = FusedEmbedder(network, fusion["blocks"], weight=0.5, pooling=fusion.get("pooling", "mean")).to(memory_format=torch.channels_last)
    both = embed_with(fused, holdout.images) / 0.5**0.5
    split = both.shape[1] - network.head.embed.out_features
    imagenet, trained = both[:, :split], both[:, split:]
    weights = np.round(np.arange(0.5, 0.995, 0.01), 2)
    scores = [holdout_eers(np.hstack([imagenet * w**0.5, trained * (1 - w) ** 0.5]), holdout)["mean"] for w in weights]
    fused.weight = float(weights[int(np.argmin(scores))])
    return fused.eval(), fused.weight


def served_size(config: dict) -> tuple[int, int]:
    """The (height, width) the exported model takes: `serve_input` if the config names one, else
    the training input."""
    spec = config.get("serve_input", config["input"])
    return int(spec["height"]), int(spec["width"])


def export_extractor(network: torch.nn.Module, config: dict, config_path: str, holdout: TrainingSet, seconds: float) -> Path:
    """Write the ONNX file and its card; the threshold is the held-out writers' EER point."""
    size = served_size(config)
    path = export_onnx(network, Path(config["out"]) / f"{config['name']}.onnx", size)
    card = {
        "name": config["name"],
        "kind": "extractor",
        "description": config["description"],
        "network": config["network"],
        "loss": config["loss"],
        "fusion": {**config["fuse_imagenet"], "weight": config["fusion_weight"], "chosen_on": "held-out training writers"} if "fuse_imagenet" in config else None,
        **({"spatial": {**config["spatial"], **config["spatial_result"], "chosen_on": "held-out training writers"}} if "spatial" in config else {}),
        "trained_on": [{k: v for k, v in source.items()} for source in config["data"]],
        "training": {"steps": config["steps"], "chosen_step": config["chosen_step"], "batch": config["batch"], "lr": config["lr"],
                     "images_seen": config["steps"] * _batch_size(config),
                     "seconds": round(seconds), "machine": config["machine"], "date": date.today().isoformat()},
        "input": input_spec(size),
        **({"trained_input": {"height": int(config["input"]["height"]), "width": int(config["input"]["width"])}} if "serve_input" in config else {}),
        "distance": "euclidean between L2-normalised embeddings (0 to 2)",
        "threshold": None,
        "training_command": f"signver train extractor --config {config_path}",
    }
    write_card(path.with_suffix(".json"), card)
    inference_session.cache_clear()  # a file of the same name exported earlier in this process may be cached
    set_holdout_threshold(path, card, holdout)
    return path


def set_holdout_threshold(path: Path, card: dict, holdout: TrainingSet) -> None:
    """Write `card` (of the extractor at `path`) with the threshold at the held-out writers'
    skilled-forgery EER point."""
    embeddings = Extractor(str(path)).embed_normalized(holdout.images)
    genuine, skilled = holdout_distances(embeddings, holdout)
    rate, threshold = eer(genuine, skilled)
    card["threshold"] = round(threshold, 6)
    card["threshold_selection"] = {"rule": "EER between genuine and skilled-forgery pairs of held-out training writers",
                                   "holdout_eer_skilled": holdout_eers(embeddings, holdout), "n_positive": len(genuine), "n_skilled": len(skilled)}
    write_card(path.with_suffix(".json"), card)


def _batch_size(config: dict) -> int:
    b = config["batch"]
    return b["writers"] * (b["genuine"] + b["forged"])
