"""The reference-stability benchmark: its deformations and its P1 scoring run on synthetic writers."""

import numpy as np

from signver.extractor import Extractor
from tests.benchmark_scripts import load

stability = load("reference_stability")


def test_deform_keeps_the_identity_and_moves_ink_otherwise():
    image = np.zeros((40, 80), np.uint8)
    image[15:25, 20:60] = 200
    assert np.array_equal(stability.deform(image, 0, 1, 0), image)
    shifted = stability.deform(image, 0, 1, 0.1)
    assert np.array_equal(shifted[:, 28:68], image[:, 20:60])
    turned = stability.deform(image, 3, 1, 0)
    assert not np.array_equal(turned, image) and abs(int(turned.sum()) - int(image.sum())) < 0.1 * image.sum()


def test_p1_eers_scores_every_deformation_and_exponent(synthetic_dataset):
    rates = stability.p1_eers(Extractor(), str(synthetic_dataset), None, "all", [0.5])
    assert set(rates) == {"plain distance"} | {f"{name}, a = 0.5" for name in stability.DEFORMATIONS}
    for skilled, random in rates.values():
        assert 0 <= skilled <= 1 and 0 <= random <= 1
