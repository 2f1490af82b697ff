"""benchmarks/imagenet_backbones.py: features after every block, blocks joined with equal
weight, and one row per network, its best block and the networks joined."""

import numpy as np
import pytest

from signver import synth
from signver.normalize import normalize
from signver.training.data import TrainingSet
from tests.benchmark_scripts import load

benchmark = load("imagenet_backbones")


@pytest.fixture(scope="module")
def small_set() -> TrainingSet:
    """Four synthetic writers in two datasets, 3 genuine + 2 forged each, at 64x128."""
    images, writer, genuine, dataset = [], [], [], []
    for w in range(4):
        for k in range(5):
            scan = synth.genuine(w, k) if k < 3 else synth.forgery(w, k)
            images.append(normalize(scan, (64, 128)))
            writer.append(w)
            genuine.append(k < 3)
            dataset.append("a" if w < 2 else "b")
    return TrainingSet(np.stack(images), np.array(writer), np.array(genuine), np.array(dataset))


def test_features_after_every_block_have_that_blocks_channels(small_set):
    network = benchmark.load_backbone("lite0", pretrained=False)
    levels = benchmark.pooled_levels(network, small_set.images, batch=8)
    assert len(levels) == len(network._blocks) == 16
    assert [level.shape for level in levels] == [(20, block._project_conv.out_channels) for block in network._blocks]
    assert all(np.isfinite(level).all() for level in levels)


def test_joined_blocks_are_one_unit_vector_in_which_each_block_weighs_the_same():
    rng = np.random.default_rng(0)
    levels = [rng.random((3, 4)), 100 * rng.random((3, 8))]
    vector = benchmark.joined_levels(levels, [1, 2])
    assert vector.shape == (3, 12)
    assert np.allclose(np.linalg.norm(vector, axis=1), 1)
    assert np.allclose(np.linalg.norm(vector[:, :4], axis=1), np.linalg.norm(vector[:, 4:], axis=1))


def test_unknown_backbone_is_named():
    with pytest.raises(ValueError, match="unknown backbone 'lite9'"):
        benchmark.load_backbone("lite9")


def test_rows_score_each_network_its_best_block_and_the_join(small_set):
    network = benchmark.load_backbone("lite0", pretrained=False)
    levels = benchmark.pooled_levels(network, small_set.images, batch=8)
    found = benchmark.rows({"lite0": levels, "lite1": levels[::-1]}, small_set)
    assert [what.split(",")[0] for what, _ in found] == ["lite0", "lite0", "lite1", "lite1", "lite0 + lite1"]
    for _, eers in found:
        assert set(eers) == {"all", "mean", "a", "b"}
        assert all(0 <= v <= 1 for v in eers.values())
    singles = [benchmark.holdout_eers(benchmark.joined_levels(levels, [t]), small_set)["mean"] for t in range(1, 17)]
    assert found[1][0] == f"lite0, block {int(np.argmin(singles)) + 1} alone (the best single block)"
    assert found[1][1]["mean"] == min(singles)
