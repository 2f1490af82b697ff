"""New spatial heads for an exported extractor: the cut finds the right tensors, the joined file
computes what torch does, and the share is the cross-validation's choice."""

import json

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from signver.errors import InputError  # noqa: E402
from signver.extractor import Extractor  # noqa: E402
from signver.models import inference_session  # noqa: E402
from signver.normalize import to_model_input  # noqa: E402
from signver.training.data import TrainingSet, load_training_set  # noqa: E402
from signver.training.export import export_onnx  # noqa: E402
from signver.training.loop import train_extractor  # noqa: E402
from signver.training.networks import FusedEmbedder, SpatialEnsemble, SpatialHead, SpatialTail, join_maps  # noqa: E402
from signver.training.spatial_refit import cut_points, export_tail, folds_of, pooled_and_maps, refit_spatial, trunk, trunk_session  # noqa: E402
from tests.test_training import tiny_fused_with_spatial  # noqa: E402

IMAGES = (np.random.default_rng(0).random((3, 64, 128)) * 255).astype(np.uint8)


def run(path, images=IMAGES):
    (vectors,) = inference_session(path).run(None, {"image": to_model_input(images)})
    return vectors


def trunk_outputs(path):
    return pooled_and_maps(trunk_session(trunk(onnx.load(path))), IMAGES)


def test_trunk_gives_the_pooled_vector_and_the_heads_input(tmp_path):
    fused = tiny_fused_with_spatial(0.3)
    path = export_onnx(fused, tmp_path / "tiny.onnx", (64, 128))
    pooled, maps = trunk_outputs(path)
    with torch.no_grad():
        x = torch.from_numpy(to_model_input(IMAGES))
        expected_maps = join_maps(fused.imagenet_maps(fused.trained.shared(x)), [4, 5])
        fused.spatial_weight = 0.0
        expected_pooled = fused(x)[:, : pooled.shape[1]]
    assert torch.allclose(maps.float(), expected_maps, rtol=2e-3, atol=1e-2)  # stored as float16
    assert np.abs(pooled - expected_pooled.numpy()).max() < 1e-4


