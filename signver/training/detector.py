"""`signver train detector`: train the centre detector on a YOLO split, choose on another.

Pages are decoded once and cached, resized, in `runs/<name>/*.npz`, so an epoch costs only
augmentation and the network. Every `eval_every` epochs the validation split is scored (COCO
mAP); `best.pt` keeps the best mAP@0.5:0.95 and `last.pt` lets an interrupted run resume.
The best checkpoint is exported to ONNX, and its score threshold is chosen on the validation
split: best F1 at IoU 0.5 among thresholds that leave 95 % of signature-free pages without a box.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.progress import Progress, track

from ..detector import PREPROCESSING, decode, nms
from ..errors import InputError
from ..evaluation.detection import PageDetections, average_precision, choose_threshold, detection_metrics
from ..images import load_image
from ..models import inference_session, write_card
from ..yolo import read_split
from .detector_augment import augment_page
from .detector_loss import detector_loss
from .config import read_config
from .detector_network import AveragedDetector, CentreDetector, ExportedDetector, build_detector, load_detector_weights
from .detector_targets import centre_targets
from .cache import cached_arrays
from .run_state import (holding_run_dir, machine_name, optimizer_and_schedule, progress_columns, resume, save_atomically, save_checkpoint, shaping, training_device,
                        training_log)

MIN_SCORE = 0.01  # detections kept when scoring the validation split


@dataclass
class PageSet:
    images: np.ndarray  # (N, S, S) uint8 pages stretched to S x S
    boxes: list[np.ndarray]  # per page (K, 4) x0, y0, x1, y1 as fractions of the page

    def boxes_in_pixels(self, index: int) -> np.ndarray:
        h, w = self.images.shape[1:]
        return self.boxes[index] * np.array([w, h, w, h], np.float32)


def load_page_set(split_dir: str, size: int, cache: Path | None = None) -> PageSet:
    """Every page of a YOLO split, grey, stretched to size x size (as inference does), cached."""
    def read() -> dict[str, np.ndarray]:
        pages = read_split(split_dir)
        images = np.stack([cv2.resize(load_image(p.image), (size, size), interpolation=cv2.INTER_AREA)
                           for p in track(pages, description=f"caching {Path(split_dir).name} pages")])
        return {"images": images, "boxes": np.concatenate([p.boxes for p in pages]), "counts": np.array([len(p.boxes) for p in pages])}

    data = cached_arrays(cache, {"split": str(Path(split_dir).resolve()), "size": size}, read)
    return PageSet(data["images"], np.split(data["boxes"], np.cumsum(data["counts"])[:-1]))


class AugmentedPages(torch.utils.data.Dataset):
    """Training examples of one epoch: page `index` augmented at `size` x `size` (a `window` x
    `window` part of it), and its targets. Each page draws from its own stream (seed, epoch,
    index), so the examples do not depend on how many workers make them, and a resumed run
    sees the epochs it would have seen."""

    def __init__(self, pages: PageSet, size: int, window: int, stride: int, strength: float, seed: int):
        self.pages, self.size, self.window, self.stride, self.strength, self.seed = pages, size, window, stride, strength, seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.pages.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, boxes = augment_page(self.pages.images[index], self.pages.boxes_in_pixels(index), (self.size, self.size), rng, self.strength, self.window)
        return tuple(torch.from_numpy(a) for a in (image, *centre_targets(boxes, (self.window, self.window), self.stride)))


def training_batches(examples: AugmentedPages, epoch: int, batch: int, workers: int):
    """Batches of one epoch (shuffled, last partial batch dropped): uint8 images (B, window,
    window) and their targets, made by `workers` processes (0: in this one)."""
    examples.epoch = epoch
    order = np.random.default_rng([examples.seed, epoch]).permutation(len(examples)).tolist()
    return torch.utils.data.DataLoader(examples, batch_size=batch, sampler=order, drop_last=True, num_workers=workers)


def as_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 pages (B, H, W) -> the network's float input (B, 1, H, W) in [0, 1] on `device`."""
    return images.to(device, non_blocking=True).float().div_(255.0)[:, None].contiguous(memory_format=torch.channels_last)


