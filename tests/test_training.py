"""Training parts on synthetic data: losses, augmentation, batches, and a tiny end-to-end run."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signver.evaluation.metrics import eer  # noqa: E402
from signver.extractor import Extractor  # noqa: E402
from signver.normalize import to_model_input  # noqa: E402
from signver.training.augment import augment  # noqa: E402
from signver.training.data import TrainingSet, load_training_set, writer_batches, writers_for  # noqa: E402
from signver.training.losses import LOSSES  # noqa: E402
from signver.training.loop import holdout_distances, train_extractor  # noqa: E402
from signver.training.networks import FusedEmbedder, build_network  # noqa: E402


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


def test_writer_batches_compose_writers():
    writer = np.repeat(np.arange(5), 6)
    genuine = np.tile([True] * 4 + [False] * 2, 5)
    data = TrainingSet(np.zeros((30, 2, 2), np.uint8), writer, genuine, np.array(['a'] * 30))
    batch = next(writer_batches(data, writers=3, genuine=2, forged=1, rng=np.random.default_rng(0)))
    assert len(batch) == 9 and len(set(writer[batch])) == 3
    assert genuine[batch].sum() == 6


def test_holdout_writers_are_kept_out():
    source = {"split": "bhsig260-bengali", "holdout": [49, 50]}
    available = [str(w) for w in range(1, 101)]
    train, holdout = writers_for(source, available, "train"), writers_for(source, available, "holdout")
    assert holdout == ["49", "50"] and len(train) == 48 and not set(train) & set(holdout)
    assert "51" not in train  # test writers never


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
    # resuming a finished run trains no further and exports the same model
    train_extractor(config, "tiny.yaml")
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
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
