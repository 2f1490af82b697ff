import numpy as np
import pytest

from signver.evaluation.metrics import accept_rate, auc, best_balanced_accuracy, eer, named_intervals, writer_bootstrap
from signver.evaluation.report import metrics_for
from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED


def test_perfect_separation():
    genuine, impostor = np.array([0.1, 0.2, 0.3]), np.array([0.6, 0.7])
    rate, threshold = eer(genuine, impostor)
    assert rate == 0 and 0.3 <= threshold < 0.6
    assert auc(genuine, impostor) == 1
    assert best_balanced_accuracy(genuine, impostor)[0] == 1


def test_eer_of_overlapping_gaussians_matches_theory():
    rng = np.random.default_rng(0)
    genuine, impostor = rng.normal(0, 1, 200_000), rng.normal(2, 1, 200_000)
    rate, threshold = eer(genuine, impostor)
    # equal variances: FAR = FRR at the midpoint, rate = Phi(-1) = 0.1587
    assert rate == pytest.approx(0.1587, abs=0.003)
    assert threshold == pytest.approx(1.0, abs=0.02)
    assert auc(genuine, impostor) == pytest.approx(0.9214, abs=0.003)  # Phi(2 / sqrt 2)


def test_reversed_scores_give_high_eer():
    rate, _ = eer(np.array([0.9, 0.8]), np.array([0.1, 0.2]))
    assert rate == 1


def test_writer_bootstrap_draws_whole_writers():
    # ten writers, each with one value shared by all his trials (20 to 60 of them)
    rng = np.random.default_rng(0)
    level = rng.normal(0, 1, 10)
    counts = rng.integers(20, 61, 10)
    values = np.repeat(level, counts)
    writers = np.repeat([f"w{k}" for k in range(10)], counts)
    low, high = writer_bootstrap(writers, lambda i: values[i].mean(), draws=500)
    assert low < values.mean() < high
    # resampling trials as if each were its own writer hides how few writers there are
    trial_low, trial_high = writer_bootstrap(np.arange(len(values)), lambda i: values[i].mean(), draws=500)
    assert high - low > 3 * (trial_high - trial_low)
    # a writer drawn twice brings his trials twice: a draw of 1- and 3-trial writers holds 2 to 6
    sizes = writer_bootstrap(np.array(["a", "b", "b", "b"]), len, draws=200, level=1.0)
    assert list(sizes) == [2, 6]


def test_writer_bootstrap_is_repeatable_and_takes_several_statistics():
    writers = np.repeat(["a", "b", "c"], 4)
    values = np.arange(12.0)
    both = writer_bootstrap(writers, lambda i: np.array([values[i].mean(), 7.0]), draws=100, seed=3)
    assert both.shape == (2, 2) and np.array_equal(both, writer_bootstrap(writers, lambda i: np.array([values[i].mean(), 7.0]), draws=100, seed=3))
    assert list(both[:, 1]) == [7.0, 7.0] and both[0, 0] < both[1, 0]
    # draws where the statistic cannot be computed are left out
    nan_some = writer_bootstrap(writers, lambda i: np.nan if (values[i] >= 8).all() else values[i].min(), draws=100)
    assert np.isfinite(nan_some).all()
    never = writer_bootstrap(writers, lambda i: np.array([values[i].min(), np.nan]), draws=20)
    assert named_intervals(never, ["min", "never"]) == {"min": [float(never[0, 0]), float(never[1, 0])]}


def test_accept_rate_is_inclusive():
    assert accept_rate(np.array([0.1, 0.5, 0.9]), 0.5) == pytest.approx(2 / 3)


def test_metrics_for_reports_rates_at_the_threshold():
    distances = np.array([0.1, 0.2, 0.3, 0.25, 0.8, 0.9, 1.0])
    kind = np.array([POSITIVE, POSITIVE, POSITIVE, SKILLED, SKILLED, RANDOM, RANDOM])
    metrics = metrics_for(distances, kind, threshold=0.26)
    assert metrics["frr_at_threshold"] == pytest.approx(1 / 3)
    assert metrics["far_skilled_at_threshold"] == pytest.approx(1 / 2)
    assert metrics["far_random_at_threshold"] == 0
    assert metrics["eer_random"] == 0 and metrics["auc_random"] == 1
    assert 0 < metrics["eer_skilled"] < 0.5


def test_scaled_fusion_divides_by_the_references_spread():
    from signver.matcher import SPREAD_EXPONENT, fuse, reference_spread, score_trials

    references = np.eye(3, dtype=np.float32)  # three unit vectors, each sqrt(2) from the others
    assert reference_spread(references) == pytest.approx(np.sqrt(2))
    assert reference_spread(references[:1]) == 1  # one reference: nothing to scale by
    per_reference = np.array([0.3, 0.5, 0.4])
    assert fuse(per_reference, "scaled", references) == pytest.approx(0.3 / np.sqrt(2) ** SPREAD_EXPONENT)
    assert fuse(per_reference, "scaled") == pytest.approx(0.3)  # no references given: unscaled
    embeddings = np.vstack([references, [[0.6, 0.8, 0.0]]]).astype(np.float32)
    scores = score_trials(embeddings, np.array([[0, 1, 2]]), np.array([3]), "scaled")
    nearest = np.linalg.norm(embeddings[3] - embeddings[1])
    assert scores[0] == pytest.approx(nearest / np.sqrt(2) ** SPREAD_EXPONENT, rel=1e-5)


def test_scores_and_spreads_are_the_same_in_chunks_and_by_products():
    from signver.matcher import FUSIONS, distances, reference_spread, score_trials

    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(40, 16)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    references, questioned = rng.integers(0, 40, (300, 5)), rng.integers(0, 40, 300)
    sets = embeddings[references]
    direct = distances(sets[:, :, None, :], sets[:, None, :, :]).sum(axis=(1, 2)) / 20  # every ordered pair of the 5
    assert np.allclose(reference_spread(sets), direct, atol=1e-5)
    for fusion in FUSIONS:
        assert np.allclose(score_trials(embeddings, references, questioned, fusion, chunk=7), score_trials(embeddings, references, questioned, fusion), atol=1e-6)
    assert score_trials(embeddings, references[:0], questioned[:0]).shape == (0,)
