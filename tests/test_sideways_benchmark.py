"""benchmarks/sideways.py: each trial read the way of its questioned scan's readings nearer the reference."""

from types import SimpleNamespace

import numpy as np

from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED
from tests.benchmark_scripts import load

benchmark = load("sideways")


def test_a_trial_takes_the_reading_nearer_its_reference():
    rng = np.random.default_rng(0)
    references = rng.normal(size=(6, 8))
    kinds = np.array([POSITIVE, POSITIVE, SKILLED, SKILLED, RANDOM, RANDOM])
    # genuine trials question a reference's near copy, forgeries a vector far off
    upright = np.where((kinds == POSITIVE)[:, None], references + 0.01, rng.normal(size=(6, 8)) * 3)
    upside_down = np.where((kinds == POSITIVE)[:, None], 100.0, upright)  # a genuine scan upside down is far from its reference
    trials = SimpleNamespace(references=np.arange(6)[:, None], questioned=np.arange(6), kind=kinds)
    assert benchmark.rates(references, [upright], trials) == (0.0, 0.0)
    assert benchmark.rates(references, [upside_down, upright], trials) == (0.0, 0.0)  # either order: the nearer way
    assert benchmark.rates(references, [upright, upside_down], trials) == (0.0, 0.0)
    assert benchmark.rates(references, [upside_down], trials)[0] == 100.0  # the wrong way alone fails every genuine trial
