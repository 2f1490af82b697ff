"""Shared bits of the benchmark scripts: test images, a machine description, and P1 EERs of
scans changed before normalisation."""

from __future__ import annotations

import os
import platform
from datetime import date
from pathlib import Path

import cv2
import numpy as np

from signver import synth
from signver.evaluation.metrics import eer
from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED
from signver.evaluation.report import build_trials
from signver.images import load_image
from signver.normalize import normalize


def typical_scans(n: int, size: tuple[int, int] = (300, 600)) -> list[np.ndarray]:
    """n synthetic signatures placed on paper of `size` (h, w), like a 600x300 scan."""
    scans = []
    for k in range(n):
        ink = synth.genuine(k % 50, k // 50)
        scale = min(0.9 * size[0] / ink.shape[0], 0.9 * size[1] / ink.shape[1])
        ink = cv2.resize(ink, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        page = np.full(size, 245, np.uint8)
        top, left = (size[0] - ink.shape[0]) // 2, (size[1] - ink.shape[1]) // 2
        page[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
        scans.append(page)
    return scans


def real_scans(folder: str, n: int) -> list[np.ndarray]:
    paths = sorted(Path(folder).rglob("*.png"))[:n]
    return [load_image(p) for p in paths]


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), platform.machine())
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today().isoformat()}"


def held_out_writers(card) -> dict[str, str]:
    """The held-out training writers of each dataset an extractor's card was trained on, as
    `build_trials` takes them ("1,10,20"), by dataset folder name."""
    return {Path(source["path"]).name: ",".join(str(w) for w in source["holdout"]) for source in card.details["trained_on"]}


def p1_eers_of_changed_scans(extractor, folder: str, dataset: str, writers: str | None, changes) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """The P1 trials' raw scans of one dataset (its test split, or `writers`), and for each
    change (raw scan, its index -> raw scan) the skilled and random EER in %, every scan changed."""
    _, trials = build_trials(f"{folder}/{dataset}", "p1", 1, None if writers else dataset, writers)
    scans = [load_image(path) for path in trials.images]
    eers = []
    for change in changes:
        vectors = extractor.embed_normalized([normalize(change(scan, i), extractor.card.input_size) for i, scan in enumerate(scans)])
        distance = np.linalg.norm(vectors[trials.references[:, 0]] - vectors[trials.questioned], axis=1)
        genuine = distance[trials.kind == POSITIVE]
        eers.append((100 * eer(genuine, distance[trials.kind == SKILLED])[0], 100 * eer(genuine, distance[trials.kind == RANDOM])[0]))
    return scans, eers
