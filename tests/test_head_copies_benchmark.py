"""benchmarks/head_copies.py: both arms cross-validated on the folds asked for, copies only in
the second, and a table of their shares."""

import sys

import pytest
import yaml

torch = pytest.importorskip("torch")

from signver.errors import InputError  # noqa: E402
from signver.training.spatial_refit import cross_validated_grid  # noqa: E402
from tests.benchmark_scripts import load  # noqa: E402
from tests.test_spatial_refit import tiny_base  # noqa: E402

benchmark = load("head_copies")


def test_arms_differ_only_by_their_copies():
    config = {"spatial": {"taps": [5], "seeds": [3, 4], "copies": ["thin"], "original_share": 0.7}, "global": {"taps": [5], "seeds": [1]}}
    arms = benchmark.arm_specs(config, ["augmented-1"], 0.5)
    plain, copied = arms["as normalised"], arms["with copies"]
    assert plain == ({"taps": [5], "seeds": [3]}, {"taps": [5], "seeds": [1]})
    assert copied[0] == {**plain[0], "copies": ["augmented-1"], "original_share": 0.5} and copied[1]["copies"] == ["augmented-1"]


def test_scored_folds_must_exist():
    with pytest.raises(InputError, match="scored folds must be among 0 to 4"):
        cross_validated_grid(None, None, None, {}, 5, (0.0,), None, scored_folds=[5])


def test_the_benchmark_runs_on_a_tiny_extractor(synthetic_dataset, tmp_path, monkeypatch, capsys):
    base = tiny_base(synthetic_dataset, tmp_path)
    config = tmp_path / "heads.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny-heads", "base": str(base),
        "spatial": {"taps": [4, 5], "width": 8, "channels": 4, "pool": 2, "steps": 4, "batch": 8, "warmup": 1, "seeds": [0]},
        "global": {"taps": [4, 5], "width": 8, "dim": 4, "steps": 3, "warmup": 1, "batch": {"writers": 3, "genuine": 2, "forged": 1}, "seeds": [0]},
    }))
    cache = tmp_path / "cache"
    argv = ["head_copies.py", "--config", str(config), "--copies", "augmented-1", "--folds", "0", "--data", str(synthetic_dataset.parent), "--cache", str(cache)]
    monkeypatch.setattr(sys, "argv", argv)
    benchmark.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| as normalised") or line.startswith("| with copies")]
    assert len(rows) == 6 and all(0 <= float(x) <= 100 for row in rows for x in row.strip("| ").split(" | ")[2:])
    assert sorted(p.name for p in (cache / "heads-plain").glob("*.pt")) == ["global-seed0-fold0of5.pt", "spatial-seed0-fold0of5.pt"]
    copied = torch.load(next((cache / "heads-augmented-1-0.5").glob("spatial-*.pt")), weights_only=False)
    assert copied["spec"]["copies"] == ["augmented-1"] and copied["spec"]["original_share"] == 0.5
