"""Reading a training config (torch-free, so the command line can check a file before any
training module loads)."""

from __future__ import annotations

import difflib
import tempfile
from pathlib import Path

from ..errors import InputError


# settings that count something, wherever they appear: a whole number of at least 1
COUNTS = {"steps", "epochs", "batch", "eval_every", "threads", "validation_pairs", "folds", "width", "channels",
          "dim", "pool", "copies", "passes", "cache_size", "max_pixels", "window", "writers", "genuine", "hidden", "size", "blocks"}
AT_LEAST_ZERO = {"lr", "weight_decay", "warmup", "seed", "workers",  # workers 0: load data in the training process
                 "low", "high", "cluster_radius", "cluster_fraction", "tone_margin", "grow", "rim",  # a cleaner's mask, read again from its card
                 "nms_iou", "box_weight", "augment_strength", "candidate_floor", "alpha", "pad", "frozen_blocks", "log_width"}


# every top-level setting some kind of run reads (a test keeps this in step with configs/): an
# unknown key close to one of these is a misspelling, which would otherwise be ignored in silence
KNOWN_SETTINGS = frozenset({
    "adapt_frozen_bn_steps", "alpha", "augment_strength", "autocast", "base", "batch", "blocks", "box_weight", "cache_size",
    "calibration_crops", "candidate_floor", "clean_fraction", "cleaner", "copies", "data", "description", "detector", "device",
    "elements", "epochs", "eval_every", "expand", "fade_probability", "float_layers", "flourish_fraction", "folds", "fonts",
    "fuse_imagenet", "global", "global_shares", "hand_stroke_fraction", "hidden", "init", "init_from", "ink_stretch", "input",
    "jitter", "jitters", "loss", "loss_beta", "lr", "mask", "max_f_loss", "max_pixels", "members", "min_fonts", "mirror", "name",
    "network", "nms_iou", "out", "pad", "passes", "patch", "run_dir", "seed", "serve_input", "share_chosen_on", "shares",
    "spatial", "steps", "synthetic_fraction", "threads", "threshold_data", "validation", "validation_pairs", "warmup",
    "weight_decay", "window", "workers",
})


# the settings each part of a config may hold (a mapping, or each mapping of a list): a key
# misspelt inside one was read as missing, its default used in silence; `split` so misspelt
# trained on a dataset's test writers
BATCH = frozenset({"writers", "genuine", "forged"})
PART_SETTINGS = {
    "data": frozenset({"path", "split", "holdout", "weight"}),
    "threshold_data": frozenset({"path", "split"}),
    "batch": BATCH,
    "spatial": frozenset({"batch", "channels", "copies", "forged_pairs", "lr", "original_share", "pool", "same_pairs", "seed", "seeds",
                          "steps", "taps", "warmup", "weight_decay", "width"}),
    "global": frozenset({"batch", "copies", "dim", "loss", "lr", "original_share", "precision", "seed", "seeds", "steps", "taps",
                         "warmup", "weight_decay", "width"}),
    "global.batch": BATCH,
    "jitter": frozenset({"centre_x", "centre_y", "log_height", "log_width"}),
}
LISTS = {"data", "threshold_data"}  # lists of datasets, each a mapping of these settings


def _check_parts(config: dict, path: Path) -> None:
    for part, known in PART_SETTINGS.items():
        value = config
        for key in part.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if part in LISTS and not isinstance(value, list):
            continue  # a detector's data: its folders by role (train, valid)
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            if not isinstance(item, dict):
                continue  # a batch given as one number: checked where it is read
            for key in item:
                if key not in known:
                    near = difflib.get_close_matches(str(key), known, n=2, cutoff=0.6)
                    where = f"{part} [{i}]" if isinstance(value, list) else part
                    raise InputError(f"config {path}: {where} has no setting {key!r}" + (f"; did you mean {' or '.join(map(repr, near))}?"
                                     if near else f"; it takes {', '.join(sorted(known))}"))


