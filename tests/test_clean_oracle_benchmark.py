"""benchmarks/clean_oracle.py: each oracle changes only what it claims to (kept clutter, or the
kept ink's tone), and the held-out loop scores every row."""

import cv2
import numpy as np
import pytest

from signver import overlays, synth
from signver.cleaner import get_cleaner
from tests.benchmark_scripts import load

benchmark = load("clean_oracle")


def test_each_oracle_changes_only_its_own_part():
    cluttered = overlays.clutter(synth.genuine(4, 1), 5)
    dirty, target = cluttered.image, cluttered.target
    cleaner = get_cleaner(None)
    outs = benchmark.oracle_outputs(cleaner, dirty, target)
    assert set(outs) == set(benchmark.ROWS)
    near_ink = cv2.dilate(cluttered.ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    cleaned = cleaner.clean(dirty)
    assert np.array_equal(outs["as it is"], dirty) and np.array_equal(outs["cleaned"], cleaned)
    assert (outs["kept clutter whitened"][~near_ink] == 255).all()
    assert np.array_equal(outs["kept clutter whitened"][near_ink], cleaned[near_ink])
    assert np.array_equal(outs["clean tone on kept ink"][~near_ink], cleaned[~near_ink])
    assert np.array_equal(outs["clean tone on kept ink"][near_ink], outs["both"][near_ink])
    keep = cleaner._read(dirty).keep_full
    assert (keep == 1).any() and (keep == 0).any()
    assert (outs["both"][keep == 0] == 255).all() and np.array_equal(outs["both"][keep == 1], target[keep == 1])


def test_the_loop_scores_every_row_of_every_overlaid_version(synthetic_dataset):
    result = benchmark.run_dataset("cedar", str(synthetic_dataset), "1,2,3", None)
    assert set(result["rows"]) == set(benchmark.ROWS)
    for cells in result["rows"].values():
        assert set(cells) == set(benchmark.VERSIONS[1:])
        assert all(0 <= c["eer_skilled"] <= 100 for c in cells.values())
    for version in benchmark.VERSIONS[1:]:  # each share is the row's part of what the overlay cost
        before, lost = result["rows"]["as it is"][version]["eer_skilled"], result["rows"]["as it is"][version]["eer_skilled"] - result["clean_eer_skilled"]
        for row, cells in result["rows"].items():
            share = cells[version]["recovered"]
            assert np.isnan(share) if lost <= 0 else share == pytest.approx((before - cells[version]["eer_skilled"]) / lost)