def test_a_new_tail_rebuilds_the_extractor(tmp_path):
    fused = tiny_fused_with_spatial(0.3)
    base = export_onnx(fused, tmp_path / "tiny.onnx", (64, 128))
    pooled, maps = trunk_outputs(base)
    same = export_tail(trunk(onnx.load(base)), SpatialTail(fused.spatial, 0.3), pooled.shape[1], tuple(maps.shape[1:]), tmp_path / "same.onnx")
    assert np.abs(run(same) - run(base)).max() < 1e-5  # the old head as a new tail: the same model
    torch.manual_seed(5)
    ensemble = SpatialEnsemble([fused.spatial, SpatialHead([4, 5], 80, width=8, channels=4, pool=2).eval()])
    new = export_tail(trunk(onnx.load(base)), SpatialTail(ensemble, 0.2), pooled.shape[1], tuple(maps.shape[1:]), tmp_path / "new.onnx")
    vectors = run(new)
    with torch.no_grad():
        local = ensemble(maps.float()).numpy()
    assert vectors.shape == (3, pooled.shape[1] + 2 * local.shape[1] // 2)
    assert np.abs(vectors[:, : pooled.shape[1]] - pooled * 0.8**0.5).max() < 1e-5
    assert np.abs(vectors[:, pooled.shape[1] :] - local * 0.2**0.5).max() < 2e-3  # the torch side read float16 maps
    assert cut_points(onnx.load(new))[1] == cut_points(onnx.load(base))[1]  # a refitted file can be refitted again


def test_cut_points_needs_a_spatial_part(tmp_path):
    trained = tiny_fused_with_spatial().trained
    plain = export_onnx(FusedEmbedder(trained, imagenet_blocks=[4, 5], weight=0.9).eval(), tmp_path / "plain.onnx", (64, 128))
    with pytest.raises(ValueError, match="spatial part"):
        cut_points(onnx.load(plain))


def test_an_ensemble_averages_its_heads_squared_distances():
    torch.manual_seed(0)
    heads = [SpatialHead([4, 5], 80, width=8, channels=4, pool=2).eval() for _ in range(3)]
    a, b = torch.rand(2, 80, 4, 8), torch.rand(2, 80, 4, 8)
    with torch.no_grad():
        ensemble = SpatialEnsemble(heads)
        d2 = (ensemble(a) - ensemble(b)).pow(2).sum(1)
        each = torch.stack([(h(a) - h(b)).pow(2).sum(1) for h in heads]).mean(0)
    assert torch.allclose(d2, each, atol=1e-5) and torch.allclose(ensemble(a).norm(dim=1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="same taps"):
        SpatialEnsemble([heads[0], SpatialHead([5], 40)])


def test_folds_deal_each_writer_to_one_fold_within_its_dataset():
    writers = np.repeat([f"a/{i}" for i in range(7)] + [f"b/{i}" for i in range(4)], 3)
    data = TrainingSet(np.zeros((len(writers), 2, 2), np.uint8), writers, np.ones(len(writers), bool), np.array([w[0] for w in writers]))
    fold = folds_of(data, 3)
    for writer in np.unique(writers):
        assert len(set(fold[writers == writer])) == 1
    for dataset, count in (("a", 7), ("b", 4)):
        sizes = np.bincount(fold[(data.dataset == dataset)], minlength=3) // 3
        assert sizes.sum() == count and sizes.max() - sizes.min() <= 1  # each dataset spread evenly over the folds


def tiny_base(dataset, tmp_path):
    """A tiny fused extractor with one spatial head, trained for two steps on `dataset`."""
    return train_extractor({
        "name": "tiny-base", "description": "test", "seed": 0, "device": "cpu",
        "network": {"kind": "lite0", "blocks": 5, "width": 16, "dim": 8, "frozen_blocks": 3},
        "loss": {"name": "multi_similarity"}, "input": {"height": 64, "width": 128}, "data": [{"path": str(dataset), "holdout": [7, 8]}],
        "batch": {"writers": 4, "genuine": 2, "forged": 1}, "steps": 2, "warmup": 1, "lr": 0.001, "eval_every": 2,
        "fuse_imagenet": {"blocks": [4, 5], "pooling": "gem"},
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2},
        "run_dir": str(tmp_path / "base-run"), "out": str(tmp_path / "model"),
    }, "tiny.yaml")


def test_refit_trains_heads_chooses_the_share_by_cross_validation_and_exports(synthetic_dataset, tmp_path):
    data = [{"path": str(synthetic_dataset), "holdout": [7, 8]}]
    base = tiny_base(synthetic_dataset, tmp_path)
    config = {
        "name": "tiny-refit", "description": "two heads", "base": str(base), "folds": 2, "shares": [0.0, 0.3, 0.6],
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2, "seeds": [0, 1]},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    other = {**config, "data": [{"path": str(synthetic_dataset), "holdout": [1, 2]}]}
    with pytest.raises(InputError, match="the heads' data must be the same"):  # 1 and 2 trained the base's branch the model keeps
        refit_spatial(other, "refit.yaml")
    path = refit_spatial({**config, "data": data}, "refit.yaml")
    card = json.loads(path.with_suffix(".json").read_text())
    spatial = card["spatial"]
    cv = {float(v): r["mean"] for v, r in spatial["cross_validated_eer"].items()}
    assert spatial["weight"] == min(cv, key=cv.get) and spatial["heads"] == 2 and card["base"] == "tiny-base"
    assert set(spatial["holdout_eer"]) == set(spatial["cross_validated_eer"])
    seconds = [torch.load(p, weights_only=False)["seconds"] for p in (tmp_path / "run").glob("spatial-seed*.pt")]
    assert min(seconds) > 0 and spatial["head_training_seconds"] == pytest.approx(sum(seconds), abs=0.05)
    assert card["threshold"] > 0 and card["training_command"] == "signver train spatial-heads --config refit.yaml"
    assert card["trained_on"] == data and card["network"]["dim"] == 8
    images = load_training_set(data, (64, 128), "holdout").images
    vectors = Extractor(str(path)).embed_normalized(images)
    assert vectors.shape[1] == 40 + 40 + 8 + 2 * 4 * 4 * 8
    assert np.allclose(np.linalg.norm(vectors[:, -256:], axis=1) ** 2, spatial["weight"], atol=1e-4)
    before = Extractor(str(base)).embed_normalized(images)
    pooled = vectors[:, :88] / max(1 - spatial["weight"], 1e-12) ** 0.5
    if spatial["weight"] < 1:
        assert np.abs(pooled - before[:, :88] / np.linalg.norm(before[:, :88], axis=1, keepdims=True)).max() < 1e-4  # the trunk is untouched
    heads = sorted((tmp_path / "run").glob("spatial-seed*.pt"))
    assert len(heads) == 2 + 2 * 2  # two final heads, and two per fold
    written = [h.stat().st_mtime_ns for h in heads]
    inference_session.cache_clear()
    again = refit_spatial(config, "refit.yaml")  # resumed: every head is loaded, not trained again
    assert [h.stat().st_mtime_ns for h in heads] == written
    assert np.abs(Extractor(str(again)).embed_normalized(images) - vectors).max() < 1e-5


def test_refit_can_choose_the_share_on_the_held_out_writers_instead(synthetic_dataset, tmp_path):
    base = tiny_base(synthetic_dataset, tmp_path)
    config = {
        "name": "tiny-holdout", "description": "one head", "base": str(base), "share_chosen_on": "holdout", "shares": [0.0, 0.3, 0.6],
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2, "seeds": [3]},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    spatial = json.loads(refit_spatial(config, "refit.yaml").with_suffix(".json").read_text())["spatial"]
    held = {float(v): r["mean"] for v, r in spatial["holdout_eer"].items()}
    assert spatial["weight"] == min(held, key=held.get) and spatial["heads"] == 1 and "cross_validated_eer" not in spatial
    assert [p.name for p in (tmp_path / "run").glob("spatial-seed*.pt")] == ["spatial-seed3.pt"]  # no folds' heads
    with pytest.raises(InputError, match="share_chosen_on"):
        refit_spatial({**config, "share_chosen_on": "test"}, "refit.yaml")


def test_global_heads_take_the_trained_branchs_place_and_both_shares_are_cross_validated(synthetic_dataset, tmp_path):
    base = tiny_base(synthetic_dataset, tmp_path)
    config = {
        "name": "tiny-global", "description": "global heads", "base": str(base), "folds": 2, "shares": [0.0, 0.3], "global_shares": [0.0, 0.2, 0.5],
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2, "seeds": [0]},
        "global": {"taps": [4, 5], "width": 8, "dim": 4, "steps": 4, "warmup": 1, "batch": {"writers": 4, "genuine": 2, "forged": 1}, "seeds": [0, 1]},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
        "data": [{"path": str(synthetic_dataset), "holdout": [1, 2]}],  # not the base's: the card says which the heads saw
    }
    misspelt = {**config, "global": {**config["global"], "loss": {"name": "multi_similarity", "alpah": 2}}}
    with pytest.raises(InputError, match="global, loss multi_similarity has no setting alpah"):
        refit_spatial(misspelt, "global.yaml")
    assert not (tmp_path / "run").exists()  # refused before any work
    path = refit_spatial(config, "global.yaml")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["trained_on"] == config["data"]
    cv = {(r["global_weight"], r["weight"]): r["mean"] for r in card["spatial"]["cross_validated_eer"]}
    assert len(cv) == 6 and (card["global"]["weight"], card["spatial"]["weight"]) == min(cv, key=cv.get)
    assert card["global"]["heads"] == 2 and card["network"]["dim"] == 8 and card["fusion"]["weight"] == pytest.approx(1 - card["global"]["weight"])
    assert sorted(p.name for p in (tmp_path / "run").glob("global-seed*.pt")) == sorted(
        f"global-seed{s}{f}.pt" for s in (0, 1) for f in ("", "-fold0of2", "-fold1of2"))
    # the trained branch is gone: the file computes the ImageNet part, the global heads and the spatial head only
    trained_nodes = [n.name for n in onnx.load(base).graph.node if n.name.startswith(("/blocks.3/", "/blocks.4/", "/head/"))]
    assert trained_nodes and not any(n.name in trained_nodes for n in onnx.load(path).graph.node)
    imagenet, maps = pooled_and_maps(trunk_session(trunk(onnx.load(base), imagenet_only=True)), IMAGES)
    assert imagenet.shape[1] == 80 and np.allclose(np.linalg.norm(imagenet, axis=1), 1, atol=1e-5)
    w, v = card["global"]["weight"], card["spatial"]["weight"]
    vectors = run(path)
    assert vectors.shape[1] == 80 + 8 + 4 * 4 * 8 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)
    assert np.abs(vectors[:, :80] - imagenet * ((1 - w) * (1 - v)) ** 0.5).max() < 1e-5
    assert np.allclose(np.linalg.norm(vectors[:, 80:88], axis=1) ** 2, w * (1 - v), atol=1e-4)
    assert cut_points(onnx.load(path))[1] == cut_points(onnx.load(base))[1]  # it can be refitted again


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_global_head_learns_to_tell_writers_apart_from_their_maps(tmp_path, precision):
    from signver.training.global_head import trained_global_head
    from signver.training.networks import GlobalHead

    rng = np.random.default_rng(0)
    writers, genuine = np.repeat(np.arange(6), 8), np.tile([True] * 6 + [False] * 2, 6)
    tell = np.zeros((1, 12, 1, 1))
    tell[0, :3] = 1.0  # what gives a forgery away: small, in three channels of twelve
    x = rng.normal(size=(6, 12, 1, 1))[writers] * 2 + np.where(genuine, 0, 1)[:, None, None, None] * tell + rng.normal(scale=0.5, size=(48, 12, 4, 8))
    maps = torch.from_numpy(x.astype(np.float16))
    data = TrainingSet(np.zeros((48, 2, 2), np.uint8), writers, genuine, np.array(["a"] * 48))

    def same_over_forged(head):
        """Mean distance between a writer's genuine signatures over that to their forgeries."""
        with torch.no_grad():
            v = head.eval()(maps.float()).numpy()
        d = np.linalg.norm(v[:, None] - v[None], axis=2)
        mine = writers[:, None] == writers[None]
        return d[mine & genuine[:, None] & genuine[None] & ~np.eye(48, dtype=bool)].mean() / d[mine & genuine[:, None] & ~genuine[None]].mean()

    spec = {"taps": [5], "width": 16, "dim": 8, "steps": 60, "warmup": 5, "lr": 0.01, "batch": {"writers": 4, "genuine": 3, "forged": 1}, "precision": precision}
    torch.manual_seed(0)
    assert same_over_forged(GlobalHead([5], 12, 16, 8)) > 0.4  # untrained: forgeries sit near their writer
    head = trained_global_head(spec, 0, 12, lambda: maps, data, tmp_path / "global-seed0.pt")
    assert same_over_forged(head) < 0.3 and (tmp_path / "global-log-seed0.json").is_file()
    again = trained_global_head(spec, 0, 12, lambda: pytest.fail("a saved head is loaded, not trained again"), data, tmp_path / "global-seed0.pt")
    assert all(torch.equal(a, b) for a, b in zip(head.state_dict().values(), again.state_dict().values()))


