import subprocess
import sys

import pytest

from .benchmark_scripts import FOLDER

MODULES = {"common.py", "alt_overlays.py"}  # imported by the scripts, not run
SCRIPTS = sorted(p.name for p in FOLDER.glob("*.py") if p.name not in MODULES)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_script_answers_help_without_doing_anything(script):
    """--help is how a reader finds a script's arguments; taken as a model or file name it once
    failed, or could have rewritten a card."""
    done = subprocess.run([sys.executable, script, "--help"], cwd=FOLDER, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("usage:"), (done.stdout[-500:], done.stderr[-2000:])
