"""Reading a training config (torch-free, so the command line can check a file before any
training module loads)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def read_config(path: Path) -> dict:
    """A training config: a YAML mapping, or a clear error naming what is wrong with the file."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text())
    except OSError as error:
        raise InputError(f"cannot read config {path}: {error.strerror or error}") from None
    except yaml.YAMLError as error:
        raise InputError(f"config {path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise InputError(f"config {path} must be a YAML mapping of settings (name, data, steps, ...), not {type(config).__name__}")
    return config
