import json
import shutil

import numpy as np
import pytest

import signver
from signver import synth
from signver.calibration import LOG10_LR_BOUND, Calibration, fit_calibration
from signver.datasets import get_split
from signver.evaluation import evaluate
from signver.evaluation.metrics import brier_score, cllr, expected_calibration_error
from signver.errors import DatasetError
from signver.models import MODELS_DIR, load_card
from signver.training.calibrate import fit_model_calibration

from .conftest import SHARED_DATA, shared_dataset

# Gaussian distances with equal spread: the true log LR is linear in the distance,
# log LR = ((d - MU_I)^2 - (d - MU_G)^2) / (2 SIGMA^2) = A + B d.
MU_G, MU_I, SIGMA = 0.2, 0.4, 0.05
A, B = (MU_I**2 - MU_G**2) / (2 * SIGMA**2), (MU_G - MU_I) / SIGMA**2


def gaussian_pairs(n_genuine: int, n_impostor: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(MU_G, SIGMA, n_genuine), rng.normal(MU_I, SIGMA, n_impostor)


def test_fit_names_a_class_with_no_trials():
    from signver.errors import DatasetError

    with pytest.raises(DatasetError, match="got 5 genuine and 0 skilled: do the writers it is fitted on have forgeries"):
        fit_calibration(np.full(5, 0.1), np.zeros(0))


def test_fit_recovers_the_true_log_lr_whatever_the_class_sizes():
    genuine, impostor = gaussian_pairs(3000, 9000)  # 1:3, as P1 skilled pairs are
    calibration = fit_calibration(genuine, impostor)
    assert calibration.b < 0  # closer means more likely genuine
    assert calibration.a == pytest.approx(A, rel=0.1) and calibration.b == pytest.approx(B, rel=0.1)
    assert (calibration.n_genuine, calibration.n_impostor, calibration.impostors) == (3000, 9000, "skilled")
    d = np.linspace(0, 2, 50)
    assert np.all(np.diff(calibration.probability(d)) <= 0)


def test_probability_stays_in_range_without_overflow():
    calibration = Calibration(a=14.0, b=-54.0)
    with np.errstate(all="raise"):
        p = calibration.probability(np.array([0.0, 0.26, 2.0, 100.0]))
    assert np.all((p >= 0) & (p <= 1)) and p[0] > 0.99 and p[-1] < 1e-3


def test_likelihood_ratios_are_bounded():
    calibration = Calibration(a=14.0, b=-54.0)
    lr = calibration.log10_lr(np.array([0.0, 2.0]))
    assert lr.tolist() == pytest.approx([LOG10_LR_BOUND, -LOG10_LR_BOUND])
    assert calibration.probability(0.0) == pytest.approx(1 / (1 + 10**-LOG10_LR_BOUND))


def test_log10_lr_changes_sign_where_probability_is_one_half():
    calibration = Calibration(a=14.0, b=-54.0)
    middle = -calibration.a / calibration.b
    assert calibration.probability(middle) == pytest.approx(0.5)
    assert calibration.log10_lr(middle - 0.01) > 0 > calibration.log10_lr(middle + 0.01)
    d = 0.1
    assert calibration.log10_lr(d) == pytest.approx(np.log10(calibration.probability(d) / (1 - calibration.probability(d))))


def test_round_trip_through_a_card():
    calibration = Calibration(a=1.5, b=-20.0, fitted_on=[{"dataset": "cedar", "writers": [1, 10]}], n_genuine=5, n_impostor=7)
    stored = json.loads(json.dumps({**calibration.to_dict(), "date": "2026-11-25", "rule": "..."}))
    assert Calibration.from_dict(stored) == calibration


def test_ece_and_brier_tell_calibrated_from_miscalibrated():
    genuine, impostor = gaussian_pairs(20000, 20000, seed=1)
    truth = Calibration(a=A, b=B)
    assert expected_calibration_error(truth.probability(genuine), truth.probability(impostor)) < 0.01
    for wrong in (Calibration(a=A + 4, b=B), Calibration(a=A / 4, b=B / 4)):  # biased to genuine; underconfident
        assert expected_calibration_error(wrong.probability(genuine), wrong.probability(impostor)) > 0.08
        assert brier_score(wrong.probability(genuine), wrong.probability(impostor)) > 2 * brier_score(
            truth.probability(genuine), truth.probability(impostor))
    assert brier_score(np.full(5, 0.5), np.full(50, 0.5)) == pytest.approx(0.25)
    assert cllr(np.zeros(5), np.zeros(50)) == pytest.approx(1.0)  # LR = 1 always: no information


def test_ece_weighs_the_classes_equally():
    # always saying 0.5 is calibrated at equal priors however many trials of each class there are
    assert expected_calibration_error(np.full(10, 0.5), np.full(1000, 0.5)) == pytest.approx(0)


def test_verify_reports_the_cards_confidence():
    result = signver.verify(synth.genuine(1, 0), synth.genuine(1, 1))
    calibration = load_card(result.model).calibration
    assert calibration is not None and 0 <= result.confidence <= 1
    assert result.confidence == pytest.approx(float(calibration.probability(result.distance)))
    assert (result.log10_lr > 0) == (result.confidence > 0.5)
    assert {"confidence", "log10_lr"} <= set(result.to_dict())


@pytest.fixture
def uncalibrated_model(tmp_path):
    """A copy of the baseline model whose card has no calibration."""
    onnx = shutil.copy(MODELS_DIR / "effnet-lite0-imagenet.onnx", tmp_path / "plain.onnx")
    card = json.loads((MODELS_DIR / "effnet-lite0-imagenet.json").read_text())
    card.pop("calibration", None)
    card.pop("claims", None)
    (tmp_path / "plain.json").write_text(json.dumps({**card, "name": "plain"}))
    return str(onnx)


def test_verify_without_calibration_gives_none(uncalibrated_model):
    result = signver.verify(synth.genuine(1, 0), synth.genuine(1, 1), model=uncalibrated_model)
    assert result.confidence is None and result.log10_lr is None


def test_evaluate_reports_calibration(synthetic_dataset, tmp_path, uncalibrated_model):
    metrics = evaluate(synthetic_dataset, tmp_path / "calibrated", "p2", references=3, test_writers="1,2,3,4")
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 1 and metrics["cllr"] >= 0
    assert (tmp_path / "calibrated" / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    plain = evaluate(synthetic_dataset, tmp_path / "plain", "p2", references=3, test_writers="1,2,3,4", model=uncalibrated_model)
    assert "ece" not in plain and not (tmp_path / "plain" / "reliability.png").exists()
    again = evaluate(synthetic_dataset, tmp_path / "calibrated", "p2", references=3, test_writers="1,2,3,4", model=uncalibrated_model)
    assert "ece" not in again and not (tmp_path / "calibrated" / "reliability.png").exists()  # the first model's plot is gone


def test_fit_model_calibration_writes_the_card(synthetic_dataset, uncalibrated_model):
    card_path = load_card(uncalibrated_model).path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["trained_on"] = [{"path": f"somewhere/{synthetic_dataset.name}", "holdout": [1, 2, 3]}]
    card_path.write_text(json.dumps(card))
    written = fit_model_calibration(uncalibrated_model, data_root=synthetic_dataset.parent)
    entry = written["calibration"]
    assert (entry["n_genuine"], entry["n_impostor"]) == (3 * 15, 3 * 24)  # 6 genuine, 4 forged per writer
    assert entry["fitted_on"] == [{"dataset": synthetic_dataset.name, "split": None, "writers": [1, 2, 3]}]
    card = load_card(uncalibrated_model)
    assert card.calibration == Calibration.from_dict(entry)
    # claim rules for every fusion and K = 1 .. 5 (6 genuine each leaves at least one to question)
    assert set(written["claims"]) == {"mean", "min", "median", "scaled"}
    assert list(written["claims"]["min"]["by_references"]) == ["1", "2", "3", "4", "5"]
    k3 = written["claims"]["min"]["by_references"]["3"]
    assert k3["calibration"]["n_genuine"] == 3 * 3 and k3["calibration"]["n_impostor"] == 3 * 4
    rule = card.claim_rule("min", 3)
    assert rule.threshold == pytest.approx(k3["threshold"]) and rule.calibration.b < 0
    assert card.claim_rule("min", 40) == card.claim_rule("min", 5) and card.claim_rule("max", 3) is None


def test_fit_model_calibration_refuses_a_dataset_without_all_held_out_writers(synthetic_dataset, uncalibrated_model):
    card_path = load_card(uncalibrated_model).path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["trained_on"] = [{"path": synthetic_dataset.name, "holdout": [1, 2, 30, 40]}]
    card_path.write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="lacks held-out writer.s. 30, 40"):
        fit_model_calibration(uncalibrated_model, data_root=synthetic_dataset.parent)
    assert json.loads(card_path.read_text()) == card  # the card is left as it was


@pytest.mark.data
def test_shipped_calibration_is_reproduced_from_held_out_training_writers(tmp_path):
    for name in ("cedar", "bhsig260-bengali", "bhsig260-hindi"):
        shared_dataset(name)
    model = shutil.copy(MODELS_DIR / "lite0-ms-long.onnx", tmp_path / "lite0-ms-long.onnx")
    shutil.copy(MODELS_DIR / "lite0-ms-long.json", tmp_path / "lite0-ms-long.json")
    shipped = load_card("lite0-ms-long").calibration
    refitted = fit_model_calibration(str(model), data_root=SHARED_DATA)["calibration"]
    assert (refitted["a"], refitted["b"]) == pytest.approx((shipped.a, shipped.b), abs=1e-3)
    assert refitted["n_genuine"] == shipped.n_genuine and refitted["n_impostor"] == shipped.n_impostor
    for source in refitted["fitted_on"]:  # training writers only, never a test writer
        assert not {str(w) for w in source["writers"]} & set(get_split(source["split"]).test)


def test_card_writes_are_whole_or_nothing(tmp_path, monkeypatch):
    import os

    from signver.models import write_card

    card = tmp_path / "m.json"
    write_card(card, {"name": "m", "threshold": 0.25})

    def disk_full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)  # the new text is written but never made durable
    with pytest.raises(OSError):
        write_card(card, {"name": "m", "threshold": 0.3})
    monkeypatch.undo()
    assert json.loads(card.read_text()) == {"name": "m", "threshold": 0.25}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no partial file left behind
