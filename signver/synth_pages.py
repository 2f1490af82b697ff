"""Synthetic document pages with signatures and their boxes, so detector tests, demos and a
tiny training run need no real data.

A page is printed text in paragraphs (Pillow with the system's TrueType fonts), form ruling
lines, and 0-3 signatures from `signver.synth.genuine`, each above a signature line with a
printed name below it, as on letters and forms. Printed lines are also drawn by the detector's
training augmentation, to teach it that type near the ink is not part of the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import synth

FONT_DIR = Path("/usr/share/fonts/truetype")
_SYLLABLES = ("an", "ber", "co", "de", "en", "for", "ga", "in", "ment", "no", "or", "per", "que", "re", "sion",
              "ta", "ter", "ul", "ve", "xi", "ya", "ze", "st", "th", "pro", "al", "is", "com", "ly", "ed")
_PAGES = 7  # random stream of the page layouts (synth uses 0-4)


@dataclass(frozen=True)
class SyntheticPage:
    image: np.ndarray  # (H, W) uint8 grey, dark ink on white
    boxes: np.ndarray  # (N, 4) float32 x0, y0, x1, y1 of each signature's ink, in pixels


@lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """The TrueType fonts installed on this machine (none is fine: Pillow's own font is used)."""
    return tuple(sorted(FONT_DIR.rglob("*.ttf"))) if FONT_DIR.is_dir() else ()


@lru_cache(maxsize=64)
def _font(index: int, size: int) -> ImageFont.FreeTypeFont:
    files = font_files()
    if files:
        try:
            return ImageFont.truetype(str(files[index % len(files)]), size)
        except OSError:
            pass  # an unreadable font file: fall back to Pillow's
    return ImageFont.load_default(size)


def words(rng: np.random.Generator, n: int) -> str:
    """`n` pronounceable random words with some capitals, digits and punctuation."""
    out = []
    for _ in range(n):
        word = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(1, 4))))
        kind = rng.random()
        if kind < 0.15:
            word = word.capitalize()
        elif kind < 0.2:
            word = str(int(rng.integers(1, 10_000)))
        elif kind < 0.25:
            word += rng.choice([",", ".", ":", ";"])
        out.append(word)
    return " ".join(out)


def text_line(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A printed line of random words `height` pixels tall (capital height about 0.7 of it),
    at most `width` wide, as a uint8 grey image dark on white."""
    font = _font(int(rng.integers(1 << 16)), max(6, int(height)))
    text = words(rng, max(1, int(width / max(height, 1) / 2.2)))
    canvas = Image.new("L", (max(1, width), int(height * 1.4) + 2), 255)
    ImageDraw.Draw(canvas).text((0, 0), text, fill=int(rng.integers(0, 70)), font=font)
    line = np.asarray(canvas)
    columns = np.flatnonzero((line < 200).any(axis=0))
    return line[:, : columns[-1] + 2] if len(columns) else line[:, :1]


def paste_dark(page: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Overlay `patch` at (x, y) where it is darker, as a second layer of ink; clipped to the page."""
    h, w = patch.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, page.shape[1]), min(y + h, page.shape[0])
    if x1 > x0 and y1 > y0:
        region = page[y0:y1, x0:x1]
        np.minimum(region, patch[y0 - y : y1 - y, x0 - x : x1 - x], out=region)


def signature(rng: np.random.Generator, width: int) -> np.ndarray:
    """A synthetic genuine signature scaled to about `width` pixels wide, cropped to its ink."""
    ink = synth.genuine(int(rng.integers(1 << 30)), int(rng.integers(100)))
    ys, xs = np.nonzero(ink < 200)
    ink = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = width / ink.shape[1]
    return cv2.resize(ink, (max(1, width), max(1, round(ink.shape[0] * scale))), interpolation=cv2.INTER_AREA)


def page(seed: int, size: tuple[int, int] = (640, 640), signatures: int | None = None) -> SyntheticPage:
    """A page of `size` (h, w): paragraphs, ruling lines and `signatures` signatures (0-3 when None)."""
    rng = np.random.default_rng([seed, _PAGES])
    h, w = size
    image = np.full(size, int(rng.integers(232, 256)), np.uint8)
    count = int(rng.integers(0, 4)) if signatures is None else signatures
    line_height = max(7, int(h * rng.uniform(0.014, 0.025)))
    margin = int(w * rng.uniform(0.06, 0.12))
    y, boxes = margin, []
    blocks = ["text"] * int(rng.integers(2, 5)) + ["signature"] * count
    rng.shuffle(blocks)
    for block in blocks:
        if block == "text":
            for _ in range(int(rng.integers(2, 7))):
                if y + 2 * line_height > h - margin:
                    break
                paste_dark(image, text_line(rng, line_height, w - 2 * margin), margin, y)
                y += int(line_height * rng.uniform(1.4, 1.9))
            if rng.random() < 0.3:  # a form's ruling line
                cv2.line(image, (margin, y), (w - margin, y), int(rng.integers(0, 90)), 1)
            y += line_height
        else:
            ink = signature(rng, int(w * rng.uniform(0.15, 0.35)))
            if y + ink.shape[0] + 3 * line_height > h - margin / 2:
                continue  # the page is full
            x = int(rng.integers(margin, max(margin + 1, w - margin - ink.shape[1])))
            paste_dark(image, ink, x, y)
            ys, xs = np.nonzero(ink < 200)
            boxes.append((x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1))
            base = y + int(ink.shape[0] * rng.uniform(0.75, 1.0))
            cv2.line(image, (x - line_height, base), (x + ink.shape[1] + line_height, base), int(rng.integers(0, 90)), 1)
            paste_dark(image, text_line(rng, line_height, ink.shape[1]), x, base + line_height // 2)
            y = base + 3 * line_height
    noise = rng.normal(0, rng.uniform(0, 4), size).astype(np.float32)
    image = np.clip(image + noise, 0, 255).astype(np.uint8)
    return SyntheticPage(image, np.array(boxes, np.float32).reshape(-1, 4))


def write_yolo_split(root: str | Path, n_pages: int, size: tuple[int, int] = (640, 640), seed: int = 0) -> Path:
    """Write `root/images/page_NNN.png` and `root/labels/page_NNN.txt` (YOLO: `0 cx cy w h`, normalised)."""
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    h, w = size
    for k in range(n_pages):
        made = page(seed * 100_003 + k, size)
        cv2.imwrite(str(root / "images" / f"page_{k:03d}.png"), made.image)
        rows = [f"0 {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}" for x0, y0, x1, y1 in made.boxes]
        (root / "labels" / f"page_{k:03d}.txt").write_text("\n".join(rows) + ("\n" if rows else ""))
    return root
