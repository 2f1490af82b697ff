"""The writer cross-validation benchmark reads exactly what the spatial head reads, and deals
every writer to one fold."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signver.normalize import to_model_input  # noqa: E402
from signver.training.data import TrainingSet  # noqa: E402
from signver.training.export import export_onnx  # noqa: E402
from signver.training.networks import join_maps  # noqa: E402
from signver.training.spatial import spatial_embeddings  # noqa: E402
from tests.test_training import tiny_fused_with_spatial  # noqa: E402

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
spec = importlib.util.spec_from_file_location("writer_cv", BENCHMARKS / "writer_cv.py")
writer_cv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(writer_cv)


def test_maps_session_gives_the_spatial_heads_input(tmp_path):
    fused = tiny_fused_with_spatial(0.3)
    path = export_onnx(fused, tmp_path / "tiny.onnx", (64, 128))
    images = (np.random.default_rng(0).random((3, 64, 128)) * 255).astype(np.uint8)
    vectors, maps = writer_cv.vectors_and_maps(writer_cv.maps_session(path), images)
    with torch.no_grad():
        x = torch.from_numpy(to_model_input(images))
        expected = join_maps(fused.imagenet_maps(fused.trained.shared(x)), [4, 5])
    assert maps.shape == expected.shape and torch.allclose(maps.float(), expected, rtol=2e-3, atol=1e-2)  # stored as float16
    local = spatial_embeddings(fused.spatial, maps)  # the head on the benchmark's maps gives the vector's spatial part
    assert np.abs(local * 0.3**0.5 - vectors[:, -local.shape[1]:]).max() < 2e-3


def test_folds_deal_each_writer_to_one_fold_within_its_dataset():
    writers = np.repeat([f"a/{i}" for i in range(7)] + [f"b/{i}" for i in range(4)], 3)
    data = TrainingSet(np.zeros((len(writers), 2, 2), np.uint8), writers, np.ones(len(writers), bool), np.array([w[0] for w in writers]))
    fold = writer_cv.folds_of(data, 3)
    for writer in np.unique(writers):
        assert len(set(fold[writers == writer])) == 1
    for dataset, count in (("a", 7), ("b", 4)):
        sizes = np.bincount(fold[(data.dataset == dataset)], minlength=3) // 3
        assert sizes.sum() == count and sizes.max() - sizes.min() <= 1  # each dataset spread evenly over the folds
