"""The cleaner's tone gain for solid black ink, fitted to training writers (mask.tone_gain_fit)."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from signver import overlays, synth
from signver.cleaner import DEFAULT_CLEANER, Cleaner, tone_gain
from signver.cli import app
from signver.errors import InputError, ModelError
from signver.models import load_card
from signver.training.tone_gain_fit import fit_gain, gain_pairs


def bitonal(image: np.ndarray) -> np.ndarray:
    return np.where(image > cv2.threshold(image, 0, 255, cv2.THRESH_OTSU)[0], 255, 0).astype(np.uint8)


def card_copy(tmp_path, mask_changes: dict, name: str = DEFAULT_CLEANER) -> str:
    """A copy of a shipped cleaner (ONNX and card) with its card's mask changed, in a folder of
    its own under tmp_path; its card's path."""
    card = load_card(name)
    tmp_path = tmp_path / f"copy{len(list(tmp_path.iterdir()))}"
    tmp_path.mkdir()
    shutil.copy(card.path, tmp_path / f"{name}.onnx")
    data = json.loads(card.path.with_suffix(".json").read_text())
    data["mask"] = {**data["mask"], **mask_changes}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_the_fit_recovers_scale_and_power_and_every_source_weighs_alike():
    rng = np.random.default_rng(0)
    light, dark = rng.uniform(0.5, 0.7, 12), rng.uniform(0.9, 1.0, 400)
    sources = [np.column_stack([head, 1.1 * head**1.5 * np.exp(rng.normal(0, 0.01, len(head)))]) for head in (light, dark)]
    scale, power = fit_gain(sources)
    assert scale == pytest.approx(1.1, rel=0.03) and power == pytest.approx(1.5, rel=0.05)
    bent = [sources[0], sources[1] * [1, 1.05]]  # the many dark crops need a little more: the fit moves, not by their number
    assert fit_gain(bent) == pytest.approx(fit_gain([sources[0], np.repeat(bent[1], 10, axis=0)]))
    assert fit_gain(bent + [np.zeros((0, 2))]) == fit_gain(bent)  # a source with no saturated crop adds nothing
    with pytest.raises(InputError, match="no saturated crops"):
        fit_gain([np.zeros((0, 2))])
    with pytest.raises(InputError, match="same gain"):
        fit_gain([np.array([[0.6, 0.5], [0.6, 0.4]])])


def test_a_cards_fit_scales_the_heads_gain_on_saturated_ink_only(tmp_path):
    every_crop = {"untouched_below": 0}  # a clean bitonal signature would pass as it came
    plain = Cleaner(card_copy(tmp_path, {**every_crop, "tone_gain_fit": {}}))  # the head's gain as it is
    fitted = Cleaner(card_copy(tmp_path, {**every_crop, "tone_gain_fit": {"scale": 0.5, "power": 2.0}}))
    assert (fitted.gain_scale, fitted.gain_power) == (0.5, 2.0) and (plain.gain_scale, plain.gain_power) == (1.0, 1.0)
    black = overlays.whiten(synth.genuine(5, 1))
    grey = (255 - 0.5 * (255 - black.astype(np.float32))).astype(np.uint8)
    assert plain.saturated_gain(grey) is None and np.array_equal(fitted.clean(grey), plain.clean(grey))  # grey ink: the shift
    gated = Cleaner(card_copy(tmp_path, {}))  # the default gate passes a clean bitonal signature as it came: no gain
    assert np.array_equal(gated.clean(bitonal(black)), bitonal(black)) and gated.saturated_gain(bitonal(black)) is None
    head, darkness, keep = fitted.saturated_gain(bitonal(black))
    assert (head, darkness.shape) == (plain.saturated_gain(bitonal(black))[0], black.shape)  # the head's own gain, before the fit
    expected = (255 - keep * 255 * np.clip(darkness * np.clip(0.5 * head**2, 0.25, 4.0), 0, 1) + 0.5).astype(np.uint8)
    assert np.array_equal(fitted.clean(bitonal(black)), expected) and not np.array_equal(expected, plain.clean(bitonal(black)))
    assert tone_gain(np.full((4, 4), 0.5, np.float32), np.full((4, 4), 0.5, np.float32), np.ones((4, 4)), 0.8, 3.0) == pytest.approx(0.8)
    for bad in ({"scale": 0}, {"power": -1}, [1.0, 1.2], {"scal": 1.0}, {"scale": "1.0"}, {"power": True}):
        with pytest.raises(ModelError, match="tone_gain_fit"):
            Cleaner(card_copy(tmp_path, {"tone_gain_fit": bad}))


