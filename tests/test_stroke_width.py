"""Stroke-width copies: the changes widen or narrow strokes by a pixel, heads draw versions of
each image as asked, and a refit with copies trains on them and records them in the card."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signver.errors import InputError  # noqa: E402
from signver.training.data import load_training_set  # noqa: E402
from signver.training.spatial import fit_head  # noqa: E402
from signver.training.networks import SpatialHead  # noqa: E402
from signver.training.spatial_refit import refit_spatial  # noqa: E402
from signver.training.stroke_width import CHANGES, MapCopies, augmented_copy, changes_of, training_maps  # noqa: E402
from tests.benchmark_scripts import load  # noqa: E402
from tests.test_spatial_refit import tiny_base  # noqa: E402

benchmark = load("stroke_width")


def stroke(width: int) -> np.ndarray:
    """A dark vertical stroke `width` pixels wide on white paper."""
    page = np.full((40, 40), 255, np.uint8)
    page[5:35, 18 : 18 + width] = 20
    return page


def ink_width(gray: np.ndarray) -> int:
    return int((gray[20] < 128).sum())


def test_copies_are_a_pixel_finer_or_broader():
    assert ink_width(CHANGES["thin"](stroke(4))) == 3
    assert ink_width(CHANGES["thick"](stroke(4))) == 5
    assert ink_width(CHANGES["thick"](stroke(1))) == 2 and ink_width(CHANGES["thin"](stroke(2))) == 1


def test_the_benchmark_measures_stroke_width_in_pixels():
    for width in (2, 4, 7):
        assert benchmark.stroke_width(stroke(width)) == pytest.approx(width, rel=0.15)
    assert benchmark.stroke_width(CHANGES["thick"](stroke(4))) > benchmark.stroke_width(stroke(4)) > benchmark.stroke_width(CHANGES["thin"](stroke(4)))


def test_a_spec_names_only_known_copies():
    assert changes_of({}) == [] and changes_of({"copies": ["thick", "thin"]}) == ["thick", "thin"]
    assert changes_of({"copies": ["augmented-7", "thin"]}) == ["augmented-7", "thin"]
    for bad in ("bold", "augmented-", "augmented-x"):
        with pytest.raises(InputError, match="unknown copies"):
            changes_of({"copies": [bad]})
    with pytest.raises(InputError, match="original_share"):
        MapCopies(torch.zeros(2, 1), original_share=1.5)


def test_augmented_copies_are_seeded_changes_of_each_image():
    images = np.zeros((6, 32, 64), np.uint8)
    images[:, 10:22, 12:52] = 200
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    copy = augmented_copy(images, 3, batch=4)
    assert torch.rand(1) == before  # torch's global random state is left as it was
    assert copy.shape == images.shape and copy.dtype == np.uint8
    assert np.array_equal(copy, augmented_copy(images, 3, batch=4)) and not np.array_equal(copy, augmented_copy(images, 4, batch=4))
    assert all(not np.array_equal(c, i) for c, i in zip(copy, images))  # every image changed, each its own way
    assert not np.array_equal(copy[0], copy[1])


def test_draws_take_the_original_at_its_share_and_each_copy_otherwise():
    n = 4000
    original, thin, thick = (torch.full((n, 1), float(v)) for v in (0, 1, 2))
    index = np.arange(n)
    drawn = MapCopies(original, [thin, thick], original_share=0.5).draw(index, np.random.default_rng(0))[:, 0].numpy()
    shares = np.bincount(drawn.astype(int), minlength=3) / n
    assert shares[0] == pytest.approx(0.5, abs=0.03) and shares[1] == pytest.approx(0.25, abs=0.03) and shares[2] == pytest.approx(0.25, abs=0.03)
    maps = torch.arange(10.0)[:, None] * torch.tensor([1.0, 100.0])  # image i's maps: (i, 100 i)
    rows = MapCopies(maps, [maps + 0.5]).subset(np.arange(10) % 2 == 0).draw(np.array([4, 0, 2]), np.random.default_rng(1))
    assert torch.equal(rows.floor(), maps[[8, 0, 4]])  # the images asked for, in order, whatever their version
    rng = np.random.default_rng(3)
    assert torch.equal(MapCopies(maps).draw(np.array([3, 1]), rng), maps[[3, 1]]) and rng.random() == np.random.default_rng(3).random()


def test_a_head_without_copies_trains_as_before(synthetic_dataset):
    data = load_training_set([{"path": str(synthetic_dataset)}], (32, 64))
    maps = torch.from_numpy(np.random.default_rng(0).normal(size=(len(data.writer), 6, 2, 4)).astype(np.float16))
    spec = {"taps": [4], "width": 8, "channels": 4, "pool": 2, "steps": 3, "batch": 8, "warmup": 1, "seed": 0}
    heads = []
    for given in (maps, training_maps(spec, maps, {})):
        torch.manual_seed(0)
        head = SpatialHead([4], 6, 8, 4, 2)
        fit_head(head, given, spec, data)
        heads.append(head.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(heads[0].values(), heads[1].values()))


def test_load_training_set_changes_each_scan_before_normalising(synthetic_dataset):
    source = [{"path": str(synthetic_dataset)}]
    plain, thick = (load_training_set(source, (64, 128), change=change).images for change in (None, "thick"))
    assert plain.shape == thick.shape and (thick > 0).mean() > (plain > 0).mean()  # broader strokes, more ink


def test_refit_with_copies_trains_on_them_and_records_them(synthetic_dataset, tmp_path):
    base = tiny_base(synthetic_dataset, tmp_path)
    config = {
        "name": "tiny-widths", "description": "copies", "base": str(base), "folds": 2, "shares": [0.0, 0.3], "global_shares": [0.0, 0.2],
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 6, "batch": 8, "warmup": 2, "seeds": [0],
                    "copies": ["thin", "augmented-3"], "original_share": 0.5},
        "global": {"taps": [4, 5], "width": 8, "dim": 4, "steps": 4, "warmup": 1, "batch": {"writers": 4, "genuine": 2, "forged": 1}, "seeds": [0],
                   "copies": ["thick"], "original_share": 0.5},
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    card = json.loads(refit_spatial(config, "widths.yaml").with_suffix(".json").read_text())
    assert card["spatial"]["copies"] == ["thin", "augmented-3"] and card["global"]["copies"] == ["thick"] and card["spatial"]["original_share"] == 0.5
    assert sorted(p.name for p in (tmp_path / "run").glob("train*.npz")) == ["train-thick.npz", "train-thin.npz", "train.npz"]
    with pytest.raises(InputError, match="unknown copies"):
        refit_spatial({**config, "name": "tiny-bold", "spatial": {**config["spatial"], "copies": ["bold"]}}, "widths.yaml")
