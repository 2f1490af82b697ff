"""The evaluation protocols of ../shared/data/README.md, as lists of trials.

A trial compares one questioned signature with K reference signatures (K = 1 for P1 pairs).
Images are listed once, so each is embedded once however many trials use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np

from ..datasets import Dataset
from ..errors import DatasetError

POSITIVE, SKILLED, RANDOM = 0, 1, 2
KIND_NAMES = {POSITIVE: "genuine", SKILLED: "skilled", RANDOM: "random"}


@dataclass
class Trials:
    images: list[Path]
    references: np.ndarray  # (n_trials, K) indices into images
    questioned: np.ndarray  # (n_trials,) indices into images
    kind: np.ndarray  # (n_trials,) POSITIVE, SKILLED or RANDOM
    writers: list[str]
    claimed: np.ndarray  # (n_trials,) index into writers: whose references each trial is checked against

    def count(self, kind: int) -> int:
        return int(np.count_nonzero(self.kind == kind))


class _TrialList:
    """Collects trials, numbering each image the first time it appears."""

    def __init__(self) -> None:
        self.index: dict[Path, int] = {}
        self.rows: list[tuple[list[int], int, int, int]] = []

    def id(self, path: Path) -> int:
        return self.index.setdefault(path, len(self.index))

    def add(self, references: list[Path], questioned: Path, kind: int, claimed: int) -> None:
        self.rows.append(([self.id(p) for p in references], self.id(questioned), kind, claimed))

    def build(self, writers: list[str]) -> Trials:
        return Trials(
            images=list(self.index),
            references=np.array([r for r, _, _, _ in self.rows], dtype=np.int64),
            questioned=np.array([q for _, q, _, _ in self.rows], dtype=np.int64),
            kind=np.array([k for _, _, k, _ in self.rows], dtype=np.int8),
            writers=writers,
            claimed=np.array([c for _, _, _, c in self.rows], dtype=np.int64),
        )


def _genuine_paths(dataset: Dataset, writers: list[str], minimum: int) -> dict[str, list[Path]]:
    genuine = {w: [s.path for s in dataset.genuine(w)] for w in writers}
    short = [w for w, paths in genuine.items() if len(paths) < minimum]
    if short:
        raise DatasetError(f"writers with fewer than {minimum} genuine signatures: {', '.join(short)}")
    return genuine


def p1_pairs(dataset: Dataset, writers: list[str]) -> Trials:
    """P1: all genuine pairs, all (genuine, forged) pairs, and each genuine against the first
    genuine of every other test writer."""
    genuine = _genuine_paths(dataset, writers, minimum=2)
    trials = _TrialList()
    for w, writer in enumerate(writers):
        for a, b in combinations(genuine[writer], 2):
            trials.add([a], b, POSITIVE, w)
        forged = [s.path for s in dataset.forged(writer)]
        for a in genuine[writer]:
            for questioned in forged:
                trials.add([a], questioned, SKILLED, w)
        for a in genuine[writer]:
            for other in writers:
                if other != writer:
                    trials.add([a], genuine[other][0], RANDOM, w)
    return trials.build(writers)


def p2_references(dataset: Dataset, writers: list[str], k: int) -> Trials:
    """P2: the first K genuine are the references; the rest of the genuine, all forgeries and
    the first genuine of every other test writer are questioned against them."""
    if k < 1:
        raise DatasetError(f"the number of references must be at least 1, got {k}")
    genuine = _genuine_paths(dataset, writers, minimum=k + 1)
    trials = _TrialList()
    for w, writer in enumerate(writers):
        references = genuine[writer][:k]
        for questioned in genuine[writer][k:]:
            trials.add(references, questioned, POSITIVE, w)
        for forged in dataset.forged(writer):
            trials.add(references, forged.path, SKILLED, w)
        for other in writers:
            if other != writer:
                trials.add(references, genuine[other][0], RANDOM, w)
    return trials.build(writers)
