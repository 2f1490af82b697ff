"""`signver train detector-rescorer`: fit the box re-scorer of `signver.detector_rescorer` and
write it into the detector's card.

Candidates are the boxes the shipped detector finds on the training pages above the floor,
labelled true where they overlap a true box with IoU 0.5 or more. The MLP is fitted on them
alone; the validation split then chooses the score threshold by the detector's usual rule, and
the card's validation figures are measured on the re-scored detector (the network's own figures
stay in the card beside them).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..detector import Detector, box_iou
from ..detector_rescorer import FEATURES, Rescorer, box_features
from ..errors import DatasetError
from ..images import load_image
from ..yolo import read_split, scaled
from .detector_steps import card_with_step, write_detector

MATCH_IOU = 0.5
RESCORER_NOTE = "; candidates re-scored from score and box geometry (MLP)"


def training_candidates(detector: Detector, split_dir: str, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, F) of every candidate box on the split's pages and whether each is a signature."""
    features, labels = [], []
    for item in track(read_split(split_dir), description="candidates on training pages"):
        page = load_image(item.image)
        boxes, scores = detector.candidates(page, floor)
        if not len(scores):
            continue
        truth = scaled(item.boxes, page.shape[1], page.shape[0])
        features.append(box_features(boxes, scores, page.shape))
        labels.append(box_iou(boxes, truth).max(axis=1) >= MATCH_IOU if len(truth) else np.zeros(len(scores), bool))
    if not features:
        return np.zeros((0, len(FEATURES))), np.zeros(0, bool)
    return np.concatenate(features), np.concatenate(labels)


def fit_mlp(features: np.ndarray, labels: np.ndarray, hidden: int, alpha: float, seed: int) -> dict:
    """The card's `rescorer` section for an MLP fitted on standardised features."""
    model = make_pipeline(StandardScaler(), MLPClassifier((hidden,), alpha=alpha, max_iter=2000, random_state=seed)).fit(features, labels)
    scaler, mlp = model.steps[0][1], model.steps[1][1]
    layers = [{"weight": w.round(6).tolist(), "bias": b.round(6).tolist()} for w, b in zip(mlp.coefs_, mlp.intercepts_)]
    return {"features": list(FEATURES), "mean": scaler.mean_.round(6).tolist(), "scale": scaler.scale_.round(6).tolist(), "layers": layers}


def fit_rescorer(config: dict, config_path: str) -> Path:
    """Fit the re-scorer for the configured detector, then write the detector (ONNX copied
    unchanged) and its card, with the re-scorer, new threshold and validation figures, to `out`."""
    detector = Detector(config["detector"])
    floor = float(config.get("candidate_floor", 0.05))
    detector.rescorer = None  # candidates come from the network alone, even when refitting
    features, labels = training_candidates(detector, config["data"]["train"], floor)
    if labels.all() or not labels.any():
        raise DatasetError(f"the detector's candidates on {config['data']['train']} ({len(labels)} above {floor}) include "
                           f"{labels.sum()} signatures and {len(labels) - labels.sum()} other boxes: the re-scorer needs both kinds to learn from")
    hidden, alpha = int(config.get("hidden", 16)), float(config.get("alpha", 0.01))
    spec = fit_mlp(features, labels, hidden, alpha, int(config.get("seed", 0)))
    spec.update({"candidate_floor": floor, "fitted_on": config["data"]["train"], "n_candidates": int(len(labels)), "n_signatures": int(labels.sum()),
                 "match_iou": MATCH_IOU, "hidden": hidden, "alpha": alpha,
                 "date": date.today().isoformat(), "training_command": f"signver train detector-rescorer --config {config_path}"})
    detector.rescorer = Rescorer(spec)
    data = card_with_step(detector, config["data"]["valid"], "rescorer", spec, RESCORER_NOTE, "network_scores")
    data["threshold_selection"] = {**data.get("threshold_selection", {}), "scores": "re-scored (rescorer section)", "split": config["data"]["valid"]}
    return write_detector(detector, data, config["out"])  # written only now, so a failed fit leaves the detector as it was
