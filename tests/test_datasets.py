import shutil

import pytest

from signver.datasets import SPLITS, get_split, known_as, read_dataset, select_writers
from signver.errors import DatasetError

from .conftest import shared_dataset


def test_folder_layout(synthetic_dataset):
    dataset = read_dataset(synthetic_dataset)
    assert dataset.writers() == [str(i) for i in range(1, 9)]
    assert len(dataset.genuine("3")) == 6 and len(dataset.forged("3")) == 4
    names = [s.path.name for s in dataset.genuine("3")]
    assert names == sorted(names)


def test_cedar_native_layout(tmp_path, synthetic_dataset):
    for folder in ("full_org", "full_forg"):
        (tmp_path / folder).mkdir()
    for writer in ("1", "12"):
        for k, src in enumerate(sorted((synthetic_dataset / "1" / "genuine").iterdir())[:3], 1):
            shutil.copy(src, tmp_path / "full_org" / f"original_{writer}_{k}.png")
        shutil.copy(next((synthetic_dataset / "1" / "forged").iterdir()), tmp_path / "full_forg" / f"forgeries_{writer}_1.png")
    (tmp_path / "full_org" / "Thumbs.db").write_bytes(b"x")
    dataset = read_dataset(tmp_path, name="cedar")
    assert dataset.writers() == ["1", "12"]
    assert len(dataset.genuine("12")) == 3 and len(dataset.forged("12")) == 1


def test_bhsig_native_layout(tmp_path, synthetic_dataset):
    source = next((synthetic_dataset / "1" / "genuine").iterdir())
    for writer in (1, 2):
        (tmp_path / str(writer)).mkdir()
        for kind in "GF":
            for k in (1, 2):
                shutil.copy(source, tmp_path / str(writer) / f"B-S-{writer}-{kind}-{k:02d}.tif")
    dataset = read_dataset(tmp_path)
    assert dataset.writers() == ["1", "2"]
    assert [s.path.name for s in dataset.genuine("2")] == ["B-S-2-G-01.tif", "B-S-2-G-02.tif"]
    assert known_as(dataset) == "bhsig260-bengali"


def test_a_split_of_another_dataset_is_refused(tmp_path, synthetic_dataset):
    """Writer 7 of BHSig260-Hindi is not CEDAR's writer 7: a split named for another standard
    dataset than the files' would score other people as its test writers (a helper's finding)."""
    source = next((synthetic_dataset / "1" / "genuine").iterdir())
    for writer in (2, 7, 51):
        for kind in "GF":
            (tmp_path / str(writer) / ("genuine" if kind == "G" else "forged")).mkdir(parents=True, exist_ok=True)
            shutil.copy(source, tmp_path / str(writer) / ("genuine" if kind == "G" else "forged") / f"H-S-{writer}-{kind}-01.png")
    hindi = read_dataset(tmp_path)
    assert known_as(hindi) == "bhsig260-hindi"
    for split in ("cedar", "bhsig260-bengali"):
        with pytest.raises(DatasetError, match="holds bhsig260-hindi's files"):
            select_writers(hindi, split=split)
    with pytest.raises(DatasetError, match="none of split 'bhsig260-hindi'"):  # its own split: only that it has no test writer here
        select_writers(hindi, split="bhsig260-hindi")
    assert known_as(read_dataset(synthetic_dataset)) is None  # other names: a user's own data, no split of theirs to check


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        read_dataset(tmp_path / "nope")
    with pytest.raises(DatasetError, match="no signatures found"):
        read_dataset(tmp_path)


def test_writer_selection(synthetic_dataset):
    dataset = read_dataset(synthetic_dataset)
    assert select_writers(dataset, writers="all") == dataset.writers()
    assert select_writers(dataset, writers="2, 5") == ["2", "5"]
    assert select_writers(dataset, split="cedar") == ["2", "7", "8"]
    with pytest.raises(DatasetError, match="writers not in"):
        select_writers(dataset, writers="2,99")
    with pytest.raises(DatasetError, match="more than once: 2$"):
        select_writers(dataset, writers="1,2,2, 2")
    with pytest.raises(DatasetError, match="unknown split"):
        get_split("mnist")


def test_splits_are_disjoint():
    writers = [str(i) for i in range(1, 161)]
    for split in SPLITS.values():
        assert not set(split.train_writers(writers)) & set(split.test_writers(writers))
    assert len(get_split("cedar").train_writers([str(i) for i in range(1, 56)])) == 44


@pytest.mark.data
def test_shared_cedar_split():
    dataset = read_dataset(shared_dataset("cedar"))
    assert len(dataset.writers()) == 55
    assert len(select_writers(dataset, split="cedar")) == 11
    assert all(len(dataset.genuine(w)) == 24 and len(dataset.forged(w)) == 24 for w in dataset.writers())
