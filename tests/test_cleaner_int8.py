"""The int8 copy of a cleaner: made from an exported cleaner, checked against it, and refused
when quantisation would cost ink."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import signver
from signver import overlays, synth
from signver.cleaner import DEFAULT_CLEANER, Cleaner
from signver.cli import app

from .test_cleaner import tiny_config

pytest.importorskip("torch")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def float_cleaner(tmp_path_factory) -> Path:
    """A tiny cleaner on the ImageNet encoder's layout (random weights), trained two steps."""
    from signver.training.cleaner import train_cleaner

    tmp_path = tmp_path_factory.mktemp("float")
    network = {"kind": "lite0", "width": 8, "frozen_blocks": 5, "pretrained": False}
    return train_cleaner(tiny_config(tmp_path, network=network), "tiny.yaml")


def int8_config(tmp_path: Path, float_model: Path, **changes) -> dict:
    return {"name": "tiny-int8", "description": "test", "base": str(float_model), "data": [], "patch": {"height": 32, "width": 64},
            "calibration_crops": 4, "validation_pairs": 4, "max_f_loss": 1.0, "float_layers": ["/network/stem/"],
            "out": str(tmp_path / "models"), **changes}


def test_the_int8_copy_computes_what_the_float_cleaner_does(tmp_path, float_cleaner):
    from signver.training.cleaner_int8 import quantize_cleaner

    path = quantize_cleaner(int8_config(tmp_path, float_cleaner), "int8.yaml")
    original, copy = Cleaner(str(float_cleaner)), Cleaner(str(path))
    card = copy.card.details
    assert card["quantization"]["base"] == "tiny-cleaner" and card["quantization"]["calibration_crops"] == 4
    assert card["quantization"]["float_nodes"] > 0  # the stem stayed in float
    assert set(card["validation"]) >= {"f", "recall", "float"} and card["mask"] == original.card.details["mask"]
    assert card["training_command"].endswith("then signver train cleaner --config int8.yaml")
    assert path.stat().st_size < float_cleaner.stat().st_size
    x = np.random.default_rng(3).random((1, 1, 48, 80)).astype(np.float32)
    (expected,) = original.session.run(None, {original.input_name: x})
    (got,) = copy.session.run(None, {copy.input_name: x})
    assert got.shape == expected.shape and np.abs(got - expected).mean() < 0.05
    crop = synth.genuine(5, 0)[:61, :97]
    assert copy.clean(crop).shape == crop.shape


def test_the_config_may_change_how_the_copy_draws_the_kept_ink(tmp_path, float_cleaner):
    from signver.training.cleaner_int8 import quantize_cleaner

    path = quantize_cleaner(int8_config(tmp_path, float_cleaner, mask={"paper": True}), "int8.yaml")
    base_mask = Cleaner(str(float_cleaner)).card.details["mask"]
    assert Cleaner(str(path)).card.details["mask"] == {**base_mask, "paper": True} and Cleaner(str(path)).paper
    with pytest.raises(signver.SignverError, match="mask: the keys"):
        quantize_cleaner(int8_config(tmp_path, float_cleaner, mask={"papr": True}, name="misspelt"), "int8.yaml")


def test_crops_and_pairs_are_made_as_the_base_cleaner_was_trained():
    """A config names only what is new: data sources, generator settings, fonts and patch come
    from the base's card."""
    from signver.models import load_card
    from signver.training.cleaner_int8 import base_settings

    base = load_card("cleaner-lite0-latin")
    trained = base.details["trained_on"]
    settings = base_settings(base)
    assert [s["path"] for s in settings["data"]] == [s["path"] for s in trained["signatures"]]
    assert settings["data"][0]["holdout"] == [1, 10, 20, 30, 40]
    assert (settings["clean_fraction"], settings["hand_stroke_fraction"], settings["flourish_fraction"]) == (0.3, 0.5, 0.4)
    assert settings["patch"] == {"height": 128, "width": 320} and settings["min_fonts"] == 96 and "elements" not in settings
    assert "fade_probability" not in settings  # cards before it: every crop's ink faded, the generator's default
    assert base_settings(load_card("cleaner-lite0-unfaded"))["fade_probability"] == 0.5


def settings_used(monkeypatch) -> list[dict]:
    """The generator settings the int8 step hands to its calibration crops and validation pairs."""
    from signver.training import cleaner_int8

    seen = []
    for name in ("calibration_inputs", "validation_pairs"):
        original = getattr(cleaner_int8, name)
        monkeypatch.setattr(cleaner_int8, name, lambda *a, _original=original: seen.append(a[-2]) or _original(*a))
    return seen


def test_a_config_without_generator_settings_takes_the_base_cleaners(tmp_path, float_cleaner, monkeypatch):
    from signver.training.cleaner_int8 import quantize_cleaner

    trained = Cleaner(str(float_cleaner)).card.details["trained_on"]
    seen = settings_used(monkeypatch)
    config = {k: v for k, v in int8_config(tmp_path, float_cleaner).items() if k not in ("data", "patch")}
    card = Cleaner(str(quantize_cleaner(config, "int8.yaml"))).card.details
    assert len(seen) == 2 and all(s["clean_fraction"] == trained["clean_fraction"] and s["patch"] == {"height": 32, "width": 64}
                                  and s["max_pixels"] == 4096 and s["data"] == [] for s in seen)
    assert card["max_pixels"] == 4096 and card["quantization"]["base_max_pixels"] == 4096
    assert card["quantization"]["calibration_data"].startswith("procedural")

    seen.clear()  # what a config gives wins over the card
    quantize_cleaner({**config, "clean_fraction": 0.9, "patch": {"height": 48, "width": 48}}, "int8.yaml")
    assert all(s["clean_fraction"] == 0.9 and s["patch"] == {"height": 48, "width": 48} for s in seen)


