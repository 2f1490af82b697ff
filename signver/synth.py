"""Procedural synthetic signatures, so tests and the demo run without any external data.

A writer is an integer seed. It owns a style template: 1-3 cursive word-like components made
of letter primitives (humps, cups, small loops, ascender and descender loops) joined by a
Catmull-Rom spline, an optional underline flourish, a slant, pen width and size. Genuine samples
perturb that template slightly, as one person's repeated signatures vary; forgeries copy the
layout but redraw the letters less faithfully, with tremor and a heavier, more even pen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

_TEMPLATE, _GENUINE, _FORGERY, _DATASET, _PAIRS = range(5)  # independent random streams
_SUPERSAMPLE = 2  # drawn at 2x and area-downsampled, so pen widths need not be whole pixels
_MARGIN = 10  # paper kept between the ink and the image border, plus the pen width

# Control points after the pen's entry point (0, 0): baseline y=0, x-height 1, y up.
_LETTERS = {
    "hump": [(0.15, 0.8), (0.35, 1.0), (0.5, 0.6), (0.55, 0.0)],
    "cup": [(0.2, 1.0), (0.25, 0.2), (0.4, 0.0), (0.6, 0.3)],
    "e": [(0.35, 0.55), (0.45, 0.85), (0.35, 0.95), (0.25, 0.7), (0.3, 0.15), (0.55, 0.05)],
    "o": [(0.45, 0.9), (0.25, 1.0), (0.1, 0.5), (0.25, 0.0), (0.45, 0.5), (0.45, 0.95),
          (0.5, 0.1), (0.7, 0.2)],
    "l": [(0.35, 1.4), (0.5, 2.3), (0.4, 2.6), (0.25, 2.3), (0.25, 1.0), (0.3, 0.1), (0.5, 0.0)],
    "y": [(0.15, 0.9), (0.2, 0.2), (0.35, 0.1), (0.5, 0.9), (0.45, -0.6), (0.3, -1.4),
          (0.15, -1.3), (0.3, -0.5), (0.7, 0.2)],
}
_LETTER_NAMES = list(_LETTERS)
_LETTER_FREQ = np.array([0.26, 0.2, 0.16, 0.14, 0.14, 0.1])
_PAIR_LABELS = ("genuine", "skilled forgery", "different writer")


class _Variation(NamedTuple):
    """How far one sample strays from the template (lengths in x-heights unless noted)."""

    jitter: float  # control point noise: letter shape changes
    proportion: float  # log-sd of each letter's width and height
    rotation: float  # degrees, uniform +-
    scale: float  # relative, uniform +-
    shear: float
    slant: float
    wave: float  # baseline waviness amplitude
    tremor: float  # pixels of high-frequency wobble along the stroke
    width: tuple[float, float]  # pen width factor range
    pressure: float  # log-sd of the pen width between components
    ink: float  # shift of the ink grey level (negative: darker)


_EXACT = _Variation(0, 0, 0, 0, 0, 0, 0, 0, (1, 1), 0, 0)  # the template itself
_GENUINE_VAR = _Variation(jitter=0.03, proportion=0.04, rotation=4.0, scale=0.08, shear=0.04, slant=0.03,
                          wave=0.06, tremor=0.0, width=(0.85, 1.15), pressure=0.08, ink=0.0)
_FORGERY_VAR = _Variation(jitter=0.11, proportion=0.13, rotation=3.0, scale=0.10, shear=0.05, slant=0.10,
                          wave=0.05, tremor=0.7, width=(1.15, 1.4), pressure=0.0, ink=-10.0)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


@dataclass(frozen=True)
class Writer:
    """One writer's style template, fully determined by `seed` (a non-negative int)."""

    seed: int
    words: tuple = field(init=False, repr=False, compare=False)  # ((x0, y0), letter arrays)
    flourish: tuple | None = field(init=False, repr=False, compare=False)
    slant: float = field(init=False, repr=False, compare=False)
    size: float = field(init=False, repr=False, compare=False)  # x-height in pixels
    pen: float = field(init=False, repr=False, compare=False)  # pen width in pixels
    ink: float = field(init=False, repr=False, compare=False)
    shape: tuple[int, int] = field(init=False, repr=False, compare=False)  # canvas (h, w)

    def __post_init__(self) -> None:
        rng = _rng(self.seed, _TEMPLATE)
        aspect, x = rng.uniform(1.0, 1.7), 0.0
        words = []
        n_words = int(rng.integers(1, 4))
        for i in range(n_words):  # a leading initial only where a longer word follows
            initial = i == 0 and n_words > 1 and rng.random() < 0.4
            n = int(rng.integers(1, 3) if initial else rng.integers(4, 9))
            words.append(((x, rng.normal(0, 0.15)), _make_letters(rng, n, aspect)))
            x += sum(p[-1, 0] for p in words[-1][1]) + rng.uniform(0.6, 1.4)
        put = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731 (frozen dataclass)
        put("words", tuple(words))
        put("flourish", tuple(rng.uniform((0.2, 0.9, -0.4), (1.0, 1.6, 0.6))) if rng.random() < 0.6 else None)
        put("slant", float(rng.uniform(-0.1, 0.5)))
        put("ink", float(rng.uniform(15, 50)))
        span = np.ptp(np.vstack([_to_image_axes(c, self.slant) for c in _trajectories(self, rng, _EXACT)]), axis=0)
        size = float(min(rng.uniform(260, 540) / span[0], rng.uniform(110, 220) / span[1]))
        put("size", size)
        put("pen", float(np.clip(size * rng.uniform(0.05, 0.09), 1.5, 4.5)))
        room = span * size * 1.15 + 2 * (_MARGIN + self.pen)
        put("shape", (max(150, int(room[1])), max(300, int(room[0]))))


