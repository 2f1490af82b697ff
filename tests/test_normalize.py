import re

import cv2
import numpy as np
import pytest

from signver import synth
from signver.errors import BlankImageError, InputError
from signver.normalize import DEFAULT_SIZE, ink_box, ink_mask, normalize, to_model_input


def scan(offset=(0, 0), paper=235, noise=True):
    """A signature drawn on a 600x300 'scan' at a given offset."""
    image = np.full((300, 600), paper, np.uint8)
    points = np.array([[100, 200], [160, 90], [220, 210], [300, 100], [380, 200], [460, 120]]) + offset
    cv2.polylines(image, [points.astype(np.int32)], False, 30, 5, cv2.LINE_AA)
    if noise:
        image = (image.astype(int) + np.random.default_rng(0).integers(-6, 7, image.shape)).clip(0, 255).astype(np.uint8)
    return image


def test_output_shape_dtype_and_polarity():
    out = normalize(scan())
    assert out.shape == DEFAULT_SIZE and out.dtype == np.uint8
    assert out.max() > 150  # ink is bright
    assert np.median(out) == 0  # background is black
    assert out[0].max() == 0 and out[-1].max() == 0  # wide signature: padded above and below


def test_position_and_paper_tone_do_not_matter():
    a = normalize(scan()).astype(float)
    b = normalize(scan(offset=(-60, 40), paper=250)).astype(float)
    assert np.abs(a - b).mean() < 3


def test_aspect_ratio_kept_and_centred():
    tall = np.full((400, 200), 255, np.uint8)
    cv2.line(tall, (100, 50), (100, 350), 0, 6)
    out = normalize(tall, size=(64, 128))
    columns = np.nonzero(out.max(axis=0))[0]
    assert abs((columns[0] + columns[-1]) / 2 - 63.5) <= 2  # centred horizontally
    assert columns[-1] - columns[0] < 10  # a thin vertical stroke stays thin


def test_stray_speck_does_not_widen_the_crop():
    clean = scan(noise=False)
    specked = clean.copy()
    specked[5:7, 590:592] = 0  # a speck of dust in the far corner
    clean_box, specked_box = ink_box(ink_mask(clean)[0]), ink_box(ink_mask(specked)[0])
    assert np.abs(np.subtract(clean_box, specked_box)).max() <= 2


def test_ink_is_kept_in_its_own_tone_and_paper_goes_black():
    """The OpenCV passes do what the definition says: the ink mask is the blurred scan at or
    below Otsu's level, kept pixels become 255 - grey, everything else 0."""
    for k in range(4):
        gray = synth.genuine(2, k)
        mask, threshold = ink_mask(gray)
        smooth = cv2.GaussianBlur(gray, (3, 3), 0)
        assert mask.dtype == bool and np.array_equal(mask, smooth <= threshold)
        x0, y0, x1, y1 = ink_box(mask)
        crop = gray[y0:y1, x0:x1]
        expected = np.where(crop > threshold, 0, 255 - crop).astype(np.uint8)
        height, width = crop.shape  # a size that keeps the crop's pixels, so no resampling
        assert np.array_equal(normalize(gray, size=(height, width)), expected)


def test_custom_size_and_batch_input():
    images = [normalize(synth.genuine(1, k), size=(32, 64)) for k in range(3)]
    batch = to_model_input(images)
    assert batch.shape == (3, 1, 32, 64) and batch.dtype == np.float32
    assert 0 <= batch.min() and batch.max() <= 1


@pytest.mark.parametrize("image", [np.full((100, 200), 255, np.uint8), np.full((100, 200), 128, np.uint8), np.zeros((0, 10), np.uint8)])
def test_blank_images_are_refused(image):
    with pytest.raises(BlankImageError, match="blank|empty"):
        normalize(image)


def test_almost_no_ink_is_blank():
    image = np.full((100, 200), 255, np.uint8)
    image[50, 50] = 0
    with pytest.raises(BlankImageError, match="too few ink pixels"):
        normalize(image)


def test_wrong_array_kind_is_refused():
    with pytest.raises(InputError, match="2-D uint8"):
        normalize(np.zeros((10, 10, 3), np.uint8))


@pytest.mark.parametrize("shape", [(1, 400), (400, 3), (7, 200)])
def test_a_strip_too_narrow_to_hold_a_signature_is_refused(shape):
    strip = np.full(shape, 255, np.uint8)
    strip[: max(1, shape[0] // 2), : max(1, shape[1] // 2)] = 0  # ink enough, were it a signature
    with pytest.raises(InputError, match=re.escape(f"a {shape[1]} x {shape[0]} pixel image (width x height) is too small to hold a signature")):
        normalize(strip)
    tall_enough = np.full((8, 200), 255, np.uint8)
    tall_enough[2:6, 10:190] = 0
    assert normalize(tall_enough).shape == DEFAULT_SIZE


def test_light_ink_on_a_dark_background_is_refused_not_read_as_a_blot():
    """Inverted scans (THRESH_BINARY_INV masks, ink True in a bool mask) were read with the
    paper as ink: a genuine pair came out far apart, with no error."""
    with pytest.raises(InputError, match="light ink on a dark background .*or a shadow or shaded field"):
        normalize(255 - scan())
    import signver

    ink_true = scan() < 128  # a mask with True for ink; signver reads True as paper, as PIL does
    with pytest.raises(InputError, match="a bool array is True for paper"):
        signver.embed(ink_true)
    assert signver.embed(~ink_true).shape  # the same mask the right way round
