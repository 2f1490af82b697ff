"""The load benchmark runs end to end (1 s per route, 4 clients; the recorded run is 60 s, 32 clients)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_load.py"


def test_load_benchmark_short_run(tmp_path):
    out = tmp_path / "load.json"
    done = subprocess.run([sys.executable, str(BENCH), "--duration", "1", "--clients", "4", "--detector", "stand-in",
                           "--json", str(out)], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    for route in ("verify", "documents_verify"):
        assert results[route]["errors"] == 0 and results[route]["requests"] > 0
        assert 0 < results[route]["p50_ms"] <= results[route]["p99_ms"]
    assert results["document_signatures_found"] == 2 and results["document_decisions"] == [True, False]
