"""Remove printed text, ruling lines, stamps and scan noise around a signature's ink.

    cleaned = signver.clean("crop.png")    # uint8 grey, ink dark on white, same size as the input

A small network (ONNX, model card `kind: cleaner` in signver/models/) gives every pixel the
probability that it is signature ink. The crop is shrunk to the network's working resolution
(area at most the card's `max_pixels`; small crops are never enlarged), padded with white to a
multiple of 16, and the probability map is resized back to the original size. The output keeps
the original pixels where the map says ink and turns everything else white:

    out = 255 - m * (255 - grey),   m = clip((p - low) / (high - low), 0, 1)

so a clean signature's ink passes unchanged, in its own tone, which is what the extractor was
trained on, and its paper turns white. A model with a tone output (card `network.tone`)
also predicts the darkness `t` the clean ink had; the kept ink's darkness is then corrected by
how far `t` is from the crop's darkness at the working resolution, `s`, less a margin `e`
(the card's `mask.tone_margin`) that leaves the model's small errors out:

    out = 255 - m * 255 * clip(1 - grey / 255 + c, 0, 1),   c = sign(t - s) * max(|t - s| - e, 0)

since scan damage (bitonal thresholds, noise, faded ink) changes the ink's tone, which the extractor
reads; where the model agrees with the crop, the ink is left as it was. A bitonal scan keeps no tone
at all: its strokes are solid black, and the shift, made at the working resolution where a thin
stroke's darkness is spread over the paper beside it, barely moves them. With the card's
`mask.tone_gain: saturated`, a crop whose kept ink is mostly saturated at full resolution
(`saturated_ink`) has its ink's darkness multiplied instead by one gain, g = sum(t) / sum(s) over
the kept pixels at least INK_FLOOR dark at the working resolution, held within TONE_GAIN_RANGE
(`tone_gain`; no margin); the card's `mask.tone_gain_fit` makes it scale * g ** power first, since
on such crops the head's gain shrinks toward the middle of what it was trained on
(`signver.training.tone_gain_fit` fits the two numbers to training writers). Grey ink, which still
shows its tone, keeps the shift; `tone_gain: all` uses the gain for every crop, so every kept pixel
changes. With the card's `mask.paper`, darkness is measured against the paper under the ink rather
than against white (`paper_level`: a plane fitted to the paper's brightness), so grey or unevenly
lit paper adds nothing to the kept strokes; `grey / 255` above becomes `grey / paper`. Before that,
`m` is pruned (`Cleaner.keep_map`): faint pieces that never become confident, and small clusters
away from the signature, are dropped, since stray ink far from the signature is what misleads the
normaliser's crop; then it is widened by `mask.grow` pixels (working resolution). With the card's
`mask.untouched_below`, a crop whose keep map drops less ink than that share of the ink it keeps
(`dropped_ink_share`: about 0 for a clean scan, where only paper goes) comes back as it came, pixel
for pixel: it holds nothing to remove, and any change to a clean signature's ink costs verification.
For that share and for the paper, the kept strokes count with a rim of `mask.rim` pixels (working
resolution; default `grow`): a stroke's faint edge is neither paper nor dropped ink, though the
output may leave it out (`grow: 0`) so that less of the clutter touching the strokes is kept. The
card's `mask` holds these settings, chosen on held-out training writers. Inference never imports
torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import NamedTuple

import cv2
import numpy as np

from .errors import BlankImageError, InputError, ModelError
from .images import SourceLike, load_image
from .models import ModelCard, inference_session, load_card, made_once
from .normalize import ink_mask

DEFAULT_CLEANER = "cleaner-lite0-crossing-int8"
MULTIPLE = 16
THIN_LIMIT = 4  # a crop whose padded working copy exceeds this many times max_pixels is a sliver, not a signature
# Whether single signatures (verify, embed, check, identify, evaluate) are cleaned when the caller
# passes clean=None. Measured (docs/benchmarks.md, "Cleaner"): on clean test scans cleaning changes
# P1 skilled EER by +0.11 points on CEDAR and +0.04 on Bengali, since it leaves most of them as they
# came, so it buys little there, and it costs 2-26 ms per image; on cluttered crops it recovers
# 66-98 % of the skilled EER lost. So: off
# for signature images, on for crops cut from documents (DEFAULT_CLEAN_DOCUMENT_CROPS, for the
# detect -> crop -> verify pipeline), and --clean / clean=True whenever a signature image carries
# print, lines or stamps.
DEFAULT_CLEAN = False
DEFAULT_CLEAN_DOCUMENT_CROPS = True


TONE_GAIN_MODES = ("none", "saturated", "all")  # mask.tone_gain: which crops' ink is scaled by one gain instead of shifted
MASK_SETTINGS = {"low", "high", "seed", "cluster_radius", "cluster_fraction", "grow", "rim", "tone_margin", "paper",
                 "tone_gain", "tone_gain_fit", "untouched_below"}  # a card's `mask` keys


class CropReading(NamedTuple):
    """What a cleaner reads off a crop before it changes a pixel (`Cleaner._read`)."""

    tone: np.ndarray | None  # the clean ink's darkness the model predicts (working resolution); None without a tone output
    small: np.ndarray  # the crop at the working resolution
    keep: np.ndarray  # the keep map (working resolution)
    strokes: np.ndarray  # the keep map widened by the rim (working resolution)
    paper: Paper | None  # the paper under the crop (`paper_level`), or None where darkness is against white
    darkness: np.ndarray  # the crop's darkness at full resolution (`ink_darkness`)
    keep_full: np.ndarray  # the keep map at full resolution
    full_size: Callable[[np.ndarray], np.ndarray]  # a working-resolution map brought to full resolution


class Cleaner:
    """A cleaner model described by a model card."""

    def __init__(self, model: str | None = None):
        self.card: ModelCard = load_card(model or DEFAULT_CLEANER)
        if self.card.kind != "cleaner":
            raise InputError(f"model {self.card.name} is {self.card.a_kind}, not a cleaner")
        self.session = inference_session(self.card.path)
        self.input_name = self.session.get_inputs()[0].name
        self.max_pixels = int(self.card.details.get("max_pixels", 65536))
        mask = self.card.details.get("mask", {})
        self.low, self.high = float(mask.get("low", 0.3)), float(mask.get("high", 0.7))
        self.seed = mask.get("seed")  # a kept stroke must reach this probability somewhere
        self.cluster_radius = float(mask.get("cluster_radius", 0.0))  # of the crop's longer side
        self.cluster_fraction = float(mask.get("cluster_fraction", 0.0))  # of the largest cluster's ink
        self.grow = int(mask.get("grow", 0))  # pixels the kept strokes are widened by (working resolution)
        self.rim = int(mask.get("rim", self.grow))  # pixels (working resolution) beside kept strokes that count as theirs, not paper or dropped ink
        for key, pixels in (("grow", self.grow), ("rim", self.rim)):
            if pixels < 0:
                raise ModelError(f"model card {self.card.name}: mask.{key} must be a number of pixels of at least 0, not {pixels}")
        self.tone_margin = float(mask.get("tone_margin", 0.0))  # tone corrections smaller than this are not made
        self.paper = bool(mask.get("paper", False))  # measure the ink's darkness against the paper under it (paper_level)
        self.tone_gain_mode = str(mask.get("tone_gain", "none"))  # which crops get one tone gain instead of the shift
        fit = mask.get("tone_gain_fit", {})  # the head's gain g becomes scale * g ** power (fitted on training writers)
        numbers = isinstance(fit, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in fit.values())
        if not numbers or set(fit) - {"scale", "power"}:
            raise ModelError(f"model card {self.card.name}: mask.tone_gain_fit must map scale and power to numbers, not {fit!r}")
        self.gain_scale, self.gain_power = float(fit.get("scale", 1.0)), float(fit.get("power", 1.0))
        if not (self.gain_scale > 0 and self.gain_power > 0):
            raise ModelError(f"model card {self.card.name}: mask.tone_gain_fit needs a scale and a power above 0, "
                             f"not {self.gain_scale} and {self.gain_power}")
        self.untouched_below = float(mask.get("untouched_below", 0.0))  # a crop whose dropped_ink_share is below this passes as it came
        if not self.untouched_below >= 0:
            raise ModelError(f"model card {self.card.name}: mask.untouched_below must be a share of at least 0, not {self.untouched_below}")
        if self.tone_gain_mode not in TONE_GAIN_MODES:
            raise ModelError(f"model card {self.card.name}: mask.tone_gain must be one of {', '.join(TONE_GAIN_MODES)}, "
                             f"not {self.tone_gain_mode!r}")

    @property
    def name(self) -> str:
        return self.card.name

    def ink_probability(self, gray: np.ndarray) -> np.ndarray:
        """P(signature ink) for every pixel of a uint8 grey crop, float32 of the same shape."""
        probability, _, _, scale = self._working_maps(gray)
        if scale < 1:
            probability = cv2.resize(probability, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)
        return probability

    def _working_maps(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, float]:
        """P(signature ink) at the working resolution, the clean ink's darkness the model
        predicts there (None for a model without a tone output), the crop at the working
        resolution, and the scale from the crop to it."""
        if gray.ndim != 2 or gray.dtype != np.uint8:
            raise InputError(f"expected a 2-D uint8 grey image, got {gray.dtype} array of shape {gray.shape}")
        h, w = gray.shape
        scale = min(1.0, math.sqrt(self.max_pixels / (h * w)))
        small = gray
        if scale < 1:
            small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape
        if (sh + -sh % MULTIPLE) * (sw + -sw % MULTIPLE) > THIN_LIMIT * self.max_pixels:  # padding a sliver would be most of the work
            raise InputError(f"a {w} x {h} pixel image (width x height) is too thin to be a signature crop (sides {max(h, w) // max(1, min(h, w))} to 1); "
                             "crop it around the signature")
        (maps,) = self.session.run(None, {self.input_name: network_input(small)})
        return maps[0, 0, :sh, :sw], (maps[0, 1, :sh, :sw] if maps.shape[1] > 1 else None), small, scale

    def keep_map(self, probability: np.ndarray) -> np.ndarray:
        """How much of each pixel to keep (0 to 1), from the ink probability map:

        - a ramp from `low` (drop) to `high` (keep);
        - hysteresis: a connected piece above `low` is kept only if it reaches `seed` somewhere,
          so faint parts of a stroke survive and faint scraps of clutter do not;
        - clustering: pieces within `cluster_radius` (of the crop's longer side) of each other
          form a cluster, and clusters holding less than `cluster_fraction` of the largest
          one's ink are dropped: stray specks and text fragments away from the signature;
        - growing: what is kept is widened by `grow` pixels, so the faint rims of strokes stay.
        """
        return widened(self._pruned(probability), self.grow)

    def _pruned(self, probability: np.ndarray) -> np.ndarray:
        """The keep map before growing: the ramp, hysteresis and clustering of `keep_map`."""
        keep = np.clip((probability - self.low) / (self.high - self.low), 0, 1)
        if self.seed is not None:
            count, labels = cv2.connectedComponents((probability > self.low).astype(np.uint8), connectivity=8)
            strong = np.zeros(count, bool)
            strong[labels[probability > float(self.seed)]] = True
            strong[0] = False
            keep *= np.take(strong, labels)  # np.take: a few times faster than indexing with a label map
        ink = keep > 0.5
        if self.cluster_fraction > 0 and ink.any():
            radius = max(1, round(self.cluster_radius * max(ink.shape)))
            near = cv2.dilate(ink.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
            count, clusters = cv2.connectedComponents(near, connectivity=8)
            mass = np.bincount(clusters[ink], minlength=count)
            mass[0] = 0
            keep *= np.take(mass >= self.cluster_fraction * mass.max(), clusters)
        return keep

    def _read(self, gray: np.ndarray) -> CropReading:
        """What cleaning reads off a crop before it changes a pixel."""
        probability, tone, small, scale = self._working_maps(gray)
        pruned = self._pruned(probability)
        keep = widened(pruned, self.grow)
        strokes = keep if self.rim == self.grow else widened(pruned, self.rim)  # the kept strokes with their rims
        size = (gray.shape[1], gray.shape[0])

        def full_size(working: np.ndarray) -> np.ndarray:
            return cv2.resize(working, size, interpolation=cv2.INTER_LINEAR) if scale < 1 else working

        paper = paper_level(small, strokes) if self.paper and keep.any() else None  # nothing kept: all white anyway
        return CropReading(tone, small, keep, strokes, paper, ink_darkness(gray, paper), full_size(keep), full_size)

    def clean(self, gray: np.ndarray) -> np.ndarray:
        """The cleaned crop: signature ink (in the tone the model restores, or as it was),
        everything else white; or the crop as it came, where the card's `untouched_below` finds
        nothing to remove."""
        return self._drawn(gray, self._read(gray))

    def _drawn(self, gray: np.ndarray, r: CropReading) -> np.ndarray:
        """What `clean` makes of a crop from what it read off it (`_read`), so that a caller who
        needs the reading too runs the network once."""
        darkness = r.darkness
        if self._untouched(r):
            return gray.copy()
        if r.tone is not None and self._scales_by_gain(darkness, r.keep_full):
            gain = tone_gain(r.tone, ink_darkness(r.small, r.paper), r.keep, self.gain_scale, self.gain_power)
            darkness = np.clip(darkness * gain, 0, 1)
        elif r.tone is not None:
            correction = r.full_size(self._tone_correction(r.tone, ink_darkness(r.small, r.paper)))
            darkness = np.clip(darkness + correction, 0, 1, out=correction)
        drawn = r.keep_full * 255  # 255 - keep * 255 * darkness + 0.5, in place (full resolution)
        drawn *= darkness
        np.subtract(255, drawn, out=drawn)
        drawn += 0.5
        return drawn.astype(np.uint8)

    def saturated_gain(self, gray: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
        """For a crop that `clean` scales by one gain because its kept ink is saturated
        (`saturated_ink`): the tone head's gain before the card's `tone_gain_fit` (held within
        TONE_GAIN_RANGE), and the crop's darkness and keep map at full resolution, which the gain
        multiplies. None for any other crop: grey ink, one that passes untouched, one with no
        kept ink at the working resolution, or a model without a tone output. What
        `signver.training.tone_gain_fit` fits the card's `tone_gain_fit` to."""
        r = self._read(gray)
        if r.tone is None or not saturated_ink(r.darkness, r.keep_full) or self._untouched(r):
            return None
        small_darkness = ink_darkness(r.small, r.paper)
        if not kept_ink(small_darkness, r.keep).any():
            return None
        return tone_gain(r.tone, small_darkness, r.keep), r.darkness, r.keep_full

    def _untouched(self, r: CropReading) -> bool:
        """Whether the card's `untouched_below` passes this crop as it came."""
        if self.untouched_below <= 0:
            return False
        strokes_full = r.keep_full if r.strokes is r.keep else r.full_size(r.strokes)
        return dropped_ink_share(r.darkness, strokes_full) < self.untouched_below

    def _scales_by_gain(self, darkness: np.ndarray, keep_full: np.ndarray) -> bool:
        """Whether this crop's ink takes one tone gain rather than the per-pixel shift (the card's
        `mask.tone_gain`; saturation judged on the full-resolution crop)."""
        return self.tone_gain_mode == "all" or (self.tone_gain_mode == "saturated" and saturated_ink(darkness, keep_full))

    def _tone_correction(self, tone: np.ndarray, darkness: np.ndarray) -> np.ndarray:
        """How much darker (or lighter) the clean ink was than the crop is, less the margin."""
        difference = tone - darkness
        return np.sign(difference) * np.maximum(np.abs(difference) - self.tone_margin, 0)


def widened(keep: np.ndarray, pixels: int) -> np.ndarray:
    """A keep map widened by `pixels` on every side (each pixel takes its neighbourhood's maximum)."""
    return cv2.dilate(keep, np.ones((2 * pixels + 1, 2 * pixels + 1), np.uint8)) if pixels > 0 else keep


SATURATED_DARKNESS = 0.9  # ink at least this dark shows no tone: solid black
SATURATED_SHARE = 0.5  # of the kept ink (at least INK_FLOOR dark) that must be solid black for the crop to count as saturated
INK_FLOOR = 0.2  # darkness below which a kept pixel is a stroke's rim or paper, not ink
TONE_GAIN_RANGE = (0.25, 4.0)  # a safety bound: scan damage fades or darkens ink by less than this


def kept_ink(darkness: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The pixels the keep map keeps that are ink, not a stroke's rim or the paper beside it."""
    return (keep > 0.5) & (darkness >= INK_FLOOR)


def saturated_ink(darkness: np.ndarray, keep: np.ndarray) -> bool:
    """Whether most of the kept ink is solid black (a bitonal scan, or a pen as dark as the
    scanner can show), so its own pixels say nothing of its tone. CEDAR's grey scans have no
    such share: on its held-out scans none of the ink is 0.9 dark, on their bitonal copies
    (JPEG-compressed or not) at least 68 % of it is."""
    ink = kept_ink(darkness, keep)
    return bool(ink.any()) and float(np.mean(darkness[ink] >= SATURATED_DARKNESS)) >= SATURATED_SHARE


def dropped_ink_share(darkness: np.ndarray, keep: np.ndarray) -> float:
    """The ink the keep map drops, as a share of the ink it keeps (darkness summed over pixels at
    least INK_FLOOR dark, each weighted by how much of it is dropped or kept): about 0 for a
    clean scan, where only paper goes, and large where print, lines or stamps go. Measured at the
    crop's own resolution, where a thin rule is as dark as it was drawn (shrunk, it fades below
    the floor). Infinite where nothing is kept: such a crop is cleaned to white paper."""
    floor = darkness.dtype.type(INK_FLOOR)
    below_floor = float(np.nextafter(floor, floor.dtype.type(0)))  # THRESH_TOZERO keeps what is above it: >= INK_FLOOR
    ink = cv2.threshold(darkness, below_floor, 0, cv2.THRESH_TOZERO)[1]
    kept = float(np.dot(ink.ravel(), keep.astype(ink.dtype, copy=False).ravel()))  # one pass, no product array
    return (float(ink.sum()) - kept) / kept if kept > 0 else math.inf


def tone_gain(tone: np.ndarray, darkness: np.ndarray, keep: np.ndarray, scale: float = 1.0, power: float = 1.0) -> float:
    """How many times darker the clean ink was (`tone`, the model's) than the crop's ink is
    (`darkness`), summed over the kept ink at the working resolution, within TONE_GAIN_RANGE;
    1 where no kept pixel is ink. Sums over the whole crop, since one pixel of a bitonal stroke
    says nothing of the tone but the crop as a whole does, and over ink only (at least
    INK_FLOOR dark): the model is trained on the clean signature's ink pixels, and the paper
    beside a stroke, which the keep map keeps too, gets a darkness from it that is too high
    (on held-out CEDAR scans, 0.08 where the paper shows 0.01, which alone made the gain 1.2).
    `scale` and `power` (the card's `mask.tone_gain_fit`) make it scale * gain ** power before
    it is held within the range."""
    ink = kept_ink(darkness, keep)
    if not ink.any():
        return 1.0
    gain = float(tone[ink].sum()) / max(float(darkness[ink].sum()), 1e-6)
    return float(np.clip(scale * gain**power, *TONE_GAIN_RANGE))


PAPER_CELL = 16  # pixels (working resolution) of the cells whose paper medians the plane is fitted to
PAPER_MIN_SHARE = 1 / 8  # of a cell's pixels that must be paper for its median to count
PAPER_SLACK = 8  # grey levels the plane may reach beyond the darkest and lightest cell median


class Paper(NamedTuple):
    """The paper's brightness under a crop: the plane a + b*u + c*v over the crop's relative
    coordinates (u, v in [0, 1]), held within [low, high]."""

    a: float
    b: float
    c: float
    low: float
    high: float


def paper_level(small: np.ndarray, keep: np.ndarray) -> Paper | None:
    """The paper under a crop, fitted to the median of the paper in each cell of the
    working-resolution crop `small`; paper is what the keep map drops and Otsu calls light. No
    slope along an axis the paper's cells do not spread over (one row of cells says nothing
    about how the light changes from top to bottom), and the plane is held near the medians it
    was fitted to, so it cannot run off where little paper shows. None where the paper is white
    (within a grey level) or too little of it shows. Scans put the ink on grey or unevenly lit
    paper, and the kept ink's darkness then holds the paper's too."""
    h, w = small.shape
    threshold, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    paper = (keep < 0.05) & (small > threshold)
    rows, cols = -(-h // PAPER_CELL), -(-w // PAPER_CELL)
    pad = ((0, rows * PAPER_CELL - h), (0, cols * PAPER_CELL - w))
    values = np.pad(np.where(paper, small.astype(np.float32), np.nan), pad, constant_values=np.nan)
    cells = values.reshape(rows, PAPER_CELL, cols, PAPER_CELL).transpose(0, 2, 1, 3).reshape(rows * cols, -1)
    counts = np.count_nonzero(~np.isnan(cells), axis=1)
    used = counts >= PAPER_MIN_SHARE * PAPER_CELL * PAPER_CELL
    if not used.any():
        return None
    ordered, n = np.sort(cells[used], axis=1), counts[used]  # NaN (not paper) sorts last: faster than nanmedian
    rows_used = np.arange(len(n))
    medians = (ordered[rows_used, (n - 1) // 2] + ordered[rows_used, n // 2]) / 2
    cy, cx = np.divmod(np.flatnonzero(used), cols)
    u, v = np.minimum((cx + 0.5) * PAPER_CELL, w) / w, np.minimum((cy + 0.5) * PAPER_CELL, h) / h
    a, slopes = float(np.median(medians)), np.zeros(2)
    if used.sum() >= 3:
        spread = np.array([np.ptp(cx) > 0, np.ptp(cy) > 0])
        weight = np.sqrt(counts[used].astype(np.float64))
        design = np.column_stack([np.ones_like(u), np.stack([u, v], 1)[:, spread]]) * weight[:, None]
        fitted = np.linalg.lstsq(design, medians * weight, rcond=None)[0]
        a, slopes[spread] = fitted[0], fitted[1:]
    b, c = slopes
    corners = a + np.array([0, b, c, b + c])
    if corners.min() >= 254:
        return None
    low, high = (float(np.clip(x, 64, 255)) for x in (medians.min() - PAPER_SLACK, medians.max() + PAPER_SLACK))
    return Paper(float(a), float(b), float(c), low, high)


def ink_darkness(gray: np.ndarray, paper: Paper | None) -> np.ndarray:
    """Each pixel's darkness in [0, 1], relative to the paper under it when `paper` is given
    (`paper_level`), else to white."""
    if paper is None:
        return 1 - gray.astype(np.float32) / 255
    h, w = gray.shape
    level = paper.a + paper.b * (np.arange(w, dtype=np.float32) + 0.5)[None, :] / w + paper.c * (np.arange(h, dtype=np.float32) + 0.5)[:, None] / h
    level = level.astype(np.float32, copy=False)  # float32 whatever the plane's numbers are
    np.clip(level, paper.low, paper.high, out=level)  # in place: at full resolution each pass counts
    np.divide(gray, level, out=level)
    np.minimum(level, 1, out=level)
    return np.subtract(1, level, out=level)


def network_input(small: np.ndarray) -> np.ndarray:
    """A uint8 grey crop at working resolution as the network takes it: (1, 1, H, W) float32
    darkness, padded with white paper (darkness 0) to sides that are multiples of MULTIPLE."""
    sh, sw = small.shape
    x = np.zeros((1, 1, sh + (-sh % MULTIPLE), sw + (-sw % MULTIPLE)), np.float32)
    x[0, 0, :sh, :sw] = 1 - small.astype(np.float32) / 255
    return x


@made_once(maxsize=2)
def get_cleaner(model: str | None = None) -> Cleaner:
    """A shared cleaner per model, so its session loads once per process."""
    return Cleaner(model)


def clean(source: SourceLike, model: str | None = None, dropout: str | None = None) -> np.ndarray:
    """Remove the clutter around a signature: any input kind `signver.load_image` reads (a
    path, bytes, file object, numpy array, PIL image, PDF page 1), any size, read without
    `dropout`'s colour if given. Returns a uint8 grey image of the input's size, ink dark on white."""
    return get_cleaner(model).clean(load_image(source, dropout=dropout))


def clean_many(sources: Iterable[SourceLike], model: str | None = None, dropout: str | None = None) -> list[np.ndarray]:
    cleaner = get_cleaner(model)
    return [cleaner.clean(load_image(s, dropout=dropout)) for s in sources]


def check_clean(clean_flag: bool | None) -> bool | None:
    """A caller's choice to clean: True, False or None (the default). Only a bool is a choice:
    the string "false" is true in Python, and would clean."""
    if clean_flag is not None and not isinstance(clean_flag, (bool, np.bool_)):
        raise InputError(f"clean must be True, False or None, got {clean_flag!r}")
    return None if clean_flag is None else bool(clean_flag)


def resolve(clean_flag: bool | None) -> bool:
    """The caller's choice, or the default (DEFAULT_CLEAN) when it is None."""
    clean_flag = check_clean(clean_flag)
    return DEFAULT_CLEAN if clean_flag is None else clean_flag


def for_embedding(gray: np.ndarray, model: str | None = None) -> np.ndarray:
    """The crop the extractor should see: cleaned, unless cleaning left (almost) no ink, in
    which case the crop as it came (the signature is more likely there than nothing at all)."""
    cleaned = get_cleaner(model).clean(gray)
    try:
        ink_mask(cleaned)
    except BlankImageError:
        return gray
    return cleaned
