"""The ink stretch: one tone for light and dark ink, computed the same in torch and in the
exported graph, and carried into a refitted extractor."""

import json

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from signver.errors import InputError  # noqa: E402
from signver.models import inference_session  # noqa: E402
from signver.normalize import to_model_input  # noqa: E402
from signver.training.data import load_training_set  # noqa: E402
from signver.training.export import export_onnx  # noqa: E402
from signver.training.ink_tone import MOST_GAIN, InkStretch, stretch_spec, with_ink_stretch  # noqa: E402
from signver.training.spatial_refit import refit_spatial, trunk, trunk_session  # noqa: E402
from tests.test_spatial_refit import tiny_base  # noqa: E402
from tests.test_training import tiny_fused_with_spatial  # noqa: E402


def strokes(value: int, seed: int = 0) -> np.ndarray:
    """A normalised image: background 0, random strokes of ink `value`."""
    image = np.zeros((64, 128), np.uint8)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        y, x = rng.integers(5, 55), rng.integers(5, 100)
        image[y : y + 3, x : x + 25] = value
    return image


def ink_tone(images: np.ndarray) -> np.ndarray:
    """Each uint8 image's ink tone as the stretch measures it: sum(x^2) / sum(x), x = ink / 255."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    return (x**2).sum(1) / np.maximum(x.sum(1), 1e-6)


def test_tone_is_the_inks_own_level_and_ignores_the_background():
    images = np.stack([strokes(255), strokes(102)])
    out = InkStretch(0.5)(torch.from_numpy(to_model_input(images)))
    assert torch.allclose(out, torch.from_numpy(to_model_input(images)) * torch.tensor([0.5, 1.25]).view(2, 1, 1, 1))  # tones 1.0 and 0.4


def test_a_config_asks_for_a_tone_in_0_1():
    assert stretch_spec(None) is None and stretch_spec({"tone": 0.5}) == {"tone": 0.5, "most_gain": MOST_GAIN, "measure": "sum(x^2) / sum(x)"}
    for bad in ({"tone": 1.5}, {"tone": 0}, {"level": 0.5}, True, {"tone": "dark"}):
        with pytest.raises(InputError, match="ink_stretch"):
            stretch_spec(bad)


def test_light_and_dark_ink_come_out_at_one_tone_with_their_shading():
    x = torch.from_numpy(to_model_input(np.stack([strokes(240, 1), strokes(60, 1), strokes(5, 1), np.zeros((64, 128), np.uint8)])))
    x[:2] *= torch.linspace(0.7, 1.0, 128)  # ink that varies along the stroke
    out = InkStretch(0.5)(x)
    assert torch.allclose(out[0], out[1], atol=1e-6)  # the same strokes at a quarter of the tone: dark ink is dimmed, light ink brightened
    assert ink_tone(np.round(out[:1, 0].numpy() * 255)) == pytest.approx(0.5, abs=0.005)
    assert out[0].max() < 1 and torch.allclose(out[0] / out[0].max(), x[0] / x[0].max(), atol=1e-6)  # shading kept, nothing clipped
    assert torch.allclose(out[2], x[2] * MOST_GAIN)  # faint marks are brightened at most MOST_GAIN times
    assert out[3].abs().max() == 0  # a blank image stays blank


def test_the_stretch_joins_the_graph_in_front_and_keeps_its_input(tmp_path):
    base = export_onnx(tiny_fused_with_spatial(0.3), tmp_path / "tiny.onnx", (64, 128))
    body = trunk(onnx.load(base))
    joined = with_ink_stretch(body, 0.5)
    assert joined.graph.input[0].name == body.graph.input[0].name and [o.name for o in joined.graph.output] == [o.name for o in body.graph.output]
    x = to_model_input(np.stack([strokes(90, s) for s in range(3)]))
    with torch.no_grad():
        stretched = InkStretch(0.5)(torch.from_numpy(x)).numpy()
    plain, front = trunk_session(body), trunk_session(joined)
    for expected, got in zip(plain.run(None, {"image": stretched}), front.run(None, {"image": x})):
        assert np.abs(expected - got).max() < 1e-4


def test_a_refit_with_ink_stretch_is_blind_to_ink_tone(synthetic_dataset, tmp_path):
    base = tiny_base(synthetic_dataset, tmp_path)
    config = {
        "name": "tiny-ink", "description": "one head on stretched ink", "base": str(base), "ink_stretch": {"tone": 0.5}, "share_chosen_on": "config", "shares": [0.3],
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2, "seeds": [0]},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    path = refit_spatial(config, "ink.yaml")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["spatial"]["weight"] == 0.3 and card["spatial"]["chosen_on"] == "given in the config"
    assert card["ink_stretch"] == {"tone": 0.5, "most_gain": MOST_GAIN, "measure": "sum(x^2) / sum(x)"}
    x = to_model_input(load_training_set([{"path": str(synthetic_dataset), "holdout": [7, 8]}], (64, 128), "holdout").images[:4])
    session = inference_session(path)
    light, dark = (session.run(None, {"image": (x * f).astype(np.float32)})[0] for f in (0.4, 1.0))
    assert np.abs(light - dark).max() < 1e-4
    assert np.abs(light[0] - light[1]).max() > 1e-3  # it still tells images apart
    with pytest.raises(InputError, match="one share"):
        refit_spatial({**config, "shares": [0.3, 0.5]}, "ink.yaml")
