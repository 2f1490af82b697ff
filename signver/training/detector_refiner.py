"""`signver train detector-refiner`: train the box refiner of `signver.detector_refiner` and add
it to the detector's card.

Its examples are windows around the boxes the shipped detector finds on the training pages that
overlap a true box (IoU 0.3 or more), and around true boxes moved and resized at random as the
detector errs, drawn again every epoch. The target is the true box's four sides as shifts in
window fractions. The validation split then chooses the threshold again and gives the card's
figures; the figures without the refiner stay in the card beside them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.progress import Progress, track
from torch import nn

from ..detector import Detector, box_iou
from ..errors import InputError
from ..detector_refiner import BoxRefiner, crop_window, to_window, windows_around
from ..images import load_image
from ..models import inference_session
from ..yolo import read_split, scaled
from .detector_steps import card_with_step, write_detector
from .run_state import holding_run_dir, machine_name, optimizer_and_schedule, progress_columns, resume, save_checkpoint, shaping, training_log

MATCH_IOU = 0.3  # a found box this close to a true box is worth refining towards it
REFINER_NOTE = "; kept boxes refined by a second CNN that looks at each one"


def conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class RefinerNetwork(nn.Module):
    """Input (N, 1, H, W) in [0, 1], dark ink on white, H and W multiples of 32. Output (N, 4):
    shifts of the left, top, right and bottom sides in fractions of the window. The head sees
    the whole final map, not a pooled vector: where the ink ends is the point."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.features = nn.Sequential(conv(1, 16, 1), conv(16, 32, 2), conv(32, 32, 1), conv(32, 64, 2), conv(64, 64, 1),
                                      conv(64, 96, 2), conv(96, 96, 1), conv(96, 128, 2), conv(128, 64, 2))
        cells = (size[0] // 32) * (size[1] // 32)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * cells, 256), nn.ReLU(inplace=True), nn.Linear(256, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(1 - x))


@dataclass
class TrainingPage:
    page: np.ndarray  # grey, uint8
    truth: np.ndarray  # (T, 4) true boxes in pixels
    found: np.ndarray  # (F, 4) boxes the detector found near a true box
    found_truth: np.ndarray  # (F, 4) the true box each one overlaps most


def training_pages(detector: Detector, split_dir: str, floor: float) -> list[TrainingPage]:
    """The split's pages that hold signatures, with the detector's boxes near them."""
    pages = []
    for item in track(read_split(split_dir), description="boxes on training pages"):
        if not len(item.boxes):
            continue
        page = load_image(item.image)
        truth = scaled(item.boxes, page.shape[1], page.shape[0])
        boxes, _ = detector.find(page, floor)
        found, found_truth = np.zeros((0, 4), np.float32), np.zeros((0, 4), np.float32)
        if len(boxes):
            iou = box_iou(boxes, truth)
            near = iou.max(axis=1) >= MATCH_IOU
            found, found_truth = boxes[near], truth[iou.argmax(axis=1)[near]]
        pages.append(TrainingPage(page, truth, found, found_truth))
    return pages


def jittered(truth: np.ndarray, copies: int, spread: dict, rng: np.random.Generator) -> np.ndarray:
    """`copies` boxes per true box, resized and moved by the configured spreads (log size, and
    centre in fractions of the size)."""
    truth = np.repeat(truth, copies, axis=0)
    size = truth[:, 2:] - truth[:, :2]
    centre = (truth[:, :2] + truth[:, 2:]) / 2 + rng.normal(0, [spread["centre_x"], spread["centre_y"]], size.shape) * size
    size = size * np.exp(rng.normal(0, [spread["log_width"], spread["log_height"]], size.shape))
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1).astype(np.float32)


