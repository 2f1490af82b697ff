"""The ONNX file inference runs must compute what the torch network computes."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signver import synth  # noqa: E402
from signver.extractor import Extractor  # noqa: E402
from signver.normalize import normalize, to_model_input  # noqa: E402
from signver.training.export import export_onnx  # noqa: E402
from signver.training.pretrained import PretrainedFeatures, load_efficientnet_lite0  # noqa: E402


def test_onnx_matches_torch(tmp_path):
    network = PretrainedFeatures(load_efficientnet_lite0(), blocks=3).eval()
    size = (64, 128)
    path = export_onnx(network, tmp_path / "tiny.onnx", size)
    card = {"name": "tiny", "kind": "extractor", "input": {"height": size[0], "width": size[1]}, "threshold": 0.5}
    path.with_suffix(".json").write_text(json.dumps(card))
    images = [normalize(synth.genuine(w, 0), size) for w in range(5)]  # batch size differs from export's
    with torch.no_grad():
        expected = network(torch.from_numpy(to_model_input(images))).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    actual = Extractor(str(path)).embed_normalized(images)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() < 1e-4


def test_gem_is_the_power_mean_and_exports_without_a_pow_on_the_maps(tmp_path):
    import onnx

    from signver.training.networks import GeM

    x = torch.rand(2, 3, 4, 5) + 0.01
    pool = GeM(3.2).eval()
    with torch.no_grad():
        assert torch.allclose(pool(x), x.pow(3.2).mean(dim=(2, 3)).pow(1 / 3.2), rtol=1e-5)
    path = tmp_path / "gem.onnx"
    torch.onnx.export(pool, (x,), str(path), input_names=["maps"], opset_version=17, dynamo=False)
    nodes = onnx.load(path).graph.node
    pows = [n for n in nodes if n.op_type == "Pow"]
    assert {"Log", "Exp"} <= {n.op_type for n in nodes} and all(n.input[0] != "maps" and "Clip" not in n.input[0] for n in pows)
