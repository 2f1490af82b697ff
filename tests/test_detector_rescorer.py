"""The detector's box re-scorer: features, the numpy forward pass against the fitted sklearn
model, its use inside `Detector.find`, and fitting it on a small synthetic split."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from signver import synth_pages
from signver.cli import app
from signver.detector import Detector
from signver.detector_rescorer import FEATURES, Rescorer, box_features
from signver.models import load_card
from signver.training.detector_rescorer import fit_mlp


def test_box_features_of_one_box():
    features = box_features(np.array([[100, 50, 300, 100]], np.float32), np.array([0.5], np.float32), (1000, 800))
    assert features.shape == (1, len(FEATURES))
    assert features[0] == pytest.approx([0.0, np.log(4.0), 0.25, 0.075, np.log(0.25), np.log(0.05)], abs=1e-6)
    assert box_features(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), (10, 10)).shape == (0, len(FEATURES))


def test_numpy_forward_matches_the_fitted_model():
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, len(FEATURES))) * [1, 2, 0.3, 0.3, 1, 1] + 3
    y = x[:, 0] + x[:, 1] > 6
    spec = fit_mlp(x, y, hidden=8, alpha=0.01, seed=0)
    reference = make_pipeline(StandardScaler(), MLPClassifier((8,), alpha=0.01, max_iter=2000, random_state=0)).fit(x, y)
    ours = Rescorer({**spec, "candidate_floor": 0.05})(x)
    assert np.abs(ours - reference.predict_proba(x)[:, 1]).max() < 1e-4
    assert ((ours > 0.5) == y).mean() > 0.9  # it learned the rule, not noise


def test_rescorer_refuses_other_features():
    with pytest.raises(ValueError, match="features"):
        Rescorer({"features": ["score"], "mean": [0], "scale": [1], "layers": [], "candidate_floor": 0.05})


def constant_rescorer(probability: float) -> dict:
    """A rescorer whose hidden layer is dead, so it outputs `probability` for every box."""
    n = len(FEATURES)
    return {"features": list(FEATURES), "mean": [0.0] * n, "scale": [1.0] * n, "candidate_floor": 0.05,
            "layers": [{"weight": [[0.0] * 2] * n, "bias": [0.0, 0.0]}, {"weight": [[0.0], [0.0]], "bias": [float(np.log(probability / (1 - probability)))]}]}


def test_find_applies_the_cards_rescorer(tmp_path):
    card = load_card("signature-detector")
    shutil.copyfile(card.path, tmp_path / "d.onnx")
    details = {k: v for k, v in card.details.items() if k != "refiner"}  # boxes as the network found them
    (tmp_path / "d.json").write_text(json.dumps({**details, "rescorer": constant_rescorer(0.7)}))
    detector = Detector(str(tmp_path / "d.onnx"))
    page = synth_pages.page(2, signatures=2).image
    candidates, _ = detector.candidates(page, 0.05)
    assert len(candidates) >= 2
    boxes, scores = detector.find(page, 0.5)
    assert np.allclose(scores, 0.7) and np.array_equal(np.sort(boxes, axis=0), np.sort(candidates, axis=0))
    assert len(detector.find(page, 0.8)[0]) == 0  # the threshold applies to the new scores


def test_fit_rescorer_on_synthetic_pages(tmp_path):
    train = synth_pages.write_yolo_split(tmp_path / "train", 8, (640, 640), seed=3)
    valid = synth_pages.write_yolo_split(tmp_path / "valid", 4, (640, 640), seed=4)
    for label in sorted((train / "labels").iterdir())[:2]:  # so that some candidates are not signatures, however good the detector
        label.write_text("")
    config = {"detector": "signature-detector", "data": {"train": str(train), "valid": str(valid)},
              "candidate_floor": 0.02, "hidden": 4, "out": str(tmp_path / "model")}
    (tmp_path / "r.yaml").write_text(json.dumps(config))  # JSON is YAML
    result = CliRunner().invoke(app, ["train", "detector-rescorer", "--config", str(tmp_path / "r.yaml")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "model" / "signature-detector.onnx"
    card = json.loads(path.with_suffix(".json").read_text())
    shipped = load_card("signature-detector").details
    assert path.read_bytes() == load_card("signature-detector").path.read_bytes()  # the network is copied unchanged
    refiner = shipped["refiner"]["model"]  # the box refiner's network travels with it
    assert (tmp_path / "model" / refiner).read_bytes() == (load_card("signature-detector").path.parent / refiner).read_bytes()
    assert Detector(str(path)).refiner is not None
    assert card["rescorer"]["training_command"] == f"signver train detector-rescorer --config {tmp_path / 'r.yaml'}"
    assert card["rescorer"]["candidate_floor"] == 0.02 and card["rescorer"]["n_candidates"] >= card["rescorer"]["n_signatures"] > 0
    assert card["valid"]["n_images"] == 4 and 0 < card["threshold"] <= 1
    assert card["valid_network_scores"] == shipped.get("valid_network_scores", shipped["valid"])
    boxes, scores = Detector(str(path)).find(synth_pages.page(5, signatures=2).image, 0.0)
    assert len(boxes) == len(scores) and np.all((scores >= 0) & (scores <= 1))


def test_fit_rescorer_needs_false_and_true_candidates(tmp_path):
    split = synth_pages.write_yolo_split(tmp_path / "split", 2, (320, 320), seed=0)
    for label in (split / "labels").iterdir():  # unlabelled pages: no candidate counts as a signature
        label.write_text("")
    config = {"detector": "signature-detector", "data": {"train": str(split), "valid": str(split)}, "out": str(tmp_path / "model")}
    (tmp_path / "r.yaml").write_text(json.dumps(config))
    result = CliRunner().invoke(app, ["train", "detector-rescorer", "--config", str(tmp_path / "r.yaml")])
    assert result.exit_code != 0 and "needs both kinds" in result.output
    assert not (tmp_path / "model").exists()  # nothing is written
