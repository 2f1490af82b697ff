"""benchmarks/ink_tone.py: lighter scans keep their paper white and their strokes in place,
half the scans are drawn lighter, and the shared P1 loop scores every change."""

import numpy as np

from signver.extractor import Extractor
from tests.benchmark_scripts import load

benchmark = load("ink_tone")
common = load("common")


def test_lighter_scales_darkness_and_keeps_white_paper():
    scan = np.array([[255, 0, 100]], np.uint8)
    assert benchmark.lighter(scan, 0.6).tolist() == [[255, 102, 162]]
    assert benchmark.lighter(scan, 1.0).tolist() == scan.tolist()


def test_half_the_scans_are_drawn_lighter_the_same_way_each_time():
    drawn = [benchmark.drawn_lighter(i) for i in range(400)]
    assert 160 < sum(drawn) < 240 and drawn == [benchmark.drawn_lighter(i) for i in range(400)]


def test_the_p1_loop_scores_each_change_of_the_scans(synthetic_dataset):
    extractor = Extractor("effnet-lite0-imagenet")
    changes = (lambda gray, _: gray, lambda gray, _: benchmark.lighter(gray, 0.6), lambda gray, i: gray[::-1, ::-1].copy() if i % 2 else gray)
    scans, eers = common.p1_eers_of_changed_scans(extractor, str(synthetic_dataset.parent), synthetic_dataset.name, "1,2,3,4", changes)
    assert len(scans) > 0 and len(eers) == 3
    assert all(0 <= skilled <= 100 and 0 <= random <= 100 for skilled, random in eers)
    assert eers[2] != eers[0]  # turning every other scan upside down changes the figures
