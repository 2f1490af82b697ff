"""benchmarks/colour_stamps.py: seeded stamps over the signature, saved as JPEG, and read back
grey (the stamp is ink) or without its colour (the stamp is mostly paper again)."""

import numpy as np

from signver import synth
from signver.images import load_image
from tests.benchmark_scripts import load

benchmark = load("colour_stamps")


def test_a_stamp_is_an_ink_share_over_the_middle_the_same_each_time():
    mask = benchmark.stamp_mask((150, 300), np.random.default_rng(3))
    assert mask.shape == (150, 300) and 0 <= mask.min() and mask.max() <= 1 and (mask > 0.3).mean() > 0.02
    assert np.array_equal(mask, benchmark.stamp_mask((150, 300), np.random.default_rng(3)))


def test_a_red_stamp_reads_as_ink_in_grey_and_mostly_as_paper_without_red():
    gray = synth.genuine(2, 0)
    data = benchmark.stamped_jpeg(gray, 7, benchmark.REDS)
    assert data == benchmark.stamped_jpeg(gray, 7, benchmark.REDS) and data[:3] == b"\xff\xd8\xff"
    ink = gray < 128
    darker = lambda image: ((image < 128) & ~ink).mean()  # noqa: E731  dark pixels where the signature has none
    assert darker(load_image(data)) > 5 * darker(load_image(data, dropout="red")) and darker(load_image(data)) > 0.01
    blue_pen = load_image(benchmark.stamped_jpeg(gray, 7, benchmark.REDS, benchmark.BLUE_PEN), dropout="red")
    assert (blue_pen[ink] < 128).mean() > 0.8  # blue ink stays ink


def test_black_ink_keeps_its_grey_and_a_blue_pen_its_colour():
    gray = np.array([[255, 0, 100]], np.uint8)
    assert np.allclose(benchmark.inked(gray, (0, 0, 0))[..., 0], gray)
    blue = benchmark.inked(gray, benchmark.BLUE_PEN)
    assert np.allclose(blue[0, 0], 255) and np.allclose(blue[0, 1], benchmark.BLUE_PEN)
