from math import comb

import numpy as np
import pytest

from signver.datasets import read_dataset, select_writers
from signver.errors import DatasetError
from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED, p1_pairs, p2_references

from .conftest import shared_dataset


def test_p1_counts_and_pairs(synthetic_dataset):
    dataset = read_dataset(synthetic_dataset)
    writers = ["1", "2", "3"]
    trials = p1_pairs(dataset, writers)
    assert trials.count(POSITIVE) == 3 * comb(6, 2)
    assert trials.count(SKILLED) == 3 * 6 * 4
    assert trials.count(RANDOM) == 3 * 6 * 2
    assert len(trials.images) == len(set(trials.images)) == 3 * (6 + 4)  # each image listed once
    assert trials.references.shape == (len(trials.kind), 1)
    # a random negative pairs a writer's genuine with the first genuine (by name) of another writer
    firsts = {dataset.genuine(w)[0].path for w in writers}
    assert all(trials.images[q] in firsts for q in trials.questioned[trials.kind == RANDOM])


def test_p2_references_and_questioned(synthetic_dataset):
    dataset = read_dataset(synthetic_dataset)
    writers = select_writers(dataset, writers="all")
    trials = p2_references(dataset, writers, k=4)
    n = len(writers)
    assert trials.count(POSITIVE) == n * (6 - 4)
    assert trials.count(SKILLED) == n * 4
    assert trials.count(RANDOM) == n * (n - 1)
    first_writer_refs = [trials.images[i] for i in trials.references[0]]
    assert first_writer_refs == [s.path for s in dataset.genuine(writers[0])[:4]]
    for refs, q in zip(trials.references, trials.questioned):
        assert q not in refs  # a reference is never questioned against itself


@pytest.mark.parametrize("protocol", ["p1", "p2"])
def test_each_trial_is_claimed_for_the_writer_of_its_references(synthetic_dataset, protocol):
    dataset = read_dataset(synthetic_dataset)
    writers = ["1", "2", "3"]
    trials = p1_pairs(dataset, writers) if protocol == "p1" else p2_references(dataset, writers, k=4)
    writer_of = {s.path: s.writer for s in dataset.signatures}
    claimed = [writers[c] for c in trials.claimed]
    assert len(claimed) == len(trials.kind) and set(claimed) == set(writers)
    assert all(writer_of[trials.images[r]] == c for refs, c in zip(trials.references, claimed) for r in refs)
    for q, kind, c in zip(trials.questioned, trials.kind, claimed):  # questioned: his own or his forger's, or another's
        assert (writer_of[trials.images[q]] == c) == (kind != RANDOM)


def test_p2_needs_enough_genuine(synthetic_dataset):
    dataset = read_dataset(synthetic_dataset)
    with pytest.raises(DatasetError, match="fewer than 7 genuine"):
        p2_references(dataset, ["1"], k=6)
    with pytest.raises(DatasetError, match="at least 1"):
        p2_references(dataset, ["1"], k=0)


@pytest.mark.data
def test_cedar_p1_counts_match_the_readme():
    dataset = read_dataset(shared_dataset("cedar"))
    trials = p1_pairs(dataset, select_writers(dataset, split="cedar"))
    assert len(trials.writers) == 11
    assert trials.count(POSITIVE) == 3036
    assert trials.count(SKILLED) == 6336
    assert trials.count(RANDOM) == 11 * 24 * 10
    assert np.all(trials.references[:, 0] != trials.questioned)