def _make_letters(rng: np.random.Generator, n: int, aspect: float) -> tuple[np.ndarray, ...]:
    """A word: letter primitives reshaped by this writer's hand; the first one is a capital."""
    letters = []
    for i in range(n):
        p = np.array(_LETTERS[_LETTER_NAMES[rng.choice(6, p=_LETTER_FREQ)]])
        p = (p + rng.normal(0, 0.07, p.shape)) * (aspect * rng.lognormal(0, 0.1), 1.0)
        if i == 0:  # capital: taller and wider
            p *= (rng.uniform(1.5, 2.2), rng.uniform(2.4, 3.2) / max(p[:, 1].max(), 1.0))
        letters.append(p)
    return tuple(letters)


def _to_image_axes(points: np.ndarray, slant: float) -> np.ndarray:
    """Slant and flip to image orientation (y down), still in x-height units."""
    return np.column_stack([points[:, 0] + slant * points[:, 1], -points[:, 1]])


def _spline(points: np.ndarray, per_segment: int = 8) -> np.ndarray:
    """Catmull-Rom curve through the control points: a smooth, connected pen trajectory."""
    q = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0, 1, per_segment, endpoint=False)[:, None]
    basis = np.hstack([np.ones_like(t), t, t**2, t**3]) @ (
        0.5 * np.array([[0, 2, 0, 0], [-1, 0, 1, 0], [2, -5, 4, -1], [-1, 3, -3, 1]]))
    segments = np.stack([q[i:i + len(points) - 1] for i in range(4)], axis=1)
    return np.vstack([np.einsum("sk,nkd->nsd", basis, segments).reshape(-1, 2), points[-1:]])


def _trajectories(w: Writer, rng: np.random.Generator, var: _Variation) -> list[np.ndarray]:
    """One dense trajectory per component (x-height units, y up), perturbed by `var`."""
    strokes = []
    for (x0, y0), letters in w.words:
        parts, x = [np.zeros((1, 2))], 0.0
        for p in letters:
            p = (p + rng.normal(0, var.jitter, p.shape)) * rng.lognormal(0, var.proportion, 2)
            parts.append(p + (x, 0.0))
            x += p[-1, 0]
        strokes.append(np.vstack(parts) + (x0, y0) + rng.normal(0, var.jitter, 2))
    if w.flourish:  # swing back under the whole signature from the last letter
        reach, depth, lift = np.array(w.flourish) * rng.lognormal(0, var.proportion, 3)
        end, start = strokes[-1][-1, 0], strokes[0][0, 0]
        swing = [(end + reach, -0.5 * depth), ((end + start) / 2, -depth - 0.2), (start - reach, -depth + lift)]
        strokes[-1] = np.vstack([strokes[-1], np.array(swing) + rng.normal(0, var.jitter, (3, 2))])
    curves = [_spline(s) for s in strokes]
    phase, period = rng.uniform(0, 2 * np.pi), rng.uniform(4, 10)
    for c in curves:  # low-frequency baseline drift
        c[:, 1] += var.wave * np.sin(2 * np.pi * c[:, 0] / period + phase)
    return curves


def _affine(rng: np.random.Generator, var: _Variation) -> np.ndarray:
    a = np.deg2rad(rng.uniform(-var.rotation, var.rotation))
    rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    shear = np.array([[1.0, rng.normal(0, var.shear)], [0.0, 1.0]])
    return (1 + rng.uniform(-var.scale, var.scale)) * rotation @ shear


