"""What the steps after the detector's network (re-scorer, box refiner) share when they join
its card: the threshold chosen again and the validation figures measured with the step in
place, the figures from before it kept beside them, and the card written only at the end."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..detector import Detector
from ..evaluation.detection import choose_threshold, detection_metrics
from ..evaluation.detection_report import MIN_SCORE, run_detector
from ..models import write_card


def card_with_step(detector: Detector, valid_dir: str, key: str, spec: dict, note: str, before: str) -> dict:
    """The detector's card data with section `key` = `spec` added and `note` in its description;
    threshold and `valid` figures from `valid_dir` with the detector as it now runs. The first
    figures without the step stay as `valid_<before>` and `threshold_<before>`."""
    pages, _ = run_detector(valid_dir, lambda page: detector.find(page, MIN_SCORE))
    threshold = round(choose_threshold(pages), 4)
    data = dict(detector.card.details)
    data.setdefault(f"valid_{before}", data.get("valid"))
    data.setdefault(f"threshold_{before}", data.get("threshold"))
    data[key] = spec
    if note not in data.get("description", ""):
        data["description"] = data.get("description", "") + note
    data["threshold"] = threshold
    data["valid"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in detection_metrics(pages, threshold).items()}
    return data


def write_detector(detector: Detector, data: dict, out: str | Path, refiner_dir: Path | None = None) -> Path:
    """Write the card `data` to `out`, last, after the detector's network and its box refiner's
    (where the card names one, taken from `refiner_dir`, default beside the detector) are copied
    there when they are not there already."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    card = detector.card
    onnx_path = out / f"{card.name}.onnx"
    copies = [(card.path, onnx_path)]
    if "refiner" in data:
        name = data["refiner"]["model"]
        copies.append(((refiner_dir or card.path.parent) / name, out / name))
    for source, target in copies:
        if source.resolve() != target.resolve():
            shutil.copyfile(source, target)
    write_card(onnx_path.with_suffix(".json"), data)
    return onnx_path
