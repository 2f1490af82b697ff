"""The synthetic signatures must be deterministic, well-formed, and writer-consistent."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from signver import synth

WRITERS = range(100, 106)
INK = 128  # grey level below which a pixel counts as ink


def _ink_map(image: np.ndarray) -> np.ndarray:
    """Crop to the ink, scale to 64x128 and blur: a size- and position-free shape descriptor."""
    ys, xs = np.nonzero(image < INK)
    crop = 255 - image[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    small = cv2.resize(crop, (128, 64), interpolation=cv2.INTER_AREA).astype(np.float64)
    blurred = cv2.GaussianBlur(small, (0, 0), 3)
    blurred -= blurred.mean()
    return blurred / np.linalg.norm(blurred)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - normalised correlation of the blurred ink maps."""
    return 1.0 - float(np.sum(_ink_map(a) * _ink_map(b)))


@pytest.mark.parametrize("make", [synth.genuine, synth.forgery])
def test_deterministic_and_samples_differ(make):
    first = make(7, 0)
    assert np.array_equal(first, make(7, 0))
    assert np.array_equal(first, make(synth.Writer(7), 0))
    assert not np.array_equal(first, make(7, 1))


def test_genuine_and_forgery_differ():
    assert not np.array_equal(synth.genuine(3, 0), synth.forgery(3, 0))


@pytest.mark.parametrize("seed", range(12))
def test_image_properties(seed):
    for image in (synth.genuine(seed, 0), synth.genuine(seed, 5), synth.forgery(seed, 2)):
        assert image.dtype == np.uint8 and image.ndim == 2
        h, w = image.shape
        assert 150 <= h <= 300 and 300 <= w <= 700
        assert np.median(image) >= 235  # white-ish paper
        assert image.min() <= 80  # dark ink
        assert np.count_nonzero(image < INK) > 200
        border = np.concatenate([image[:3].ravel(), image[-3:].ravel(), image[:, :3].ravel(), image[:, -3:].ravel()])
        assert border.min() >= 220  # margin: no ink near the border


def test_noise_option():
    paper = lambda noise: synth.genuine(5, 0, noise=noise)[:5].astype(float)  # noqa: E731 (margin rows)
    assert paper(0.0).std() == 0.0
    assert paper(4.0).std() > 2.0


def test_writer_is_frozen_and_keyed_by_seed():
    writer = synth.Writer(11)
    assert writer == synth.Writer(11) and writer != synth.Writer(12)
    with pytest.raises(AttributeError):
        writer.seed = 3


def test_write_dataset_layout(tmp_path):
    root = synth.write_dataset(tmp_path / "data", n_writers=3, n_genuine=4, n_forged=2, seed=1)
    assert root == tmp_path / "data"
    assert sorted(p.name for p in root.iterdir()) == ["1", "2", "3"]
    for writer in ("1", "2", "3"):
        assert sorted(p.name for p in (root / writer).iterdir()) == ["forged", "genuine"]
        genuine = sorted(p.name for p in (root / writer / "genuine").iterdir())
        forged = sorted(p.name for p in (root / writer / "forged").iterdir())
        assert genuine == [f"{writer}_g_{k:02d}.png" for k in range(1, 5)]
        assert forged == [f"{writer}_f_{k:02d}.png" for k in range(1, 3)]
    image = cv2.imread(str(root / "2" / "genuine" / "2_g_01.png"), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint8 and image.ndim == 2


def test_write_dataset_seed_changes_writers(tmp_path):
    a = synth.write_dataset(tmp_path / "a", n_writers=1, n_genuine=1, n_forged=0, seed=0)
    b = synth.write_dataset(tmp_path / "b", n_writers=1, n_genuine=1, n_forged=0, seed=1)
    c = synth.write_dataset(tmp_path / "c", n_writers=1, n_genuine=1, n_forged=0, seed=0)
    read = lambda root: cv2.imread(str(root / "1" / "genuine" / "1_g_01.png"), cv2.IMREAD_GRAYSCALE)  # noqa: E731
    assert np.array_equal(read(a), read(c))
    assert read(a).shape != read(b).shape or not np.array_equal(read(a), read(b))


def test_pair_examples():
    pairs = synth.pair_examples(n=3, seed=0)
    assert [label for label, _, _ in pairs] == ["genuine", "skilled forgery", "different writer"]
    for _, a, b in pairs:
        assert a.dtype == b.dtype == np.uint8 and a.ndim == b.ndim == 2
    assert all(np.array_equal(x[1], y[1]) for x, y in zip(pairs, synth.pair_examples(n=3, seed=0)))


def test_writer_consistency():
    """Genuine-genuine < genuine-forgery < different-writer, on a simple ink-map distance."""
    genuine = {w: [synth.genuine(w, k) for k in range(4)] for w in WRITERS}
    forged = {w: [synth.forgery(w, k) for k in range(4)] for w in WRITERS}
    same = [_distance(a, b) for w in WRITERS for a, b in itertools.combinations(genuine[w], 2)]
    forgery = [_distance(a, b) for w in WRITERS for a in genuine[w] for b in forged[w]]
    other = [_distance(genuine[v][0], genuine[w][k]) for v, w in itertools.permutations(WRITERS, 2) for k in range(4)]
    assert np.mean(same) < np.mean(forgery) < np.mean(other)
    assert np.mean(forgery) < 0.75 * np.mean(other)  # a forgery stays much closer than another writer

