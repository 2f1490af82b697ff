"""Fine-tuning from a shipped ONNX file: batch norms folded, weights taken layer by layer."""

import numpy as np
import onnxruntime as ort
import pytest

import signver

torch = pytest.importorskip("torch")

from signver.training.cleaner import InkProbability, build_cleaner_network  # noqa: E402
from signver.training.onnx_init import fold_batch_norms, load_onnx_weights  # noqa: E402

NETWORK = {"kind": "lite0", "width": 8, "frozen_blocks": 3, "pretrained": False}


def exported(network, path):
    torch.onnx.export(InkProbability(network.eval()), (torch.zeros(1, 1, 32, 64),), str(path), input_names=["image"],
                      output_names=["ink"], dynamic_axes={"image": {2: "h", 3: "w"}}, opset_version=17, dynamo=False)
    return ort.InferenceSession(str(path))


def randomised_batch_norms(network):
    """Batch-norm statistics and affine away from their defaults, so that folding has work to do."""
    generator = torch.Generator().manual_seed(0)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return network


def test_folding_batch_norms_keeps_what_the_network_computes():
    network = randomised_batch_norms(build_cleaner_network(NETWORK)).eval()
    x = torch.rand(2, 1, 32, 64)
    with torch.no_grad():
        before = network(x)
        after = fold_batch_norms(network)(x)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in network.modules())
    assert torch.allclose(before, after, atol=1e-4)
    assert all(not p.requires_grad for p in network.frozen.parameters())  # the frozen layers' new biases stay frozen


def test_a_network_takes_an_onnx_files_weights_and_computes_what_it_does(tmp_path):
    source = randomised_batch_norms(build_cleaner_network(NETWORK))
    session = exported(source, tmp_path / "base.onnx")
    x = np.random.default_rng(0).random((1, 1, 48, 96)).astype(np.float32)
    (expected,) = session.run(None, {"image": x})
    fresh = build_cleaner_network(NETWORK)  # other random weights
    load_onnx_weights(fresh, tmp_path / "base.onnx", torch.rand(1, 1, 32, 32), exported=torch.sigmoid)
    with torch.no_grad():
        got = InkProbability(fresh.eval())(torch.from_numpy(x)).numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_a_new_head_keeps_its_weights_and_the_rest_comes_from_the_file(tmp_path):
    session = exported(randomised_batch_norms(build_cleaner_network(NETWORK)), tmp_path / "base.onnx")
    toned = build_cleaner_network({**NETWORK, "tone": True})
    head = toned.tone.weight.clone()
    load_onnx_weights(toned, tmp_path / "base.onnx", torch.rand(1, 1, 32, 32), new=[toned.tone], exported=torch.sigmoid)
    assert torch.equal(head, toned.tone.weight)
    x = np.random.default_rng(1).random((1, 1, 48, 64)).astype(np.float32)
    (expected,) = session.run(None, {"image": x})
    with torch.no_grad():
        got = torch.sigmoid(toned.eval()(torch.from_numpy(x))).numpy()
    assert got.shape == (1, 2, 48, 64) and np.allclose(got[:, :1], expected, atol=1e-5)  # the ink channel is the file's


def test_a_file_that_has_the_new_head_too_gives_it_its_weights(tmp_path):
    source = build_cleaner_network({**NETWORK, "tone": True})
    exported(source, tmp_path / "toned.onnx")
    toned = build_cleaner_network({**NETWORK, "tone": True})
    load_onnx_weights(toned, tmp_path / "toned.onnx", torch.rand(1, 1, 32, 32), new=[toned.tone], exported=torch.sigmoid)
    assert torch.equal(toned.tone.weight, source.tone.weight)