class Config(dict):
    """A config mapping whose missing settings are errors naming the setting and the file,
    where a KeyError would be a traceback."""

    def __init__(self, data: dict, where: str):
        super().__init__({key: _wrapped(value, f"{where}, {key}") for key, value in data.items()})
        self.where = where

    def __missing__(self, key):
        raise InputError(f"{self.where} has no setting {key!r}; the configs/ folder has an example of each kind")


def _wrapped(value, where: str):
    if isinstance(value, dict):
        return Config(value, where)
    if isinstance(value, list):
        return [_wrapped(item, f"{where} [{i}]") for i, item in enumerate(value)]
    return value


def _check_numbers(value, where: str) -> None:
    """Counts and rates anywhere in the config are numbers in their range (steps: many, or 0,
    would otherwise fail deep inside training, or after it)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)):  # a count given per part (batch: {writers: 32, ...}; channels: [24, 48])
                _check_numbers(item, f"{where}, {key}")
                continue
            if key in COUNTS and (isinstance(item, bool) or not isinstance(item, int) or item < 1):
                raise InputError(f"{where}: {key} must be a whole number of at least 1, not {item!r}")
            if key in AT_LEAST_ZERO and (isinstance(item, bool) or not isinstance(item, (int, float)) or not item >= 0):
                raise InputError(f"{where}: {key} must be a number of at least 0, not {item!r}")
    elif isinstance(value, list):
        for item in value:
            _check_numbers(item, where)


def read_config(path: Path, needs: tuple[str, ...] = ()) -> dict:
    """A training config: a YAML mapping, or a clear error naming what is wrong with the file.
    `needs`: settings checked now that the run would otherwise read only at its end, after the
    hours of training and after its ONNX file had replaced the old one."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InputError(f"cannot read config {path}: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise InputError(f"config {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    except yaml.YAMLError as error:
        raise InputError(f"config {path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise InputError(f"config {path} must be a YAML mapping of settings (name, data, steps, ...), not {type(config).__name__}")
    data = config.get("data")
    if data is not None and not (isinstance(data, list) and all(isinstance(d, dict) and "path" in d for d in data)
                                 or isinstance(data, dict) and all(isinstance(d, str) for d in data.values())):
        raise InputError(f"config {path}: data must be a list of datasets, each with a path (or, for a detector, "
                         f"folders by role: train, valid), not {data!r}")
    for key in config:
        if key not in KNOWN_SETTINGS:  # read by no run: a misspelling, or a setting of another tool, ignored in silence
            near = difflib.get_close_matches(str(key), KNOWN_SETTINGS, n=3, cutoff=0.6)
            raise InputError(f"config {path}: unknown setting {key!r}" + (f"; did you mean {' or '.join(map(repr, near))}?" if near else
                                                                           "; the configs/ folder has an example of each kind"))
    _check_parts(config, path)
    for key in ("input", "serve_input"):
        size = config.get(key)
        if size is not None and not (isinstance(size, dict) and ({"height", "width"} <= set(size) or "size" in size)):
            raise InputError(f"config {path}: {key} must give a height and a width in pixels ({key}: {{height: 128, width: 256}}), "
                             f"or a detector's square side ({key}: {{size: 512}}), not {size!r}")
    _check_numbers(config, f"config {path}")
    missing = [key for key in needs if config.get(key) in (None, "")]
    if missing:
        raise InputError(f"config {path} has no setting {', '.join(map(repr, missing))}; the configs/ folder has an example of each kind")
    for key in ("out", "run_dir"):  # folders the run writes into: a file of that name, or no right to write, would fail it at the end
        if key in config and Path(str(config[key])).is_file():
            raise InputError(f"config {path}: {key} {config[key]} is a file; give a folder")
        if key in config and not _may_write(Path(str(config[key]))):
            raise InputError(f"config {path}: {key} {config[key]} cannot be written here; give a folder you may write to")
    return Config(config, f"config {path}")


def _may_write(folder: Path) -> bool:
    """Whether this process may write in `folder`, or make it: a file can be made (and is
    removed at once) in its nearest existing folder. Tried, not asked: root passes os.access
    for folders such as /proc that take no file."""
    folder = folder.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
