"""Detection splits in YOLO format: `images/<name>.<ext>` with `labels/<name>.txt` beside them,
one `class cx cy w h` line per box, normalised to [0, 1]; an empty label file is a page with
no signature. Read by evaluation and training alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"}


@dataclass(frozen=True)
class LabelledPage:
    image: Path
    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1 as fractions of the page's width and height


def read_split(split_dir: str | Path) -> list[LabelledPage]:
    """Every image of the split with its boxes, sorted by name. An image without a label file
    is an error, not an empty page: a missing file must not pass as 'no signature'."""
    root = Path(split_dir)
    images_dir, labels_dir = root / "images", root / "labels"
    if not images_dir.is_dir() or not labels_dir.is_dir():
        raise DatasetError(f"{root} is not a YOLO split: it needs images/ and labels/ folders")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{images_dir} holds no images")
    pages = []
    for image in images:
        label = labels_dir / f"{image.stem}.txt"
        if not label.is_file():
            raise DatasetError(f"no label file {label} for {image.name}")
        pages.append(LabelledPage(image, parse_labels(label)))
    return pages


SLACK = 1e-3  # how far past the page a normalised number may round


def parse_labels(label: Path) -> np.ndarray:
    """A label file's boxes. A line that is not a whole class number and four numbers within the
    page (a centre on it, a size above 0 and at most the page's) is an error naming its line:
    NaN or a box off the page would silently never match, and change recall."""
    try:
        text = label.read_text(encoding="utf-8-sig")  # a byte-order mark, as Windows editors write, is no part of line 1
    except UnicodeDecodeError:
        raise DatasetError(f"{label} is not a text file of YOLO labels") from None
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 5:
                raise ValueError
            if not float(fields[0]).is_integer():  # 0 or 0.0, as some tools write it
                raise ValueError
            cx, cy, w, h = (float(v) for v in fields[1:])
            if not (-SLACK <= cx <= 1 + SLACK and -SLACK <= cy <= 1 + SLACK and 0 < w <= 1 + SLACK and 0 < h <= 1 + SLACK):
                raise ValueError  # NaN fails every comparison
        except ValueError:
            raise DatasetError(f"{label}:{number}: expected 'class cx cy w h' (a whole class number, the rest within 0 to 1, "
                               f"width and height above 0), got {line!r}") from None
        rows.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
    return np.clip(np.array(rows, np.float32).reshape(-1, 4), 0, 1)


def scaled(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Fractional boxes in pixels of a `width` x `height` page."""
    return boxes * np.array([width, height, width, height], np.float32)