def test_a_file_that_kept_its_batch_norms_is_refused(tmp_path):
    network = randomised_batch_norms(build_cleaner_network(NETWORK))
    torch.onnx.export(InkProbability(network.train()), (torch.rand(2, 1, 32, 64),), str(tmp_path / "unfolded.onnx"),
                      input_names=["image"], output_names=["ink"], opset_version=17, dynamo=False,
                      training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
    with pytest.raises(signver.SignverError, match="computes something else"):
        load_onnx_weights(build_cleaner_network(NETWORK), tmp_path / "unfolded.onnx", torch.rand(2, 1, 32, 64), exported=torch.sigmoid)


def test_a_different_network_or_a_missing_file_is_refused(tmp_path):
    exported(build_cleaner_network(NETWORK), tmp_path / "base.onnx")
    with pytest.raises(signver.SignverError, match="different network"):
        load_onnx_weights(build_cleaner_network({**NETWORK, "width": 16}), tmp_path / "base.onnx", torch.zeros(1, 1, 32, 32))
    with pytest.raises(signver.SignverError, match="different network"):  # the file has no tone head to give, and none is new
        load_onnx_weights(build_cleaner_network({**NETWORK, "tone": True}), tmp_path / "base.onnx", torch.zeros(1, 1, 32, 32))
    with pytest.raises(signver.SignverError, match="not a file"):
        load_onnx_weights(build_cleaner_network(NETWORK), tmp_path / "missing.onnx", torch.zeros(1, 1, 32, 32))


def test_a_crop_wide_tone_term_is_taken_from_a_file_that_has_it_and_starts_at_zero_otherwise(tmp_path):
    context = {**NETWORK, "tone": True, "tone_context": True}
    source = randomised_batch_norms(build_cleaner_network(context))
    with torch.no_grad():
        source.tone_context.weight.normal_()
        source.tone_context.bias.normal_()
    exported(source, tmp_path / "context.onnx")
    fresh = build_cleaner_network(context)
    load_onnx_weights(fresh, tmp_path / "context.onnx", torch.rand(1, 1, 32, 32), new=[fresh.tone, fresh.tone_context], exported=torch.sigmoid)
    assert torch.equal(fresh.tone_context.weight, source.tone_context.weight) and torch.equal(fresh.tone_context.bias, source.tone_context.bias)
    exported(randomised_batch_norms(build_cleaner_network({**NETWORK, "tone": True})), tmp_path / "tone.onnx")
    widened = build_cleaner_network(context)
    load_onnx_weights(widened, tmp_path / "tone.onnx", torch.rand(1, 1, 32, 32), new=[widened.tone, widened.tone_context], exported=torch.sigmoid)
    assert not widened.tone_context.weight.any() and not widened.tone_context.bias.any()
    with pytest.raises(signver.SignverError, match=r"0 linear \(Gemm\) layers; this one runs 1, 0 of them new"):
        load_onnx_weights(build_cleaner_network(context), tmp_path / "tone.onnx", torch.rand(1, 1, 32, 32), exported=torch.sigmoid)


def test_a_gemm_with_its_weight_untransposed_gives_torchs_layout(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    from signver.training.onnx_init import onnx_layer_weights

    weight, bias = np.arange(12, dtype=np.float32).reshape(3, 4), np.ones((1, 4), np.float32)  # (in, out), as transB=0 has it
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="plain")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")])
    ((got, got_bias),) = onnx_layer_weights(tmp_path / "g.onnx", "Gemm", graph)
    assert np.array_equal(got, weight.T) and got_bias.shape == (4,)
    scaled = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="scaled", alpha=2.0)], "g", graph.input, graph.output,
                               graph.initializer)
    with pytest.raises(signver.SignverError, match="not a plain linear layer"):
        onnx_layer_weights(tmp_path / "g.onnx", "Gemm", scaled)


def test_a_unet_refuses_network_keys_it_does_not_read():
    with pytest.raises(signver.SignverError, match=r"network keys \['tone_context'\] do not apply to kind unet"):
        build_cleaner_network({"channels": [4, 8, 8, 16], "tone": True, "tone_context": True})