def _tremor(curve: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """Wobble with a wavelength of a few pixels, interpolated from sparse random knots."""
    knots = np.arange(0, len(curve) + 4, 4)
    t = np.arange(len(curve))
    noise = rng.normal(0, amplitude, (len(knots), 2))
    return curve + np.column_stack([np.interp(t, knots, noise[:, 0]), np.interp(t, knots, noise[:, 1])])


def _render(w: Writer, rng: np.random.Generator, var: _Variation, noise: float) -> np.ndarray:
    """Draw one sample: perturb, place inside the margin, draw each component once, add paper."""
    slant = w.slant + rng.normal(0, var.slant)
    curves = [_to_image_axes(c, slant) * w.size for c in _trajectories(w, rng, var)]
    centre = np.vstack(curves).mean(axis=0)
    matrix = _affine(rng, var)
    curves = [_tremor((c - centre) @ matrix.T, rng, var.tremor) for c in curves]
    pen = w.pen * rng.uniform(*var.width)
    canvas_h, canvas_w = w.shape
    lo, hi = np.vstack(curves).min(axis=0), np.vstack(curves).max(axis=0)
    room = np.array([canvas_w, canvas_h]) - 2 * (_MARGIN + pen)
    fit = min(1.0, *(room / (hi - lo)))  # shrink a sample that grew too large for the canvas
    slack = (room - (hi - lo) * fit) / 2
    shift = np.clip(rng.normal(0, 0.03 * room), -slack, slack)  # slight position change
    offset = np.array([canvas_w, canvas_h]) / 2 - (lo + hi) / 2 * fit + shift
    ink = np.zeros((canvas_h * _SUPERSAMPLE, canvas_w * _SUPERSAMPLE), np.uint8)
    for c in curves:
        width = max(1, round(pen * rng.lognormal(0, var.pressure) * _SUPERSAMPLE))
        fixed = np.round((c * fit + offset) * _SUPERSAMPLE * 8).astype(np.int32)  # 3 fractional bits
        cv2.polylines(ink, [fixed], False, 255, width, cv2.LINE_AA, shift=3)
    alpha = cv2.resize(ink, (canvas_w, canvas_h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    paper = rng.uniform(240, 250) + noise * rng.standard_normal((canvas_h, canvas_w), np.float32)
    tone = np.clip(w.ink + var.ink + rng.uniform(-12, 12), 0, 70)
    return np.clip(paper - alpha * (paper - tone), 0, 255).astype(np.uint8)


def _writer(writer_or_seed: Writer | int) -> Writer:
    return writer_or_seed if isinstance(writer_or_seed, Writer) else Writer(int(writer_or_seed))


def genuine(writer_or_seed: Writer | int, sample: int, noise: float = 2.0) -> np.ndarray:
    """A genuine signature: uint8 grey, dark ink on white; same (writer, sample) -> same image."""
    w = _writer(writer_or_seed)
    return _render(w, _rng(w.seed, _GENUINE, sample), _GENUINE_VAR, noise)


def forgery(writer_or_seed: Writer | int, sample: int, noise: float = 2.0) -> np.ndarray:
    """A skilled forgery of the writer's signature: same layout, looser shapes, tremor, heavy pen."""
    w = _writer(writer_or_seed)
    return _render(w, _rng(w.seed, _FORGERY, sample), _FORGERY_VAR, noise)


def _writer_seeds(seed: int, stream: int, n: int) -> list[int]:
    return [int(s) for s in np.random.SeedSequence([seed, stream]).generate_state(n)]


def write_dataset(root: str | Path, n_writers: int = 5, n_genuine: int = 6, n_forged: int = 4,
                  seed: int = 0) -> Path:
    """Write `root/<writer>/genuine/<writer>_g_NN.png` and `.../forged/<writer>_f_NN.png`."""
    root = Path(root)
    for i, wseed in enumerate(_writer_seeds(seed, _DATASET, n_writers), start=1):
        w, name = Writer(wseed), str(i)
        for kind, tag, make, count in (("genuine", "g", genuine, n_genuine), ("forged", "f", forgery, n_forged)):
            folder = root / name / kind
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                cv2.imwrite(str(folder / f"{name}_{tag}_{k + 1:02d}.png"), make(w, k))
    return root


def pair_examples(n: int = 3, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """`n` labelled pairs for the demo, cycling genuine / skilled forgery / different writer."""
    seeds = _writer_seeds(seed, _PAIRS, 2 * n)
    pairs = []
    for i in range(n):
        w, kind = Writer(seeds[i]), i % 3
        other = genuine(w, 1) if kind == 0 else forgery(w, 0) if kind == 1 else genuine(seeds[n + i], 0)
        pairs.append((_PAIR_LABELS[kind], genuine(w, 0), other))
    return pairs
