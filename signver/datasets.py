"""Dataset readers and the standard writer-independent splits.

Reads the project's folder layout (`<writer>/genuine|forged/<image>`) and the layouts users
download: CEDAR (`full_org/original_W_N.png`, `full_forg/forgeries_W_N.png`) and BHSig260
(`<writer>/B-S-W-G-NN.tif`, `H-S-W-F-NN.tif`). Splits are named so that a reported figure
always says which writers were held out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif"}
_CEDAR_NAME = re.compile(r"^(original|forgeries)_(\d+)_(\d+)$", re.IGNORECASE)
_BHSIG_NAME = re.compile(r"^[A-Z]-S-(\d+)-([GF])-(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Signature:
    path: Path
    writer: str
    genuine: bool


@dataclass(frozen=True)
class Split:
    """Writer-independent split: test writers are never seen in training."""

    name: str
    test: tuple[str, ...]
    train: tuple[str, ...] | None = None  # None: every writer not in `test`

    def train_writers(self, available: Iterable[str]) -> list[str]:
        return [w for w in available if (w in self.train if self.train else w not in self.test)]

    def test_writers(self, available: Iterable[str]) -> list[str]:
        return [w for w in available if w in self.test]


def _names(numbers: Iterable[int]) -> tuple[str, ...]:
    return tuple(str(n) for n in numbers)


SPLITS = {
    "cedar": Split("cedar", test=_names([2, 7, 8, 9, 15, 16, 18, 35, 41, 44, 48])),
    "bhsig260-bengali": Split("bhsig260-bengali", test=_names(range(51, 101)), train=_names(range(1, 51))),
    "bhsig260-hindi": Split("bhsig260-hindi", test=_names(range(101, 161)), train=_names(range(1, 101))),
}


def get_split(name: str) -> Split:
    try:
        return SPLITS[name]
    except KeyError:
        raise DatasetError(f"unknown split {name!r}; known splits: {', '.join(SPLITS)}") from None


# the standard datasets' own file names: each split's writer numbers name people of its dataset only
_FILES_OF = {"cedar": re.compile(r"^(original|forgeries)_\d+_\d+$", re.IGNORECASE),
             "bhsig260-bengali": re.compile(r"^B-S-\d+-[GF]-\d+$", re.IGNORECASE),
             "bhsig260-hindi": re.compile(r"^H-S-\d+-[GF]-\d+$", re.IGNORECASE)}


def known_as(dataset: Dataset) -> str | None:
    """The standard dataset (a split's name) whose files these are, told by their names, or
    None for a dataset of other files (a user's own, or a mix)."""
    found = {name for s in dataset.signatures for name, pattern in _FILES_OF.items() if pattern.match(s.path.stem)}
    return found.pop() if len(found) == 1 and all(any(p.match(s.path.stem) for p in _FILES_OF.values()) for s in dataset.signatures) else None


def split_for(dataset: Dataset, name: str) -> Split:
    """The named split, refused for another standard dataset's files: writer 7 of BHSig260-Hindi
    is not CEDAR's writer 7, so the split would pick the wrong people without a word."""
    split = get_split(name)
    found = known_as(dataset)
    if found is not None and found != name:
        raise DatasetError(f"split {name!r} is for {name}'s writers, but {dataset.root} holds {found}'s files, whose writers of "
                           f"those numbers are other people (its split is {found!r})")
    return split


def writer_sort_key(writer: str) -> tuple[int, int | str]:
    """Numeric writer names sort as numbers, other names after them alphabetically."""
    return (0, int(writer)) if writer.isdigit() else (1, writer)


@dataclass
class Dataset:
    name: str
    root: Path
    signatures: list[Signature]

    def writers(self) -> list[str]:
        return sorted({s.writer for s in self.signatures}, key=writer_sort_key)

    def genuine(self, writer: str) -> list[Signature]:
        """A writer's genuine signatures sorted by file name (the protocols depend on it)."""
        return sorted((s for s in self.signatures if s.writer == writer and s.genuine), key=lambda s: s.path.name)

    def forged(self, writer: str) -> list[Signature]:
        return sorted((s for s in self.signatures if s.writer == writer and not s.genuine), key=lambda s: s.path.name)

    def subset(self, writers: Iterable[str]) -> Dataset:
        keep = set(writers)
        return Dataset(self.name, self.root, [s for s in self.signatures if s.writer in keep])


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _read_folder_layout(root: Path) -> list[Signature]:
    signatures = []
    for writer_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for kind, genuine in (("genuine", True), ("forged", False)):
            if (writer_dir / kind).is_dir():
                signatures += [Signature(p, writer_dir.name, genuine) for p in _images(writer_dir / kind)]
    return signatures


def _read_cedar_layout(root: Path) -> list[Signature]:
    signatures = []
    for folder in (root / "full_org", root / "full_forg"):
        for path in _images(folder) if folder.is_dir() else []:
            match = _CEDAR_NAME.match(path.stem)
            if match:
                signatures.append(Signature(path, match[2], match[1].lower() == "original"))
    return signatures


def _read_bhsig_layout(root: Path) -> list[Signature]:
    signatures = []
    for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
        for path in _images(folder):
            match = _BHSIG_NAME.match(path.stem)
            if match:
                signatures.append(Signature(path, str(int(match[1])), match[2].upper() == "G"))
    return signatures


def read_dataset(root: str | Path, name: str | None = None) -> Dataset:
    """Read a dataset in any supported layout; `name` defaults to the folder's name."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if any((p / "genuine").is_dir() or (p / "forged").is_dir() for p in root.iterdir() if p.is_dir()):
        signatures = _read_folder_layout(root)
    elif (root / "full_org").is_dir():
        signatures = _read_cedar_layout(root)
    else:
        signatures = _read_bhsig_layout(root)
    if not signatures:
        raise DatasetError(
            f"no signatures found in {root}: expected <writer>/genuine|forged/<image>, "
            "CEDAR's full_org/full_forg, or BHSig260's <writer>/X-S-W-G-NN files"
        )
    return Dataset(name or root.resolve().name.lower(), root, signatures)


def select_writers(dataset: Dataset, split: str | None = None, writers: str | None = None) -> list[str]:
    """Test writers chosen by a named split, `all`, or a comma-separated list (in that order)."""
    available = dataset.writers()
    if split:
        chosen = split_for(dataset, split).test_writers(available)
        if not chosen:
            raise DatasetError(f"none of split {split!r}'s test writers are in {dataset.root}")
        return chosen
    if writers in (None, "all"):
        return available
    wanted = [w.strip() for w in writers.split(",") if w.strip()]
    if not wanted:
        raise DatasetError(f"no test writers in {writers!r}: give writer names separated by commas, or all")
    missing = [w for w in wanted if w not in available]
    if missing:
        raise DatasetError(f"writers not in {dataset.root}: {', '.join(missing)}")
    repeated = [w for w in dict.fromkeys(wanted) if wanted.count(w) > 1]
    if repeated:  # each would be counted once per mention, pairs and bootstrap intervals alike
        raise DatasetError(f"writers listed more than once: {', '.join(repeated)}")
    return wanted
