"""The writer cross-validation benchmark runs end to end on a tiny extractor and keeps its
folds' heads for the next run."""

import json
import sys

import onnx
import pytest

torch = pytest.importorskip("torch")

from signver.training.networks import SpatialHead, SpatialTail  # noqa: E402
from signver.training.spatial_refit import export_tail, trunk  # noqa: E402
from tests.benchmark_scripts import load  # noqa: E402
from tests.test_spatial_refit import tiny_base, trunk_outputs  # noqa: E402

writer_cv = load("writer_cv")


def with_a_spatial_share(base, share, tmp_path):
    """`base` with a fresh head at `share` (the tiny run may choose 0, which keeps nothing of its head)."""
    pooled, maps = trunk_outputs(base)
    torch.manual_seed(0)
    tail = SpatialTail(SpatialHead([4, 5], maps.shape[1], width=8, channels=4, pool=2).eval(), share)
    path = export_tail(trunk(onnx.load(base)), tail, pooled.shape[1], tuple(maps.shape[1:]), tmp_path / "model" / "tiny-shared.onnx")
    card = json.loads(base.with_suffix(".json").read_text())
    card["name"], card["spatial"]["weight"] = "tiny-shared", share
    path.with_suffix(".json").write_text(json.dumps(card))
    return path


def test_writer_cv_tables_every_share_for_both_kinds_of_writer(synthetic_dataset, tmp_path, monkeypatch, capsys):
    base = with_a_spatial_share(tiny_base(synthetic_dataset, tmp_path), 0.3, tmp_path)
    argv = ["writer_cv.py", "--model", str(base), "--folds", "2", "--data", str(synthetic_dataset.parent), "--cache", str(tmp_path / "cache")]
    monkeypatch.setattr(sys, "argv", argv)
    writer_cv.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cross") or line.startswith("| held")]
    assert len(rows) == 2 * len(writer_cv.SHARES)
    for row in rows:
        cells = [float(x) for x in row.strip("| ").split(" | ")[2:]]
        assert len(cells) == 2 and all(0 <= x <= 100 for x in cells)  # the one synthetic dataset and the mean
    heads = sorted((tmp_path / "cache").glob("heads-*/spatial-seed*-fold*.pt"))
    assert len(heads) == 2
    written = [h.stat().st_mtime_ns for h in heads]
    writer_cv.main()  # again: the folds' heads are loaded, not trained again
    assert [h.stat().st_mtime_ns for h in heads] == written
