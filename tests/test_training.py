"""Training parts on synthetic data: losses, augmentation, batches, and a tiny end-to-end run."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signver.evaluation.metrics import eer  # noqa: E402
from signver.extractor import Extractor  # noqa: E402
from signver.models import inference_session  # noqa: E402
from signver.normalize import to_model_input  # noqa: E402
from signver.training.augment import augment  # noqa: E402
from signver.training.data import TrainingSet, load_training_set, writer_batches, writers_for  # noqa: E402
from signver.training.losses import LOSSES  # noqa: E402
from signver.errors import InputError  # noqa: E402
from signver.training.loop import holdout_distances, train_extractor  # noqa: E402
from signver.training.run_state import holding_run_dir, optimizer_and_schedule, resume, save_checkpoint, shaping, training_device, training_log  # noqa: E402
from signver.training.cache import cached_arrays  # noqa: E402
from signver.training.export import export_onnx  # noqa: E402
from signver.training.networks import FusedEmbedder, SpatialHead, build_network, join_maps  # noqa: E402
from signver.training.spatial import PairSampler, imagenet_maps  # noqa: E402


def clustered(n_classes=6, per_class=4, spread=0.05, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(n_classes, 16, generator=generator), dim=1)
    labels = torch.arange(n_classes).repeat_interleave(per_class)
    points = centres[labels] + spread * torch.randn(len(labels), 16, generator=generator)
    return torch.nn.functional.normalize(points, dim=1), labels


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_prefer_clustered_embeddings(name):
    embeddings, labels = clustered()
    shuffled = labels[torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))]
    assert LOSSES[name](embeddings, labels) < LOSSES[name](embeddings, shuffled)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_give_gradients(name):
    embeddings, labels = clustered(spread=0.5)
    embeddings = embeddings.clone().requires_grad_(True)
    LOSSES[name](embeddings, labels).backward()
    assert torch.isfinite(embeddings.grad).all() and embeddings.grad.abs().sum() > 0


def test_triplet_mining_modes():
    embeddings, labels = clustered(spread=0.6)
    hard = LOSSES["triplet"](embeddings, labels, mining="hard")
    semi = LOSSES["triplet"](embeddings, labels, mining="semihard")
    assert hard >= semi >= 0


def test_forgeries_are_nobodys_positive():
    data = TrainingSet(np.zeros((4, 2, 2), np.uint8), np.array([0, 0, 0, 1]), np.array([True, True, False, True]), np.array(['a'] * 4))
    labels = data.labels(np.arange(4))
    assert labels[0] == labels[1] and len(set(labels)) == 3


def test_augment_keeps_shape_range_and_ink():
    x = torch.from_numpy(to_model_input([np.pad(np.full((40, 120), 200, np.uint8), ((44, 44), (68, 68)))] * 8))
    out = augment(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert (out.sum(dim=(1, 2, 3)) > 0.3 * x.sum(dim=(1, 2, 3))).all()
    assert not torch.equal(out[0], out[1])  # every sample gets its own transform


def test_training_device_is_cpu_unless_a_gpu_is_asked_for_and_there(monkeypatch):
    assert training_device({}) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert training_device({"device": "auto"}) == torch.device("cpu")
    with pytest.raises(InputError, match="no CUDA GPU"):
        training_device({"device": "cuda"})
    with pytest.raises(InputError, match="unknown training device 'tpu'"):
        training_device({"device": "tpu"})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert training_device({"device": "auto"}) == torch.device("cuda")


def _linear_run(width, lr=0.1, warmup=1):
    network = torch.nn.Linear(4, width)
    return (network, *optimizer_and_schedule(network, {"lr": lr}, 10, warmup))


def test_a_damaged_or_foreign_checkpoint_is_a_named_error(tmp_path):
    checkpoint = tmp_path / "last.pt"
    save_checkpoint(checkpoint, *_linear_run(3), step=5)
    assert not list(tmp_path.glob("*.partial")) and resume(checkpoint, *_linear_run(3), 10)["step"] == 5
    for damage in (checkpoint.read_bytes()[:100], b"not a checkpoint"):
        checkpoint.write_bytes(damage)
        with pytest.raises(InputError, match="cannot resume from .*last.pt: it is damaged or was saved by another config"):
            resume(checkpoint, *_linear_run(3), 10)
    save_checkpoint(checkpoint, *_linear_run(3), step=5)
    with pytest.raises(InputError, match="another config .*size mismatch"):  # another network's weights
        resume(checkpoint, *_linear_run(5), 10)


def test_a_run_resumes_only_as_its_config_began_it(tmp_path):
    """A new learning rate was replaced by the checkpoint's in silence while the card named the
    new one; fewer steps than were taken made a card that said 3 steps of a run of 8."""
    checkpoint = tmp_path / "last.pt"
    save_checkpoint(checkpoint, *_linear_run(3, warmup=4), step=8)
    assert resume(checkpoint, *_linear_run(3, warmup=2), 20)["step"] == 8  # more steps, another warm-up: fine
    with pytest.raises(InputError, match="begun with lr 0.1 .*now asks lr 0.5"):
        resume(checkpoint, *_linear_run(3, lr=0.5), 10)
    with pytest.raises(InputError, match="already taken 8 steps, more than the config's 3"):
        resume(checkpoint, *_linear_run(3), 3)
    # other held-out writers or loss mixed into a run that says it had them all along (a helper's finding)
    began = {"name": "x", "steps": 8, "data": [{"path": "d", "holdout": [11, 12]}], "loss": {"name": "multi_similarity"}}
    save_checkpoint(checkpoint, *_linear_run(3), step=8, made_by=shaping(began))
    longer = {**began, "steps": 20, "description": "more steps", "threads": 1}  # how long and how it runs may change
    assert resume(checkpoint, *_linear_run(3), 20, config=longer)["step"] == 8
    for changed in ({"data": [{"path": "d", "holdout": [1, 2]}]}, {"loss": {"name": "multi_similarity", "alpha": 9.0}}):
        with pytest.raises(InputError, match=f"begun with other settings \\({next(iter(changed))}: .* -> .*set them back"):
            resume(checkpoint, *_linear_run(3), 20, config={**began, **changed})


def test_a_resumed_runs_log_drops_what_its_checkpoint_does_not_hold(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 100, "loss": 1}\n{"step": 200, "loss": 0.9}\n{"step": 300, "loss": 0.8}\n{"step": 40')
    with training_log(log, 200) as file:
        file.write('{"step": 300, "loss": 0.7}\n')
    assert [json.loads(line)["loss"] for line in log.read_text().splitlines()] == [1, 0.9, 0.7]


def test_a_cache_is_made_again_for_other_settings_or_when_cut(tmp_path):
    cache, built = tmp_path / "c.npz", []

    def build(value):
        built.append(value)
        return {"x": np.full(3, value)}

    assert cached_arrays(cache, {"size": 1}, lambda: build(1))["x"].tolist() == [1, 1, 1]
    assert cached_arrays(cache, {"size": 1}, lambda: build(9))["x"].tolist() == [1, 1, 1] and built == [1]  # read back
    assert cached_arrays(cache, {"size": 2}, lambda: build(2))["x"].tolist() == [2, 2, 2]  # other settings: made again
    cache.write_bytes(b"PK\x03\x04 cut short")
    assert cached_arrays(cache, {"size": 2}, lambda: build(3))["x"].tolist() == [3, 3, 3] and built == [1, 2, 3]
    assert not list(tmp_path.glob("*.partial*"))


def test_a_runs_cached_images_follow_its_config(synthetic_dataset, tmp_path):
    """Other held-out writers or another input size on a run folder once trained on the old cache."""
    cache = tmp_path / "holdout.npz"
    two = load_training_set([{"path": str(synthetic_dataset), "holdout": [7, 8]}], (32, 64), "holdout", cache)
    four = load_training_set([{"path": str(synthetic_dataset), "holdout": [5, 6, 7, 8]}], (32, 64), "holdout", cache)
    finer = load_training_set([{"path": str(synthetic_dataset), "holdout": [5, 6, 7, 8]}], (40, 80), "holdout", cache)
    assert len(set(two.writer)) == 2 and len(set(four.writer)) == 4 and finer.images.shape[1:] == (40, 80)


def test_augment_makes_its_randomness_on_the_input_device():
    x = torch.rand(4, 1, 16, 32, device="meta")  # shapes and devices only: a CPU-made tensor would fail here
    assert augment(x).device == x.device


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_augment_and_losses_run_on_a_gpu():
    x = torch.rand(4, 1, 16, 32, device="cuda")
    assert augment(x).device == x.device
    embeddings, labels = clustered()
    for loss in LOSSES.values():
        assert torch.isfinite(loss(embeddings.cuda(), labels.cuda()))


def test_writer_batches_compose_writers():
    writer = np.repeat(np.arange(5), 6)
    genuine = np.tile([True] * 4 + [False] * 2, 5)
    data = TrainingSet(np.zeros((30, 2, 2), np.uint8), writer, genuine, np.array(['a'] * 30))
    batch = next(writer_batches(data, writers=3, genuine=2, forged=1, rng=np.random.default_rng(0)))
    assert len(batch) == 9 and len(set(writer[batch])) == 3
    assert genuine[batch].sum() == 6
    with pytest.raises(InputError, match="batch writers 6 is more than the 5 training writers"):
        writer_batches(data, writers=6, genuine=2, forged=1, rng=np.random.default_rng(0))


def test_holdout_writers_are_kept_out():
    from pathlib import Path

    from signver.datasets import Dataset, Signature
    from signver.errors import DatasetError

    source = {"split": "bhsig260-bengali", "holdout": [49, 50]}
    files = Dataset("bengali", Path("."), [Signature(Path(f"B-S-{w}-G-01.tif"), str(w), True) for w in range(1, 101)])
    train, holdout = writers_for(source, files, "train"), writers_for(source, files, "holdout")
    assert holdout == ["49", "50"] and len(train) == 48 and not set(train) & set(holdout)
    assert "51" not in train  # test writers never
    hindi = Dataset("bengali", Path("."), [Signature(Path(f"H-S-{w}-G-01.tif"), str(w), True) for w in range(1, 101)])
    with pytest.raises(DatasetError, match="holds bhsig260-hindi's files"):  # Hindi's writer 51 is not Bengali's
        writers_for(source, hindi, "train")


def test_an_extractor_run_refuses_what_would_fail_later(synthetic_dataset, tmp_path):
    from signver.errors import DatasetError

    config = {
        "name": "tiny", "description": "test", "network": {"kind": "resnet", "widths": [8, 16], "dim": 16},
        "loss": {"name": "multi_similarity"}, "input": {"height": 32, "width": 64},
        "data": [{"path": str(synthetic_dataset), "holdout": [7, 8]}], "batch": {"writers": 4, "genuine": 3, "forged": 1},
        "steps": 4, "lr": 0.001, "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    for change, message in (({"loss": {"name": "bogus"}}, "loss must name one of .*not {'name': 'bogus'}"),
                            ({"loss": "multi_similarity"}, "loss must name one of"),
                            ({"loss": {"name": "multi_similarity", "alpah": 5}}, "has no setting alpah; it takes alpha, base, beta"),
                            ({"network": {"kind": "resnt"}}, "unknown network kind 'resnt'"),
                            ({"network": {"kind": "resnet", "widht": 3}}, r"network keys \['widht'\] do not apply to kind resnet"),
                            ({"batch": 16}, "batch must say how many writers"),
                            ({"data": [{"path": str(synthetic_dataset), "holdout": [98, 99]}]}, "no holdout signatures in")):
        with pytest.raises((InputError, DatasetError), match=message):
            train_extractor({**config, **change, "run_dir": str(tmp_path / "run-bad")}, "tiny.yaml")
    assert not (tmp_path / "model").exists()


def test_tiny_training_run_end_to_end(synthetic_dataset, tmp_path):
    config = {
        "name": "tiny", "description": "test", "seed": 0,
        "network": {"kind": "resnet", "widths": [8, 16], "dim": 16},
        "loss": {"name": "multi_similarity"},
        "input": {"height": 32, "width": 64},
        "data": [{"path": str(synthetic_dataset), "holdout": [7, 8]}],
        "batch": {"writers": 4, "genuine": 3, "forged": 1},
        "steps": 4, "warmup": 1, "lr": 0.001, "eval_every": 2,
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    path = train_extractor(config, "tiny.yaml")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]
    assert set(log[-1]["holdout_eer_skilled"]) == {"all", "mean", synthetic_dataset.name.lower()}
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["threshold"] > 0 and card["training_command"] == "signver train extractor --config tiny.yaml"
    assert (tmp_path / "run" / "best.pt").is_file() and card["training"]["chosen_step"] in (2, 4)
    # the exported file computes what the trained network computes
    network = build_network(config["network"])
    network.load_state_dict(torch.load(tmp_path / "run" / "best.pt", weights_only=False)["network"])  # what is exported
    holdout = load_training_set(config["data"], (32, 64), "holdout", tmp_path / "run" / "holdout.npz")
    with torch.no_grad():
        expected = network.eval()(torch.from_numpy(to_model_input(holdout.images))).numpy()
    assert np.abs(Extractor(str(path)).embed_normalized(holdout.images) - expected).max() < 1e-4
    assert card["training"]["machine"]  # where it trained
    # resuming a finished run trains no further and exports the same model; the card still
    # names the machine that trained it (a GPU run finished elsewhere keeps its GPU's name)
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    torch.save({**last, "machine": "a GPU elsewhere"}, tmp_path / "run" / "last.pt")
    again = json.loads(train_extractor(config, "tiny.yaml").with_suffix(".json").read_text())
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    assert again["training"]["machine"] == "a GPU elsewhere"
    genuine, skilled = holdout_distances(expected, holdout)
    assert len(genuine) == 2 * 15 and len(skilled) == 2 * 6 * 4 and 0 <= eer(genuine, skilled)[0] <= 1
    # served at a finer input than it trained on: the same network, exported for that size, and
    # its threshold chosen on held-out images normalised to it
    served = train_extractor({**config, "serve_input": {"height": 48, "width": 96}}, "tiny.yaml")
    card = json.loads(served.with_suffix(".json").read_text())
    assert (card["input"]["height"], card["input"]["width"]) == (48, 96) and card["trained_input"] == {"height": 32, "width": 64}
    finer = load_training_set(config["data"], (48, 96), "holdout", tmp_path / "run" / "holdout-48x96.npz")
    with torch.no_grad():
        expected = network.eval()(torch.from_numpy(to_model_input(finer.images))).numpy()
    assert np.abs(Extractor(str(served)).embed_normalized(finer.images) - expected).max() < 1e-4
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2


def test_fused_embedding_is_one_unit_vector_with_mean_or_gem_imagenet_part():
    trained = build_network({"kind": "lite0", "blocks": 5, "width": 32, "dim": 16, "frozen_blocks": 3}).eval()
    x = torch.rand(3, 1, 64, 128)
    parts = {}
    for pooling in ("mean", "gem"):
        fused = FusedEmbedder(trained, imagenet_blocks=5, weight=0.9, pooling=pooling).eval()
        with torch.no_grad():
            out = fused(x)
        assert out.shape == (3, 40 + 16) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-4)
        assert torch.allclose(out[:, :40].norm(dim=1) ** 2, torch.full((3,), 0.9), atol=1e-4)  # the ImageNet share
        parts[pooling] = out[:, :40]
    assert not torch.allclose(parts["mean"], parts["gem"], atol=1e-3)
    with pytest.raises(ValueError, match="pooling"):
        FusedEmbedder(trained, imagenet_blocks=5, weight=0.9, pooling="max")


def test_fused_embedding_can_pool_imagenet_features_at_several_depths():
    trained = build_network({"kind": "lite0", "blocks": 5, "width": 32, "dim": 16, "frozen_blocks": 3}).eval()
    x = torch.rand(3, 1, 64, 128)
    single = FusedEmbedder(trained, imagenet_blocks=5, weight=0.9, pooling="gem").eval()
    levels = FusedEmbedder(trained, imagenet_blocks=[5, 4], weight=0.9, pooling="gem").eval()
    assert levels.taps == [4, 5]
    with torch.no_grad():
        one, both = single(x), levels(x)
    assert both.shape == (3, 40 + 40 + 16) and torch.allclose(both.norm(dim=1), torch.ones(3), atol=1e-4)
    # each depth is a unit vector of its own, so each has half the ImageNet share; the deeper one is the single-tap part
    assert torch.allclose(both[:, 40:80] * 2**0.5, one[:, :40], atol=1e-4)
    assert torch.allclose(both[:, :40].norm(dim=1) ** 2, torch.full((3,), 0.45), atol=1e-4)
    with pytest.raises(ValueError, match="frozen"):
        FusedEmbedder(trained, imagenet_blocks=[3, 5], weight=0.9)


def tiny_fused_with_spatial(weight=0.3):
    trained = build_network({"kind": "lite0", "blocks": 5, "width": 32, "dim": 16, "frozen_blocks": 3}).eval()
    fused = FusedEmbedder(trained, imagenet_blocks=[4, 5], weight=0.9, pooling="gem").eval()
    fused.add_spatial(SpatialHead([4, 5], 40 + 40, width=8, channels=4, pool=2).eval(), weight)
    return fused


def test_spatial_head_joins_the_fused_vector_with_its_share():
    fused = tiny_fused_with_spatial(0.3)
    x = torch.rand(3, 1, 64, 128)
    with torch.no_grad():
        out = fused(x)
        pooled = FusedEmbedder(fused.trained, imagenet_blocks=[4, 5], weight=0.9, pooling="gem").eval()(x)
    cells = (64 // 8 // 2) * (128 // 8 // 2)
    assert out.shape == (3, 96 + 4 * cells) and torch.allclose(out.norm(dim=1), torch.ones(3), atol=1e-4)
    assert torch.allclose(out[:, :96], pooled * 0.7**0.5, atol=1e-5)  # the pooled part is unchanged, scaled
    assert torch.allclose(out[:, 96:].norm(dim=1) ** 2, torch.full((3,), 0.3), atol=1e-4)
    with pytest.raises(ValueError, match="deeper"):
        fused.add_spatial(SpatialHead([6], 80), 0.3)


def test_spatial_export_matches_torch(tmp_path):
    fused = tiny_fused_with_spatial()
    path = export_onnx(fused, tmp_path / "s.onnx", (64, 128))
    images = (np.random.default_rng(0).random((3, 64, 128)) * 255).astype(np.uint8)
    session = inference_session(path)
    (ours,) = session.run(None, {"image": to_model_input(images)})
    with torch.no_grad():
        expected = fused(torch.from_numpy(to_model_input(images))).numpy()
    assert np.abs(ours - expected).max() < 1e-4


def test_join_maps_pools_finer_taps_onto_the_deepest_grid():
    fine, coarse = torch.rand(2, 3, 8, 16), torch.rand(2, 5, 4, 8)
    joined = join_maps({5: fine, 6: coarse, 7: torch.rand(2, 1, 2, 4)}, [6, 5])
    assert joined.shape == (2, 8, 4, 8)
    assert torch.allclose(joined[:, :3], fine.reshape(2, 3, 4, 2, 8, 2).mean(dim=(3, 5)))  # each cell: the mean of its 2x2
    assert torch.equal(joined[:, 3:], coarse)


def test_spatial_head_on_taps_of_two_resolutions_exports(tmp_path):
    trained = build_network({"kind": "lite0", "blocks": 5, "width": 32, "dim": 16, "frozen_blocks": 3}).eval()
    fused = FusedEmbedder(trained, imagenet_blocks=[5, 6], weight=0.9, pooling="gem").eval()
    fused.add_spatial(SpatialHead([5, 6], 40 + 80, width=8, channels=4, pool=2).eval(), 0.2)
    images = (np.random.default_rng(1).random((2, 64, 128)) * 255).astype(np.uint8)
    assert imagenet_maps(fused, images, [5, 6]).shape == (2, 120, 4, 8)  # block 5 (stride 8) pooled to block 6's grid
    with torch.no_grad():
        expected = fused(torch.from_numpy(to_model_input(images))).numpy()
    assert expected.shape == (2, 40 + 80 + 16 + 4 * 2 * 4)
    (ours,) = inference_session(export_onnx(fused, tmp_path / "s.onnx", (64, 128))).run(None, {"image": to_model_input(images)})
    assert np.abs(ours - expected).max() < 1e-4


def test_pair_sampler_shares_are_settable():
    data = TrainingSet(np.zeros((12, 2, 2), np.uint8), np.repeat(np.arange(3), 4), np.array([True, True, True, False] * 3), np.array(["a"] * 12))
    for same, forged in [(0.5, 0.35), (0.2, 0.7)]:
        first, second, label = PairSampler(data, same, forged).sample(4000, np.random.default_rng(0))
        assert abs(label.mean() - same) < 0.03 and abs((~data.genuine[second]).mean() - forged) < 0.03
    with pytest.raises(ValueError, match="pair shares"):
        PairSampler(data, 0.6, 0.5)


def test_pair_sampler_labels_pairs_by_writer_and_kind():
    data = TrainingSet(np.zeros((9, 2, 2), np.uint8), np.array([0, 0, 0, 1, 1, 1, 2, 2, 2]),
                       np.array([True, True, False] * 3), np.array(["a"] * 6 + ["b"] * 3))
    first, second, same = PairSampler(data).sample(400, np.random.default_rng(0))
    assert data.genuine[first].all()
    genuine_pairs = same == 1
    assert (data.writer[first][genuine_pairs] == data.writer[second][genuine_pairs]).all() and (first != second)[genuine_pairs].all()
    assert data.genuine[second][genuine_pairs].all()
    other = ~genuine_pairs
    forgeries = other & ~data.genuine[second]
    assert (data.writer[first][forgeries] == data.writer[second][forgeries]).all() and forgeries.any()
    strangers = other & data.genuine[second]
    assert (data.writer[first][strangers] != data.writer[second][strangers]).all() and strangers.any()
    not_alone = strangers & (data.writer[first] != 2)
    assert (data.dataset[first][not_alone] == data.dataset[second][not_alone]).all()  # two writers of one dataset
    assert (data.dataset[second][strangers & ~not_alone] == "a").all()  # writer 2 is alone in dataset b
    assert 0.35 < genuine_pairs.mean() < 0.65


def test_tiny_run_with_a_spatial_head(synthetic_dataset, tmp_path):
    config = {
        "name": "tiny-spatial", "description": "test", "seed": 0, "device": "auto",  # the CPU here; a GPU where torch sees one
        "network": {"kind": "lite0", "blocks": 5, "width": 16, "dim": 8, "frozen_blocks": 3},
        "loss": {"name": "multi_similarity"}, "input": {"height": 32, "width": 64}, "serve_input": {"height": 64, "width": 128},
        "data": [{"path": str(synthetic_dataset), "holdout": [7, 8]}],
        "batch": {"writers": 4, "genuine": 2, "forged": 1}, "steps": 2, "warmup": 1, "lr": 0.001, "eval_every": 2,
        "fuse_imagenet": {"blocks": [4, 5], "pooling": "gem"},
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    path = train_extractor(config, "tiny.yaml")
    card = json.loads(path.with_suffix(".json").read_text())
    spatial = card["spatial"]
    assert 0 <= spatial["weight"] <= 0.9 and spatial["holdout_eer_mean_with"] <= spatial["holdout_eer_mean_without"]
    assert spatial["taps"] == [4, 5] and (tmp_path / "run" / "spatial.pt").is_file()
    images = load_training_set(config["data"], (64, 128), "holdout").images
    vectors = Extractor(str(path)).embed_normalized(images)
    assert vectors.shape[1] == 40 + 40 + 8 + 4 * 4 * 8
    assert np.allclose(np.linalg.norm(vectors[:, -128:], axis=1) ** 2, spatial["weight"], atol=1e-4)
    # run again: the finished head is loaded, not trained again, and the same model comes out
    written = (tmp_path / "run" / "spatial.pt").stat().st_mtime_ns
    inference_session.cache_clear()
    again = train_extractor(config, "tiny.yaml")
    assert (tmp_path / "run" / "spatial.pt").stat().st_mtime_ns == written
    assert np.abs(Extractor(str(again)).embed_normalized(images) - vectors).max() < 1e-5


def test_tiny_run_chooses_among_spatial_head_seeds(synthetic_dataset, tmp_path):
    config = {
        "name": "tiny-seeds", "description": "test", "seed": 0, "device": "cpu",
        "network": {"kind": "lite0", "blocks": 5, "width": 16, "dim": 8, "frozen_blocks": 3},
        "loss": {"name": "multi_similarity"}, "input": {"height": 32, "width": 64},
        "data": [{"path": str(synthetic_dataset), "holdout": [7, 8]}],
        "batch": {"writers": 4, "genuine": 2, "forged": 1}, "steps": 2, "warmup": 1, "lr": 0.001, "eval_every": 2,
        "fuse_imagenet": {"blocks": [4, 5], "pooling": "gem"},
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2, "seeds": [0, 1]},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    spatial = json.loads(train_extractor(config, "tiny.yaml").with_suffix(".json").read_text())["spatial"]
    by_seed = spatial["holdout_eer_mean_with_by_seed"]
    assert set(by_seed) == {"0", "1"} and spatial["holdout_eer_mean_with"] == min(by_seed.values()) == by_seed[str(spatial["seed"])]
    saved = [tmp_path / "run" / f"spatial-seed{seed}.pt" for seed in (0, 1)]
    heads = [torch.load(path, weights_only=False) for path in saved]
    assert [h["spec"]["seed"] for h in heads] == [0, 1] and "seeds" not in heads[0]["spec"]
    assert not torch.equal(heads[0]["head"]["project.1.weight"], heads[1]["head"]["project.1.weight"])  # seeded apart
    written = [path.stat().st_mtime_ns for path in saved]
    train_extractor(config, "tiny.yaml")  # again: both heads are loaded, not trained again
    assert [path.stat().st_mtime_ns for path in saved] == written


def test_a_run_folder_is_held_by_one_process_at_a_time(tmp_path):
    """Two runs in one folder at once wrote over each other's checkpoint and log."""
    import subprocess
    import sys

    def other_process_holds() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", "from pathlib import Path; from signver.training.run_state import holding_run_dir\n"
                               f"with holding_run_dir(Path({str(tmp_path / 'run')!r})): pass"], capture_output=True, text=True, timeout=120)

    with holding_run_dir(tmp_path / "run"):
        with holding_run_dir(tmp_path / "run"):  # again in this process: fine
            pass
        refused = other_process_holds()
        assert refused.returncode != 0 and "is in use by another training run" in refused.stderr
        with holding_run_dir(tmp_path / "free"):  # another folder: fine
            pass
    assert other_process_holds().returncode == 0  # once the run is over, the folder is free (in a notebook too)


def test_an_extractor_run_holds_its_folder_until_exported(synthetic_dataset, tmp_path, monkeypatch):
    """The spatial heads and finer caches are written after the network trains: held then too."""
    from signver.training import loop, run_state

    held_at_export = []
    export = loop.export_extractor
    monkeypatch.setattr(loop, "export_extractor", lambda *args: held_at_export.append(set(run_state._HELD)) or export(*args))
    config = {"name": "tiny", "description": "test", "network": {"kind": "resnet", "widths": [8, 16], "dim": 16},
              "loss": {"name": "multi_similarity"}, "input": {"height": 32, "width": 64},
              "data": [{"path": str(synthetic_dataset), "holdout": [7, 8]}], "batch": {"writers": 4, "genuine": 3, "forged": 1},
              "steps": 2, "warmup": 1, "lr": 0.001, "eval_every": 2, "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model")}
    train_extractor(config, "tiny.yaml")
    assert held_at_export == [{(tmp_path / "run").resolve()}] and not run_state._HELD
