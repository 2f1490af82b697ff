import json

import numpy as np
import pytest

from signver.evaluation import evaluate

from .conftest import shared_dataset

REQUIRED_KEYS = {
    "protocol", "dataset", "model", "references", "n_writers", "n_positive", "n_skilled", "n_random",
    "eer_skilled", "eer_random", "auc_skilled", "auc_random", "balanced_accuracy_skilled", "threshold",
    "frr_at_threshold", "far_skilled_at_threshold", "far_random_at_threshold",
}


@pytest.fixture(scope="module")
def p1_run(synthetic_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("p1")
    seen = []
    metrics = evaluate(synthetic_dataset, out, "p1", test_writers="all", progress=lambda done, total: seen.append((done, total)))
    return out, metrics, seen


def test_p1_report_files_and_keys(p1_run):
    out, metrics, _ = p1_run
    written = json.loads((out / "metrics.json").read_text())
    assert REQUIRED_KEYS <= set(written)
    assert written == json.loads(json.dumps(metrics))
    for plot in ("roc.png", "det.png", "distances.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_p1_counts_and_rates(p1_run):
    _, metrics, _ = p1_run
    assert (metrics["n_writers"], metrics["n_positive"], metrics["n_skilled"], metrics["n_random"]) == (8, 8 * 15, 8 * 24, 8 * 6 * 7)
    for key in ("eer_skilled", "eer_random", "frr_at_threshold", "far_skilled_at_threshold", "far_random_at_threshold"):
        assert 0 <= metrics[key] <= 1
    # even ImageNet features tell synthetic writers apart far better than chance
    assert metrics["eer_random"] < 0.25 and metrics["auc_random"] > 0.8


def test_eer_intervals_over_the_writers(p1_run):
    _, metrics, _ = p1_run
    assert set(metrics["intervals_95"]) == {"eer_skilled", "eer_random"}
    for name, (low, high) in metrics["intervals_95"].items():
        assert 0 <= low <= high <= 1
    low, high = metrics["intervals_95"]["eer_skilled"]
    assert low < high  # the writers' forgeries differ, so another eight writers would give another skilled EER


def test_each_image_is_embedded_once(p1_run):
    _, metrics, seen = p1_run
    assert seen[-1] == (metrics["n_images"], metrics["n_images"]) == (8 * 10, 8 * 10)


def test_p2_run(synthetic_dataset, tmp_path):
    metrics = evaluate(synthetic_dataset, tmp_path, "p2", references=3, test_writers="1,2,3,4")
    assert metrics["references"] == 3
    assert (metrics["n_positive"], metrics["n_skilled"], metrics["n_random"]) == (4 * 3, 4 * 4, 4 * 3)


@pytest.mark.data
def test_cedar_p1_end_to_end(tmp_path):
    metrics = evaluate(shared_dataset("cedar"), tmp_path, "p1", split="cedar")
    assert (metrics["n_writers"], metrics["n_positive"], metrics["n_skilled"]) == (11, 3036, 6336)
    assert metrics["auc_skilled"] > 0.6


def test_inspect_writes_tsne_and_distances(synthetic_dataset, tmp_path):
    from signver.evaluation.embedding_map import embedding_map

    written = embedding_map(synthetic_dataset, tmp_path, test_writers="1,2,3,4", max_writers=3)
    assert [p.name for p in written] == ["distances.png", "tsne.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in written)


def test_metrics_json_writes_null_for_numbers_that_could_not_be_computed():
    """Both evaluate commands write metrics.json so: strict JSON, which JSON.parse reads."""
    from signver.evaluation.report import metrics_json

    def refuse(constant):
        raise ValueError(constant)

    text = metrics_json({"eer": 0.1, "far": float("nan"), "nested": {"x": [1.0, np.float64("inf")]}, "n": 3, "name": "m"})
    assert json.loads(text, parse_constant=refuse) == {"eer": 0.1, "far": None, "nested": {"x": [1.0, None]}, "n": 3, "name": "m"}
