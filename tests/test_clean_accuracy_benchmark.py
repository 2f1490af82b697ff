"""benchmarks/clean_accuracy.py: every skilled figure comes with an interval over the writers."""

import numpy as np

from tests.benchmark_scripts import load

benchmark = load("clean_accuracy")


def test_the_run_gives_an_interval_for_every_skilled_figure(synthetic_dataset):
    result = benchmark.run_dataset("cedar", str(synthetic_dataset), None, None, None, 4)
    intervals = result["intervals"]
    assert set(intervals) == {"clean_eer_change_skilled", *(f"{v}_recovered_skilled" for v in benchmark.VERSIONS[1:])}
    for name, (low, high) in intervals.items():
        assert np.isfinite([low, high]).all() and low <= high
    low, high = intervals["clean_eer_change_skilled"]
    assert -1 <= low <= high <= 1
    assert "95 % intervals" in benchmark.table([result])
