"""Shared fixtures: synthetic data the project makes itself, and the real data when present."""

from pathlib import Path

import pytest

from signver import synth

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def shared_dataset(name: str) -> Path:
    """A dataset folder of ../shared/data, or skip the test when it is absent."""
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} is not here (real data is optional)")
    return path


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """Eight synthetic writers in the folder layout: 6 genuine and 4 forged each."""
    return synth.write_dataset(tmp_path_factory.mktemp("synthetic"), n_writers=8, n_genuine=6, n_forged=4, seed=11)
