"""Arrays a run keeps in its folder (decoded, resized images), stamped with the settings that made
them, so that a run whose config changed reads its data again instead of training on the old."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

MADE_FROM = "made_from"  # the array holding the stamp


def cached_arrays(cache: Path | None, made_from: dict, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """What `build` makes, read from `cache` when the cache was made from the same `made_from`
    (the data, writers and sizes the arrays depend on), else built and written there. A cache of
    other settings, an older one without a stamp, or one cut short is made again. Written
    through a temporary file, so a run stopped mid-write leaves no cut cache behind."""
    stamp = json.dumps(made_from, sort_keys=True, default=str)
    if cache is not None and cache.is_file():
        try:
            with np.load(cache) as data:
                if MADE_FROM in data.files and str(data[MADE_FROM]) == stamp:
                    return {key: data[key] for key in data.files if key != MADE_FROM}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
            pass  # cut short or not a cache: made again
    arrays = build()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_name(cache.stem + ".partial.npz")
        np.savez(partial, **arrays, **{MADE_FROM: np.array(stamp)})
        os.replace(partial, cache)
    return arrays