def test_pairs_are_the_heads_gain_and_the_gain_the_clean_signature_needed():
    cleaner = Cleaner(DEFAULT_CLEANER)
    signatures = [synth.genuine(w, i) for w in range(3) for i in range(2)]
    pairs = gain_pairs(cleaner, signatures, np.random.default_rng(1), copies=8)
    assert pairs.shape[1] == 2 and 0 < len(pairs) < 48  # only the saturated copies (about 15 % come out bitonal)
    assert np.all((pairs[:, 0] >= 0.25) & (pairs[:, 0] <= 4.0))
    # a bitonal copy's ink is solid black, so it needs about the clean signatures' own ink darkness
    clean = [1 - overlays.whiten(s).astype(np.float32) / 255 for s in signatures]
    ink_darkness = np.mean([d[d >= 0.2].mean() for d in clean])
    assert np.median(pairs[:, 1]) == pytest.approx(ink_darkness, abs=0.06)
    again = gain_pairs(cleaner, signatures, np.random.default_rng(1), copies=8)
    assert np.array_equal(pairs, again)


def test_the_cli_writes_the_fit_into_the_cleaners_card(tmp_path, synthetic_dataset):
    card_path = Path(card_copy(tmp_path, {}))
    data = json.loads(card_path.read_text())
    data["trained_on"]["signatures"] = [{"path": str(synthetic_dataset), "holdout": ["8"]}]
    card_path.write_text(json.dumps(data))
    config = tmp_path / "gain.yaml"
    config.write_text(yaml.safe_dump({"cleaner": str(card_path), "copies": 3, "seed": 2}))
    result = CliRunner().invoke(app, ["train", "cleaner-gain", "--config", str(config)])
    assert result.exit_code == 0, result.output
    card = json.loads(card_path.read_text())
    fit = card["mask"]["tone_gain_fit"]
    assert fit["scale"] > 0 and fit["power"] > 0
    for before, after in ((data, card), (data["mask"], card["mask"])):  # only the fit and its record change
        assert {k: v for k, v in after.items() if k not in ("mask", "tone_gain_fit")} == \
            {k: v for k, v in before.items() if k not in ("mask", "tone_gain_fit")}
    (source,) = card["tone_gain_fit"]["sources"]
    assert source["saturated_crops"] >= 8 and source["path"] == str(synthetic_dataset)
    assert card["tone_gain_fit"]["copies"] == 3 and card["tone_gain_fit"]["config"] == str(config)
    cleaner = Cleaner(card_path)
    assert (cleaner.gain_scale, cleaner.gain_power) == (fit["scale"], fit["power"])
    again = CliRunner().invoke(app, ["train", "cleaner-gain", "--config", str(config)])  # fitted to the head, not to the last fit
    assert again.exit_code == 0 and json.loads(card_path.read_text())["mask"]["tone_gain_fit"] == fit


def test_a_cleaner_the_fit_does_not_apply_to_is_refused(tmp_path):
    from signver.training.tone_gain_fit import fit_tone_gain

    with pytest.raises(InputError, match="no tone output"):
        fit_tone_gain({"cleaner": "cleaner-unet-wide"}, "gain.yaml")
    with pytest.raises(InputError, match="tone_gain 'all'"):
        fit_tone_gain({"cleaner": card_copy(tmp_path, {"tone_gain": "all"})}, "gain.yaml")
    card_path = Path(card_copy(tmp_path, {}))
    data = json.loads(card_path.read_text())
    data["trained_on"]["signatures"] = []
    card_path.write_text(json.dumps(data))
    with pytest.raises(InputError, match="names no training data"):
        fit_tone_gain({"cleaner": str(card_path)}, "gain.yaml")

