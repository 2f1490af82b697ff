"""Shipped model files, their cards, and onnxruntime sessions.

Every model is an ONNX file with a JSON card beside it (`<name>.onnx`, `<name>.json`) saying
what it was trained on, how it was measured, its default threshold and its input spec, so a
user can tell what a decision rests on. Inference never imports torch.
"""

from __future__ import annotations

import functools
import json
import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import onnxruntime as ort

from .calibration import Calibration, ClaimRule, ClaimRules
from .errors import InputError, ModelError

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_EXTRACTOR = "lite0-heads"


@dataclass(frozen=True)
class ModelCard:
    name: str
    kind: str
    path: Path
    input_size: tuple[int, int]  # (height, width)
    threshold: float | None = None
    description: str = ""
    details: dict = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_file(cls, card_path: Path) -> ModelCard:
        try:
            data = json.loads(card_path.read_text())
            return cls(
                name=data["name"],
                kind=data["kind"],
                path=card_path.with_suffix(".onnx"),
                input_size=(int(data["input"]["height"]), int(data["input"]["width"])),
                threshold=data.get("threshold"),
                description=data.get("description", ""),
                details=data,
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelError(f"unreadable model card {card_path}: {error}") from error

    @property
    def a_kind(self) -> str:
        """Its kind with its article, for messages: "an extractor", "a cleaner"."""
        return f"{'an' if self.kind[:1] in 'aeiou' else 'a'} {self.kind}"

    @cached_property
    def calibration(self) -> Calibration | None:
        """The distance -> confidence map fitted on held-out training writers, if the card has one."""
        data = self.details.get("calibration")
        return Calibration.from_dict(data) if data else None

    @cached_property
    def claim_rules(self) -> ClaimRules:
        return ClaimRules.from_dict(self.details.get("claims") or {})

    def claim_rule(self, fusion: str, references: int) -> ClaimRule | None:
        """Threshold and calibration for a claim fusing `references` distances, if fitted. A
        claim against one reference is one pair whatever the fusion, so it takes the pair rule
        where the card has one: `verify` against that reference gives the same answer."""
        if references == 1 and self.threshold is not None and self.calibration is not None:
            return ClaimRule(float(self.threshold), self.calibration)
        return self.claim_rules.get(fusion, references)


def write_card(card_path: Path, data: dict) -> None:
    """Write a model card whole or not at all (a temporary file, then an atomic rename), so a
    crash or a full disk mid-write never leaves a shipped card unreadable."""
    card_path = Path(card_path)
    partial = card_path.with_name(card_path.name + ".partial")
    try:
        with open(partial, "w") as file:
            file.write(json.dumps(data, indent=2) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, card_path)
    finally:
        partial.unlink(missing_ok=True)


def available_models(kind: str | None = None) -> list[ModelCard]:
    cards = [ModelCard.from_file(p) for p in sorted(MODELS_DIR.glob("*.json"))]
    return [c for c in cards if kind is None or c.kind == kind]


def load_card(name_or_path: str | os.PathLike) -> ModelCard:
    """A shipped model by name, or any `.onnx` file that has its `.json` card beside it."""
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise InputError(f"a model is named by a string or a path to its .onnx file, not {type(name_or_path).__name__} {name_or_path!r}")
    candidate = Path(name_or_path)
    if candidate.suffix in (".onnx", ".json"):
        card_path = candidate.with_suffix(".json")
    else:
        card_path = MODELS_DIR / f"{name_or_path}.json"
    if not card_path.is_file():
        known = ", ".join(c.name for c in available_models()) or "none"
        raise ModelError(f"no model {str(name_or_path)!r} (looked for {card_path}); shipped models: {known}")
    card = ModelCard.from_file(card_path)
    if not card.path.is_file():
        raise ModelError(f"model card {card_path} has no model file beside it ({card.path.name})")
    return card


def made_once(maxsize: int):
    """`functools.lru_cache` whose misses are made one at a time, so that threads asking at once
    for something not yet made (a model's session: a second and tens of MB) share one copy
    instead of each making its own."""

    def decorate(make):
        cached = functools.lru_cache(maxsize=maxsize)(make)
        lock = threading.RLock()

        @functools.wraps(make)
        def shared(*args, **kwargs):
            with lock:
                return cached(*args, **kwargs)

        shared.cache_clear = cached.cache_clear
        return shared

    return decorate


_spin_wait = True


def set_spin_wait(on: bool) -> None:
    """Whether sessions made from now on keep their idle worker threads spinning for the next
    piece of work. On (the default) one caller's runs come back sooner (a pair verified in 10.5
    against 13-15 ms); off, runs going on at once, as a service's concurrent requests do, stop
    starving each other (verify 61 -> 75 requests/s, documents 10 -> 17 per second; see
    docs/benchmarks.md, Speed). The service turns it off before it loads its models."""
    global _spin_wait
    if bool(on) != _spin_wait:
        _spin_wait = bool(on)
        inference_session.cache_clear()


@made_once(maxsize=8)
def inference_session(model_path: Path, threads: int = 0) -> ort.InferenceSession:
    """One cached CPU session per model file (`threads` 0 lets onnxruntime choose)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if _spin_wait else "0")
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own untyped errors
        raise ModelError(f"cannot load model {model_path}: {error}") from error