def epoch_examples(pages: list[TrainingPage], config: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Window crops (N, H, W) uint8 and targets (N, 4): found boxes plus fresh jittered ones."""
    size, expand, pad = (config["input"]["height"], config["input"]["width"]), tuple(config["expand"]), float(config["pad"])
    crops, targets = [], []
    for item in pages:
        boxes = np.concatenate([item.found, jittered(item.truth, int(config["jitters"]), config["jitter"], rng)])
        truth = np.concatenate([item.found_truth, np.repeat(item.truth, int(config["jitters"]), axis=0)])
        windows = windows_around(boxes, expand, pad)
        crops.extend(crop_window(item.page, window, size) for window in windows)
        targets.append(to_window(truth, windows) - to_window(boxes, windows))
    return np.stack(crops), np.concatenate(targets).astype(np.float32)


def augmented(crops: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch as tensors, half mirrored left-right (the left and right shifts swap and change
    sign) and with paper and ink contrast varied."""
    x = crops.astype(np.float32) / 255.0
    t = targets.copy()
    flip = rng.random(len(x)) < 0.5
    x[flip] = x[flip, :, ::-1]
    t[flip] = np.stack([-targets[flip, 2], targets[flip, 1], -targets[flip, 0], targets[flip, 3]], axis=1)
    gain = rng.uniform(0.7, 1.0, (len(x), 1, 1)).astype(np.float32)
    x = np.clip(x * gain + (1 - gain) * rng.uniform(0, 1, (len(x), 1, 1)).astype(np.float32), 0, 1)
    return torch.from_numpy(np.ascontiguousarray(x[:, None])), torch.from_numpy(t)


def train_refiner(config: dict, config_path: str) -> Path:
    """Train (resumably), export the refiner beside the detector, and write the detector's card
    with the refiner, a threshold chosen again and the validation figures."""
    seed = int(config.get("seed", 0))
    torch.manual_seed(seed)
    torch.set_num_threads(config.get("threads", 2))
    size = (int(config["input"]["height"]), int(config["input"]["width"]))
    detector = Detector(config["detector"])
    detector.refiner = None  # the boxes to refine are the unrefined ones, even when training again
    pages = training_pages(detector, config["data"]["train"], float(config.get("candidate_floor", 0.05)))
    run_dir = Path(config.get("run_dir", "runs/detector-refiner"))
    with holding_run_dir(run_dir):
        network = RefinerNetwork(size)
        batch, epochs = int(config["batch"]), int(config["epochs"])
        n_examples = sum(len(p.found) + len(p.truth) * int(config["jitters"]) for p in pages)
        steps_per_epoch = n_examples // batch
        if not steps_per_epoch:  # every batch is whole: there would be no step to train
            raise InputError(f"batch {batch} is more than the {n_examples} boxes to learn from on these pages; give a smaller batch")
        optimizer, scheduler = optimizer_and_schedule(network, config, epochs * steps_per_epoch, int(config.get("warmup", 100)))
        checkpoint = run_dir / "last.pt"
        state = resume(checkpoint, network, optimizer, scheduler, epochs, "epoch", config=config)
        made_by = shaping(config)
        start_epoch, seconds = state.get("epoch", 0), state.get("seconds", 0.0)
        began = time.time()
        with Progress(*progress_columns()) as progress, training_log(run_dir / "log.jsonl", start_epoch, "epoch") as log:
            task = progress.add_task("train", total=epochs * steps_per_epoch, completed=start_epoch * steps_per_epoch, status="")
            for epoch in range(start_epoch, epochs):
                rng = np.random.default_rng([seed, epoch])  # a resumed run sees the epochs it would have seen
                crops, targets = epoch_examples(pages, config, rng)
                order = rng.permutation(len(crops))
                network.train()
                total = 0.0
                for step in range(steps_per_epoch):
                    x, t = augmented(*(a[order[step * batch:(step + 1) * batch]] for a in (crops, targets)), rng)
                    loss = F.smooth_l1_loss(network(x), t, beta=float(config.get("loss_beta", 0.02)))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    scheduler.step()
                    total += loss.item()
                    progress.update(task, advance=1, status=f"epoch {epoch + 1}/{epochs} loss {loss.item():.4f}")
                elapsed = seconds + time.time() - began
                log.write(json.dumps({"epoch": epoch + 1, "loss": round(total / steps_per_epoch, 5), "examples": len(crops), "seconds": round(elapsed)}) + "\n")
                log.flush()
                save_checkpoint(checkpoint, network, optimizer, scheduler, epoch=epoch + 1, seconds=elapsed, made_by=made_by)
        training = {"epochs": epochs, "batch": batch, "lr": config["lr"], "examples_per_epoch": n_examples, "pages": len(pages),
                    "found_boxes": sum(len(p.found) for p in pages), "seconds": round(seconds + time.time() - began),
                    "machine": machine_name(), "date": date.today().isoformat()}
        return export_refiner(network.eval(), detector, config, config_path, training)


def export_onnx(network: RefinerNetwork, path: Path, size: tuple[int, int]) -> None:
    with torch.no_grad():
        torch.onnx.export(network, (torch.ones(1, 1, *size),), str(path), input_names=["windows"], output_names=["shifts"],
                          dynamic_axes={"windows": {0: "batch"}, "shifts": {0: "batch"}}, opset_version=17, dynamo=False)
    inference_session.cache_clear()  # a previous file of the same name may be cached


def export_refiner(network: RefinerNetwork, detector: Detector, config: dict, config_path: str, training: dict) -> Path:
    """Write the refiner's ONNX file, the detector's (copied unchanged) and its card; the card's
    figures come from running the exported files on the validation split."""
    size = (int(config["input"]["height"]), int(config["input"]["width"]))
    refiner_name = f"{detector.card.name}-refiner.onnx"
    staged = Path(config.get("run_dir", "runs/detector-refiner")) / refiner_name
    export_onnx(network, staged, size)
    spec = {"model": refiner_name, "input": {"height": size[0], "width": size[1], "channels": 1, "dtype": "float32", "range": [0, 1],
                                             "polarity": "dark ink on white paper"},
            "expand": list(config["expand"]), "pad": float(config["pad"]), "mirror": bool(config.get("mirror", False)),
            "passes": int(config.get("passes", 1)), "match_iou": MATCH_IOU, "jitters": int(config["jitters"]),
            "jitter": config["jitter"], "trained_on": config["data"]["train"], "training": training,
            "training_command": f"signver train detector-refiner --config {config_path}"}
    detector.refiner = BoxRefiner(spec, staged.parent)
    data = card_with_step(detector, config["data"]["valid"], "refiner", spec, REFINER_NOTE, "without_refiner")
    path = write_detector(detector, data, config["out"], refiner_dir=staged.parent)  # only now, so a failed run leaves the detector as it was
    inference_session.cache_clear()
    return path
