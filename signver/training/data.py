"""Training images in memory, and batches of P writers x (K genuine + F forged).

Images are normalised once with the same function inference uses and cached as uint8 (about
32 KB each at 128x256), so a training step costs only augmentation and the network.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn, track

from ..datasets import Dataset, read_dataset, split_for
from ..errors import DatasetError, InputError
from ..images import load_image
from ..normalize import normalize
from .cache import cached_arrays
from .stroke_width import CHANGES


@dataclass
class TrainingSet:
    images: np.ndarray  # (N, H, W) uint8, normalised
    writer: np.ndarray  # (N,) writer class over all sources
    genuine: np.ndarray  # (N,) bool
    dataset: np.ndarray  # (N,) name of the dataset each image comes from

    def subset(self, mask: np.ndarray) -> TrainingSet:
        return TrainingSet(self.images[mask], self.writer[mask], self.genuine[mask], self.dataset[mask])

    @cached_property
    def fingerprint(self) -> str:
        """Which images, of which writers: what a head fitted on them was fitted on."""
        digest = hashlib.sha1()
        for array in (self.images, self.writer, self.genuine, self.dataset):
            digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
        return digest.hexdigest()

    def labels(self, index: np.ndarray) -> np.ndarray:
        """Genuine signatures share their writer's class; each forgery is a class of its own."""
        return np.where(self.genuine[index], self.writer[index], -1 - index)


def writers_for(source: dict, dataset: Dataset, role: str) -> list[str]:
    """Training writers of a source's split (all writers when it names none), minus (role
    `train`) or only (role `holdout`) the writers held out to choose the threshold. A split of
    another standard dataset than the source's files is refused (`split_for`)."""
    available = dataset.writers()
    train = split_for(dataset, source["split"]).train_writers(available) if source.get("split") else available
    holdout = {str(w) for w in source.get("holdout", [])}
    return [w for w in train if (w in holdout) == (role == "holdout")]


def embedded(extractor, sources: list, label: str) -> np.ndarray:
    """`extractor.embed(sources)` behind a progress bar: a card's held-out writers, or every
    training writer for a threshold, take minutes."""
    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task(label, total=len(sources))
        return extractor.embed(sources, progress=lambda n: bar.advance(task, n))


def load_training_set(sources: list[dict], size: tuple[int, int], role: str = "train", cache: Path | None = None, change: str | None = None) -> TrainingSet:
    """The role's images of `sources`, normalised to `size`; with `change` (a name in
    `stroke_width.CHANGES`) each raw scan is changed first."""
    made_from = {"sources": sources, "size": list(size), "role": role, "change": change}
    arrays = cached_arrays(cache, made_from, lambda: _read_role(sources, size, role, change))
    return TrainingSet(arrays["images"], arrays["writer"], arrays["genuine"], arrays["dataset"])


def _read_role(sources: list[dict], size: tuple[int, int], role: str, change: str | None) -> dict[str, np.ndarray]:
    paths, writer, genuine, names = [], [], [], []
    for source in sources:
        dataset = read_dataset(source["path"])
        for name in writers_for(source, dataset, role):
            for signature in dataset.genuine(name) + dataset.forged(name):
                paths.append(signature.path)
                writer.append(f"{dataset.name}/{name}")
                genuine.append(signature.genuine)
                names.append(dataset.name)
    if not paths:
        raise DatasetError(f"no {role} signatures in {', '.join(str(s['path']) for s in sources)}: check the datasets' writers "
                           f"and their {role} settings")
    changed = CHANGES[change] if change else (lambda gray: gray)
    images = np.stack([normalize(changed(load_image(p)), size) for p in track(paths, description=f"normalising {role} images" + (f" ({change})" if change else ""))])
    classes = {name: i for i, name in enumerate(dict.fromkeys(writer))}
    return {"images": images, "writer": np.array([classes[w] for w in writer]), "genuine": np.array(genuine), "dataset": np.array(names)}


def writer_batches(data: TrainingSet, writers: int, genuine: int, forged: int, rng: np.random.Generator):
    """Endless batches: `writers` writers, each with `genuine` genuine and `forged` forged images."""
    if writers > len(np.unique(data.writer)):
        raise InputError(f"batch writers {writers} is more than the {len(np.unique(data.writer))} training writers")
    return _batches(data, writers, genuine, forged, rng)


def _batches(data: TrainingSet, writers: int, genuine: int, forged: int, rng: np.random.Generator):
    by_writer = {}
    for w in np.unique(data.writer):
        mine = data.writer == w
        by_writer[w] = (np.flatnonzero(mine & data.genuine), np.flatnonzero(mine & ~data.genuine))
    names = np.array(list(by_writer))
    while True:
        batch = []
        for w in rng.choice(names, size=writers, replace=False):
            real, fake = by_writer[w]
            batch += list(rng.choice(real, size=genuine, replace=len(real) < genuine))
            if len(fake):
                batch += list(rng.choice(fake, size=forged, replace=len(fake) < forged))
        yield np.array(batch)