def test_the_copy_serves_at_the_working_area_its_config_gives(tmp_path, float_cleaner, monkeypatch):
    from signver.training.cleaner_int8 import quantize_cleaner

    seen = settings_used(monkeypatch)
    path = quantize_cleaner(int8_config(tmp_path, float_cleaner, max_pixels=8192), "int8.yaml")
    assert Cleaner(str(path)).max_pixels == 8192 and Cleaner(str(float_cleaner)).max_pixels == 4096
    assert [s["max_pixels"] for s in seen] == [8192, 8192]  # calibrated and validated at the area it serves at


def test_calibration_draws_the_same_images_as_from_a_loaded_list():
    """Reading only the drawn images must not change which are drawn: the shipped int8 files are
    re-made byte for byte from the same selection as when every image was loaded first."""
    from signver.training.cleaner_int8 import calibration_inputs

    images = [synth.genuine(i, 0) for i in range(6)]
    for n in (4, 10):  # without and with drawing twice
        loaded_first = np.random.default_rng([0, 7]).choice(len(images), n, replace=len(images) < n)  # the earlier code's draw
        read = []
        crops = calibration_inputs(lambda i: read.append(i) or images[i], len(images), {"max_pixels": 4096, "seed": 0}, n)
        assert len(crops) == n and read == list(loaded_first)


def test_the_cli_makes_the_copy_for_a_config_naming_a_base(tmp_path, float_cleaner):
    import yaml

    config = tmp_path / "int8.yaml"
    config.write_text(yaml.safe_dump(int8_config(tmp_path, float_cleaner)))
    result = CliRunner().invoke(app, ["train", "cleaner", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "models" / "tiny-int8.onnx").is_file() and (tmp_path / "models" / "tiny-int8.json").is_file()


def test_a_copy_that_loses_ink_is_refused_and_not_left_behind(tmp_path, float_cleaner):
    from signver.training.cleaner_int8 import quantize_cleaner

    with pytest.raises(signver.SignverError, match="loses ink F"):  # asks the copy to beat the float model by a whole point of F
        quantize_cleaner(int8_config(tmp_path, float_cleaner, max_f_loss=-1.0), "int8.yaml")
    assert not (tmp_path / "models" / "tiny-int8.onnx").exists()


@pytest.mark.parametrize("changes, message", [({"float_layers": ["/network/nothing/"]}, "float_layers"),
                                              ({"base": "lite0-heads"}, "not a cleaner"),
                                              ({"base": "cleaner-lite0-deep-int8"}, "already an int8 copy"),
                                              ({"name": "tiny-cleaner"}, "the copy itself"),
                                              ({"max_pixels": 100}, "max_pixels"), ({"max_pixels": "large"}, "max_pixels"),
                                              ({"data": [{"path": "/nonexistent/signatures", "split": "cedar"}]}, "nonexistent")])
def test_bad_configs_are_refused(tmp_path, float_cleaner, changes, message):
    from signver.training.cleaner_int8 import quantize_cleaner

    with pytest.raises(signver.SignverError, match=message):
        quantize_cleaner(int8_config(tmp_path, float_cleaner, **changes), "int8.yaml")


def test_the_default_int8_cleaner_keeps_what_its_float_base_keeps():
    """Cluttered synthetic crops: the ink the shipped copy keeps is the ink its base keeps when
    both work at the copy's working area with its ramp, and it is drawn much as the base draws it."""
    copy = Cleaner(DEFAULT_CLEANER)
    original = Cleaner(copy.card.details["quantization"]["base"])
    original.max_pixels = copy.max_pixels
    original.low, original.high = copy.low, copy.high  # the copy's config may change the ramp (`mask`)
    kept_overlap, drawn_overlap = [], []
    for writer in range(40, 48):
        crop = overlays.clutter(synth.genuine(writer, 0), writer, degrade_image=False).image
        kept, kept_by_base = (cleaner.keep_map(cleaner.ink_probability(crop)) > 0.5 for cleaner in (copy, original))
        kept_overlap.append((kept & kept_by_base).sum() / (kept | kept_by_base).sum())
        drawn, drawn_by_base = copy.clean(crop) < 128, original.clean(crop) < 128  # the tone outputs' corrections too
        drawn_overlap.append((drawn & drawn_by_base).sum() / (drawn | drawn_by_base).sum())
    assert min(kept_overlap) > 0.96  # measured with `high` 0.7: 0.969-0.991 (cleaner-lite0-crossing-int8), 0.978-0.989 (the stamps copy)
    assert min(drawn_overlap) > 0.95  # measured: 0.960-0.993 (cleaner-lite0-crossing-int8), 0.976-0.991 (the stamps copy)
