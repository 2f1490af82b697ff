"""An int8 copy of an exported cleaner: the same network, about 1.6 times faster on a CPU.

The network is most of a crop's cleaning time (12.6 of 20.5 ms for a 300x1000 crop on a 2-core
Xeon), so ONNX Runtime's static quantisation (QDQ: int8 weights per output channel, uint8
activations, ranges from min-max calibration) is run on crops made the way the training pairs
are, from training writers only. The first layers (`float_layers`, Lite0's stem and blocks 0-1)
stay in float: quantising every layer costs stroke recall on the validation pairs (0.787 against
0.805), keeping these in float gives most of it back (0.797), and they hold little of the time.
The copy is checked against the float model on pairs of the held-out training writers and
refused when its ink F-measure falls more than `max_f_loss` below the float model's. Crops and
pairs are made with the generator settings and data sources the base's card records, so a config
names only what is new. See docs/benchmarks.md, "Cleaner".
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from .. import synth
from ..cleaner import MASK_SETTINGS, network_input
from ..errors import InputError
from ..models import ModelCard, load_card, write_card
from .cleaner import (as_input, check_fonts, ink_measures, load_clean_signature, load_clean_signatures, make_pair, paths_by_source,
                      validation_pairs)
from .run_state import machine_name


class _CalibrationCrops(CalibrationDataReader):
    def __init__(self, inputs: list[np.ndarray], name: str):
        self._items = iter([{name: x} for x in inputs])

    def get_next(self) -> dict | None:
        return next(self._items, None)


GENERATOR_SETTINGS = ("clean_fraction", "hand_stroke_fraction", "flourish_fraction", "fade_probability")


def base_settings(base: ModelCard) -> dict:
    """What the base cleaner's card records of how its training pairs were made: data sources
    (their held-out writers give the validation pairs), generator settings, fonts, patch size."""
    trained = base.details.get("trained_on", {})
    settings = {key: trained[key] for key in GENERATOR_SETTINGS if key in trained}
    if trained.get("element_probabilities"):
        settings["elements"] = trained["element_probabilities"]
    if "signatures" in trained:
        settings["data"] = trained["signatures"]
    if "fonts" in trained:  # as many fonts as the base's training machine had: a lower bound, the same subset ('train')
        settings["min_fonts"] = int(trained["fonts"])
    if "patch" in base.details.get("training", {}):
        settings["patch"] = base.details["training"]["patch"]
    return settings


def calibration_inputs(signature: Callable[[int], np.ndarray], count: int, config: dict, n: int) -> list[np.ndarray]:
    """`n` dirty crops from the training generator (clutter, clean scans, damage), at working
    size, from training images drawn at random among `count` (`signature(i)` reads image i, so
    only those drawn are read; with fewer than `n`, some are drawn twice)."""
    rng = np.random.default_rng([int(config.get("seed", 0)), 7])
    return [network_input(make_pair(signature(i), rng, config)[0]) for i in rng.choice(count, n, replace=count < n)]


def ink_scores(model: Path, dirty: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Ink precision, recall and F of an ONNX cleaner on validation pairs (P(ink) > 0.5)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = as_input(dirty).numpy()
    probability = np.concatenate([session.run(None, {name: x[i : i + 16]})[0][:, 0] for i in range(0, len(x), 16)])
    return ink_measures(probability, target)


def quantize_cleaner(config: dict, config_path: str) -> Path:
    """Write `<out>/<name>.onnx`, the int8 copy of the cleaner `base`, and its model card."""
    base = load_card(config["base"])
    if base.kind != "cleaner":
        raise InputError(f"base: {base.name} is {base.a_kind}, not a cleaner")
    if "quantization" in base.details or base.name == config["name"]:
        raise InputError(f"base: {base.name} is {'already an int8 copy' if 'quantization' in base.details else 'the copy itself'}; name the float cleaner")
    # the base's settings unless the config says otherwise; `max_pixels`, the working area the copy
    # serves at (the base's unless given), is also the calibration crops' and validation pairs'
    base_pixels = base.details.get("max_pixels", 65536)
    settings = {"max_pixels": base_pixels, **base_settings(base), **config}
    if not isinstance(settings["max_pixels"], int) or isinstance(settings["max_pixels"], bool) or settings["max_pixels"] < 4096:
        raise InputError(f"max_pixels: the working area is a whole number of pixels of at least 4096, not {settings['max_pixels']!r}")
    changes = config.get("mask") or {}
    if not isinstance(changes, dict) or set(changes) - MASK_SETTINGS:
        raise InputError(f"mask: the keys a cleaner reads are {', '.join(sorted(MASK_SETTINGS))}, not {changes!r}")
    check_fonts(settings)  # the calibration crops' printed text, as in training: other fonts, other ranges
    sources = settings.get("data") or []
    train_paths = [path for paths in paths_by_source(sources, "train") for path in paths]
    holdout = load_clean_signatures(sources, "holdout") if sources else []  # about 1,000 scans: seconds, so not cached
    if train_paths:
        count, signature = len(train_paths), lambda i: load_clean_signature(train_paths[i])
    else:  # no data (tests): procedural writers, held-out ones never drawn for calibration
        count, signature = 16, lambda i: synth.genuine(i, 0)
    if not holdout:
        holdout = [synth.genuine(10_000_000 + i, 0) for i in range(8)]
    inputs = calibration_inputs(signature, count, settings, int(config.get("calibration_crops", 64)))
    float_layers = tuple(config.get("float_layers", []))
    path = Path(config["out"]) / f"{config['name']}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    val_dirty, val_target = validation_pairs(holdout, settings, int(config.get("validation_pairs", 128)))
    with tempfile.TemporaryDirectory() as scratch:  # the copy lands in `out` only once it has passed
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        quant_pre_process(str(base.path), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        keep_float = [node.name for node in graph.node if node.name.startswith(float_layers)]
        unknown = [layer for layer in float_layers if not any(name.startswith(layer) for name in keep_float)]
        if unknown:
            raise InputError(f"float_layers: no node name of {base.name} starts with {', '.join(map(repr, unknown))} (e.g. {graph.node[0].name!r})")
        quantize_static(str(prepared), str(quantized), _CalibrationCrops(inputs, graph.input[0].name), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=keep_float)
        float_scores, scores = ink_scores(base.path, val_dirty, val_target), ink_scores(quantized, val_dirty, val_target)
        allowed = float(config.get("max_f_loss", 0.005))
        if scores["f"] < float_scores["f"] - allowed:
            raise InputError(f"int8 {config['name']} loses ink F {float_scores['f']} -> {scores['f']} on the validation pairs "
                             f"(more than max_f_loss {allowed}); keep more layers in float (float_layers)")
        shutil.move(quantized, path)
    details = {k: v for k, v in base.details.items() if k != "measured_on_test_writers"}  # the copy is measured on its own
    card = {
        **details,
        "max_pixels": settings["max_pixels"],
        "mask": {**base.details.get("mask", {}), **changes},  # how the kept ink is drawn: the config may change it
        "name": config["name"],
        "description": config["description"],
        "quantization": {"base": base.name, "method": "onnxruntime static QDQ: int8 weights per output channel, uint8 activations, min-max calibration",
                         "calibration_crops": len(inputs), "calibration_data": [source["path"] for source in sources] or "procedural signatures (signver.synth)",
                         "base_max_pixels": base_pixels,  # the copy's own working area is the card's max_pixels
                         "float_layers": list(float_layers), "float_nodes": len(keep_float),
                         "onnxruntime": ort.__version__, "machine": machine_name(), "date": date.today().isoformat()},
        "validation": {"pairs": len(val_dirty), "writers": "held-out training writers", **scores, "float": float_scores},
        "training_command": f"{base.details.get('training_command', '')}, then signver train cleaner --config {config_path}".lstrip(", "),
    }
    write_card(path.with_suffix(".json"), card)
    return path
