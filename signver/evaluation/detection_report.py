"""`signver evaluate-detector`: run a detector over a YOLO split, write metrics.json and a
precision-recall plot. Timing covers detection on the decoded page (resize, network, decoding,
NMS, box steps) at the shipped threshold, as a user runs it, not reading the file."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..detector import Detector
from ..detector_baseline import BaselineDetector
from ..folders import output_folder
from ..images import load_image
from ..yolo import read_split, scaled
from . import plots
from .detection import PageDetections, detection_metrics, precision_recall_curve
from .report import metrics_json

MIN_SCORE = 0.01  # detections kept for the precision-recall curves, well below any threshold

Finder = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def run_detector(split_dir: str | Path, find: Finder, progress: Callable[[int, int], None] | None = None,
                 timed: Finder | None = None) -> tuple[list[PageDetections], float]:
    """Detections by `find` and true boxes (page pixels) for every page of the split, and the
    mean milliseconds `timed` (default `find`) took per page, after one warm-up call. Curves
    need boxes far below the threshold, which cost box steps a user never pays for, hence
    a second, timed run at the operating point."""
    labelled = read_split(split_dir)
    timed = timed or find
    pages, seconds = [], 0.0
    for done, item in enumerate(labelled, 1):
        image = load_image(item.image)
        if done == 1:
            timed(image)  # warm-up
        start = time.perf_counter()
        result = timed(image)
        seconds += time.perf_counter() - start
        boxes, scores = result if timed is find else find(image)
        pages.append(PageDetections(boxes, scores, scaled(item.boxes, image.shape[1], image.shape[0])))
        if progress:
            progress(done, len(labelled))
    return pages, 1000 * seconds / len(labelled)


def evaluate_detector(split_dir: str | Path, out: str | Path, model: str | None = None, baseline: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> dict:
    """Measure the shipped detector (or `model`, or the classical baseline) on a YOLO split."""
    out = output_folder(out, contents="metrics.json and the plot", outside=split_dir, files=("metrics.json", "precision_recall.png"))
    if baseline:
        method = BaselineDetector()
        find, timed, threshold, name = method.find, None, method.threshold, "classical baseline (signver.detector_baseline)"
    else:
        detector = Detector(model)
        find, timed, threshold, name = (lambda page: detector.find(page, MIN_SCORE)), detector.find, detector.threshold, detector.name
    pages, ms_per_page = run_detector(split_dir, find, progress, timed)
    metrics = {"model": name, "split": str(split_dir), **detection_metrics(pages, threshold), "ms_per_page": ms_per_page}
    curves = {f"IoU {iou}": precision_recall_curve(pages, iou) for iou in (0.5, 0.75)}
    plots.precision_recall_plot(curves, threshold, f"{name} on {Path(split_dir).name}", out / "precision_recall.png")
    (out / "metrics.json").write_text(metrics_json(metrics))
    return metrics