def predict(network: CentreDetector, images: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Centre probabilities (N, h, w) and side distances (N, 4, h, w) of the torch network."""
    network.eval()
    device = next(network.parameters()).device
    heat, distances = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch):
            logits, d = network(as_input(torch.from_numpy(images[start : start + batch]), device))
            heat.append(torch.sigmoid(logits)[:, 0].float().cpu().numpy())
            distances.append(d.float().cpu().numpy())
    network.train()
    return np.concatenate(heat), np.concatenate(distances)


def detections(heat: np.ndarray, distances: np.ndarray, pages: PageSet, stride: int, nms_iou: float) -> list[PageDetections]:
    """Decoded, suppressed detections of each page with its true boxes, in input pixels."""
    out = []
    for index in range(len(heat)):
        boxes, scores = decode(heat[index], distances[index], stride, MIN_SCORE)
        keep = nms(boxes, scores, nms_iou)
        out.append(PageDetections(boxes[keep], scores[keep], pages.boxes_in_pixels(index)))
    return out


def quick_scores(pages: list[PageDetections]) -> dict[str, float]:
    aps = [average_precision(pages, t) for t in np.arange(0.5, 0.951, 0.05)]
    return {"map50": round(aps[0], 4), "map50_95": round(float(np.mean(aps)), 4)}


def train_detector(config: dict, config_path: str) -> Path:
    """Train one detector, or with `members` (config files) an ensemble of them."""
    if "members" in config:
        return train_ensemble(config, config_path)
    seed = config.get("seed", 0)
    torch.manual_seed(seed)
    torch.set_num_threads(config.get("threads", 2))
    size, cache_size = int(config["input"]["size"]), int(config.get("cache_size", config["input"]["size"]))
    if config.get("init_from") and not Path(config["init_from"]).is_file():
        raise InputError(f"init_from {config['init_from']} is not a file: name the best.pt of the run to start from")
    run_dir = Path(config.get("run_dir", f"runs/{config['name']}"))
    with holding_run_dir(run_dir):
        train = load_page_set(config["data"]["train"], cache_size, run_dir / f"train-{cache_size}.npz")
        valid = load_page_set(config["data"]["valid"], size, run_dir / f"valid-{size}.npz")
        device = training_device(config)
        network = build_detector(config["network"])
        if len(train.images) < int(config["batch"]):  # every batch is whole: there would be no step to train
            raise InputError(f"batch {config['batch']} is more than the {len(train.images)} training pages; give a smaller batch")
        if config.get("init_from"):  # a second stage starts from the weights an earlier run chose
            load_detector_weights(network, torch.load(config["init_from"], map_location="cpu", weights_only=False)["network"])
        network = network.to(device, memory_format=torch.channels_last)
        batch, epochs = int(config["batch"]), int(config["epochs"])
        steps_per_epoch = len(train.images) // batch
        total, warmup = epochs * steps_per_epoch, int(config.get("warmup", 100))
        optimizer, scheduler = optimizer_and_schedule(network, config, total, warmup)
        checkpoint = run_dir / "last.pt"
        state = resume(checkpoint, network, optimizer, scheduler, epochs, "epoch", config=config)
        made_by = shaping(config)
        start_epoch, seconds, best = state.get("epoch", 0), state.get("seconds", 0.0), state.get("best", -1.0)
        nms_iou, strength = config.get("nms_iou", 0.5), config.get("augment_strength", 1.0)
        window = int(config.get("window", size))
        examples = AugmentedPages(train, size, window, network.stride, strength, seed)
        workers = int(config.get("workers", 0))
        with Progress(*progress_columns()) as progress, training_log(run_dir / "log.jsonl", start_epoch, "epoch") as log:
            task = progress.add_task("train", total=total, completed=start_epoch * steps_per_epoch, status="")
            began = time.time()
            for epoch in range(start_epoch, epochs):
                network.train()
                running = {"loss": 0.0, "heat": 0.0, "box": 0.0}
                for images, *targets in training_batches(examples, epoch, batch, workers):
                    heat, box_target, weight = (t.to(device, non_blocking=True) for t in targets)
                    with torch.autocast(device.type, dtype=torch.bfloat16):
                        logits, distances = network(as_input(images, device))
                    loss, parts = detector_loss(logits, distances, heat, box_target, weight, network.stride, config.get("box_weight", 5.0))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    for key, value in (("loss", loss.item()), *parts.items()):
                        running[key] += value / steps_per_epoch
                    progress.update(task, advance=1, status=f"epoch {epoch + 1}/{epochs} loss {loss.item():.3f}")
                done = epoch + 1
                record = {"epoch": done, "step": done * steps_per_epoch, **{k: round(v, 4) for k, v in running.items()}}
                if done % config.get("eval_every", 1) == 0 or done == epochs:
                    scores = quick_scores(detections(*predict(network, valid.images), valid, network.stride, nms_iou))
                    record["valid"] = scores
                    if scores["map50_95"] > best:
                        best = scores["map50_95"]
                        save_atomically({"network": network.state_dict(), "epoch": done, "valid": scores}, run_dir / "best.pt")
                    progress.update(task, status=f"epoch {done}/{epochs} valid mAP50 {scores['map50']:.3f} mAP50-95 {scores['map50_95']:.3f}")
                elapsed = seconds + time.time() - began
                record["seconds"] = round(elapsed)
                log.write(json.dumps(record) + "\n")
                log.flush()
                save_checkpoint(checkpoint, network, optimizer, scheduler, epoch=done, seconds=elapsed, best=best, machine=machine_name(device), made_by=made_by)
        seconds += time.time() - began
        chosen = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)
        network = network.cpu()
        network.load_state_dict(chosen["network"])
        training = {"epochs": epochs, "chosen_epoch": chosen["epoch"], "batch": batch, "lr": config["lr"], "window": window, "windows_seen": epochs * steps_per_epoch * batch,
                    "augment_strength": strength, "init_from": config.get("init_from"), "seconds": round(seconds), "machine": state.get("machine", machine_name(device)) if start_epoch >= epochs else machine_name(device),
                    "date": date.today().isoformat()}
        return export_detector(network, config, config_path, valid, training)


def train_ensemble(config: dict, config_path: str) -> Path:
    """Train each member config in turn (resumable: a finished member is only exported again),
    then export their average (`AveragedDetector`) as one detector, its threshold chosen on the
    validation split as for one network."""
    members, trainings, specs = [], [], []
    for member_path in config["members"]:
        member_config = read_config(Path(member_path))
        card = json.loads(train_detector(member_config, member_path).with_suffix(".json").read_text())
        network = build_detector(member_config["network"])
        run_dir = Path(member_config.get("run_dir", f"runs/{member_config['name']}"))
        network.load_state_dict(torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)["network"])
        members.append(network)
        specs.append(member_config["network"])
        trainings.append({"config": member_path, "valid": card["valid"], **card["training"]})
    size = int(config["input"]["size"])
    run_dir = Path(config.get("run_dir", f"runs/{config['name']}"))
    with holding_run_dir(run_dir):  # its validation cache, as a member's run holds its own
        valid = load_page_set(config["data"]["valid"], size, run_dir / f"valid-{size}.npz")
        training = {"members": trainings, "seconds": sum(t["seconds"] for t in trainings), "date": date.today().isoformat()}
        return export_detector(AveragedDetector(members), {**config, "network": {"members": specs}}, config_path, valid, training)


def export_detector(network: CentreDetector | AveragedDetector, config: dict, config_path: str, valid: PageSet, training: dict) -> Path:
    """Write the ONNX file and its card; the threshold and the card's figures come from running
    the exported file itself on the validation split."""
    size = int(config["input"]["size"])
    path = Path(config["out"]) / f"{config['name']}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(ExportedDetector(network.eval().float()), (torch.zeros(1, 1, size, size),), str(path),
                          input_names=["page"], output_names=["heatmap", "boxes"],
                          dynamic_axes={"page": {0: "batch"}, "heatmap": {0: "batch"}, "boxes": {0: "batch"}},
                          opset_version=17, dynamo=False)
    inference_session.cache_clear()  # a previous file of the same name may be cached
    session = inference_session(path)
    heat, distances = [], []
    for image in valid.images:
        h, d = session.run(None, {"page": (image.astype(np.float32) / 255.0)[None, None]})
        heat.append(h[0, 0])
        distances.append(d[0])
    nms_iou = config.get("nms_iou", 0.5)
    pages = detections(np.stack(heat), np.stack(distances), valid, network.stride, nms_iou)
    threshold = choose_threshold(pages)
    card = {
        "name": config["name"],
        "kind": "detector",
        "description": config["description"],
        "network": config["network"],
        "stride": network.stride,
        "nms_iou": nms_iou,
        "input": {"height": size, "width": size, "channels": 1, "dtype": "float32", "range": [0, 1], "polarity": "dark ink on white paper",
                  "preprocessing": PREPROCESSING},
        "outputs": {"heatmap": "(N, 1, H/stride, W/stride) probability that a signature is centred in the cell",
                    "boxes": "(N, 4, H/stride, W/stride) distances in input pixels from the cell centre to the left, top, right and bottom sides"},
        "threshold": round(threshold, 4),
        "threshold_selection": {"rule": "best F1 at IoU 0.5 among thresholds leaving at least 95 % of signature-free pages without a box",
                                "split": config["data"]["valid"]},
        "valid": {k: round(v, 4) if isinstance(v, float) else v for k, v in detection_metrics(pages, round(threshold, 4)).items()},
        "trained_on": config["data"]["train"],
        "training": training,
        "training_command": f"signver train detector --config {config_path}",
    }
    write_card(path.with_suffix(".json"), card)
    return path
