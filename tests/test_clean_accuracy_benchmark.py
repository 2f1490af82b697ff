"""benchmarks/clean_accuracy.py: every figure comes with an interval over the writers, and each
trial is counted for the writer it claims."""

import numpy as np

from signver.datasets import read_dataset
from signver.evaluation.protocols import POSITIVE
from signver.evaluation.report import build_trials
from tests.benchmark_scripts import load

benchmark = load("clean_accuracy")


def test_each_trial_belongs_to_the_writer_of_its_references(synthetic_dataset):
    _, trials = build_trials(synthetic_dataset, "p1", 1, None, None)
    claimed = benchmark.claimed_writers(str(synthetic_dataset), trials)
    writer_of = {s.path: s.writer for s in read_dataset(synthetic_dataset).signatures}
    assert len(claimed) == len(trials.kind) and set(claimed) == set(trials.writers)
    positive = trials.kind == POSITIVE
    assert all(writer_of[trials.images[q]] == w for q, w in zip(trials.questioned[positive], claimed[positive]))


def test_the_run_gives_an_interval_for_every_skilled_figure(synthetic_dataset):
    result = benchmark.run_dataset("cedar", str(synthetic_dataset), None, None, None, 4)
    intervals = result["intervals"]
    assert set(intervals) == {"clean_eer_change_skilled", *(f"{v}_recovered_skilled" for v in benchmark.VERSIONS[1:])}
    for name, (low, high) in intervals.items():
        assert np.isfinite([low, high]).all() and low <= high
    low, high = intervals["clean_eer_change_skilled"]
    assert -1 <= low <= high <= 1
    assert "95 % intervals" in benchmark.table([result])
