"""benchmarks/reference_copies.py: the pairs it measures and the copies it makes."""

import numpy as np

from signver import synth
from tests.benchmark_scripts import load

benchmark = load("reference_copies")


def test_same_writer_distances_take_each_pair_of_one_writers_genuine_signatures_once():
    vectors = np.eye(5, dtype=np.float32)
    writer = np.array([0, 0, 0, 1, 1])
    genuine = np.array([True, True, False, True, True])
    d, pairs = benchmark.same_writer_distances(vectors, writer, genuine)
    assert pairs.tolist() == [[0, 1], [3, 4]] and np.allclose(d, np.sqrt(2))  # the forgery and other writers left out


def test_copies_keep_the_scan_grey_and_change_it_a_little():
    scan = synth.genuine(1, 0)
    for name, change in benchmark.COPIES.items():
        copy = change(scan)
        assert copy.dtype == np.uint8 and copy.ndim == 2, name
    assert benchmark.COPIES["resized to 0.5"](scan).shape == (round(scan.shape[0] / 2), round(scan.shape[1] / 2))
    assert 0 < np.abs(benchmark.COPIES["JPEG, quality 60"](scan).astype(int) - scan).mean() < 10