def test_folding_the_heads_input_norms_keeps_their_function():
    from signver.training.networks import GlobalHead, fold_input_norms

    torch.manual_seed(0)
    tail = SpatialTail(SpatialEnsemble([SpatialHead([4, 5], 80, width=8, channels=4, pool=2) for _ in range(2)]), 0.2, GlobalHead([4, 5], 80, width=16, dim=8), 0.1)
    for norm in [m for m in tail.modules() if isinstance(m, torch.nn.BatchNorm2d)]:  # statistics as training leaves them
        norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2), norm.weight.data.uniform_(0.5, 1.5), norm.bias.data.uniform_(-0.5, 0.5)
    tail.eval()
    folded = fold_input_norms(tail)
    pooled, maps = torch.nn.functional.normalize(torch.rand(3, 20), dim=1), torch.rand(3, 80, 4, 8)
    with torch.no_grad():
        assert torch.allclose(folded(pooled, maps), tail(pooled, maps), atol=1e-5)
    norms = lambda m: sum(isinstance(x, torch.nn.BatchNorm2d) for x in m.modules())  # noqa: E731
    assert norms(tail) == 6 and norms(folded) == 3  # each head's input norm is gone, the one after its convolution stays


def test_train_extractor_with_a_base_extractor_trains_heads_on_its_maps(synthetic_dataset, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from signver.cli import app

    base = tiny_base(synthetic_dataset, tmp_path)
    config = {
        "name": "tiny-cli", "description": "heads from the command line", "base": str(base), "share_chosen_on": "holdout", "shares": [0.0, 0.3],
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 4, "batch": 8, "warmup": 2, "seeds": [0]},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    path = tmp_path / "heads.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(app, ["train", "extractor", "--config", str(path)])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "model" / "tiny-cli.json").read_text())
    assert card["base"] == "tiny-base" and card["spatial"]["heads"] == 1 and card["threshold"] > 0


def test_a_saved_head_is_reused_only_for_the_same_spec_and_data(tmp_path):
    """A run given other held-out writers made a new training set but reused the heads fitted on
    the old one (a helper's finding): a head is reused for the same spec and data only."""
    from torch import nn

    from signver.training.spatial import load_or_fit

    fitted = []
    data = TrainingSet(np.arange(24, dtype=np.uint8).reshape(6, 2, 2), np.array([0, 0, 1, 1, 2, 2]), np.ones(6, bool), np.array(["a"] * 6))
    fewer = data.subset(np.arange(6) < 4)
    assert data.fingerprint == TrainingSet(*(a.copy() for a in (data.images, data.writer, data.genuine, data.dataset))).fingerprint
    assert fewer.fingerprint != data.fingerprint
    for spec, train, fits in (({"steps": 3}, data, 1), ({"steps": 3}, data, 1), ({"steps": 3}, fewer, 2), ({"steps": 4}, fewer, 3)):
        load_or_fit(nn.Linear(2, 2), spec, tmp_path / "head.pt", lambda: fitted.append(1) or [], train.fingerprint)
        assert len(fitted) == fits, (spec, fits)
    load_or_fit(nn.Linear(2, 2), {"steps": 4}, tmp_path / "head.pt", lambda: fitted.append(1) or [], fewer.fingerprint + " maps of another base")
    assert len(fitted) == 4  # the same images read through another network are other data
    legacy = torch.load(tmp_path / "head.pt", weights_only=False)
    del legacy["data"]  # saved before the data were recorded: kept, not retrained for hours
    torch.save(legacy, tmp_path / "head.pt")
    load_or_fit(nn.Linear(2, 2), {"steps": 4}, tmp_path / "head.pt", lambda: fitted.append(1) or [], data.fingerprint)
    assert len(fitted) == 4
