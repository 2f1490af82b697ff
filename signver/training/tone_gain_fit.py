"""Fit a cleaner's tone gain to its training writers: the card's `mask.tone_gain_fit`.

On a crop whose ink is solid black (a bitonal scan) the tone head has little to go on, and its
crop-wide gain (`signver.cleaner.tone_gain`) shrinks toward the middle of what it was trained
on. On saturated overlays of the training writers, cleaner-lite0-unfaded-int8's head gave
CEDAR's light grey ink a mean gain of 0.57 where the clean scans needed 0.49, and
BHSig260-Hindi's black ink 0.94 where they needed 0.97 (docs/benchmarks.md, "Cleaner",
thirty-second session). Two numbers undo most of that: log(needed) = log(scale) + power *
log(head), fitted by least squares over each data source's saturated crops, every source
weighing alike (CEDAR has a quarter of Hindi's crops).
The crops are the training images as the cleaner's training reads them (whitened, at most
160,000 pixels), of the card's training writers less its held-out ones (the test writers are
never read), overlaid by `signver.overlays.clutter` at its default strength with the training
fonts.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from rich.progress import track

from .. import overlays
from ..cleaner import INK_FLOOR, Cleaner, kept_ink
from ..errors import InputError
from ..models import write_card
from .cleaner import load_clean_signature, paths_by_source

MIN_INK_PIXELS = 20  # a crop with less kept ink than this says too little about its gain
MIN_CROPS = 8  # per data source: fewer saturated crops fit nothing


def gain_pairs(cleaner: Cleaner, signatures: Iterable[np.ndarray], rng: np.random.Generator, copies: int = 1) -> np.ndarray:
    """(head gain, needed gain) for every overlaid copy of `signatures` whose kept ink is
    saturated, as rows of an (n, 2) array. The needed gain is the one that would give the kept
    ink the clean signature's darkness: its darkness summed over the kept ink that the clean
    signature also has, over the crop's own there."""
    rows = []
    for signature in signatures:
        for _ in range(copies):
            pair = overlays.clutter(signature, rng, fonts="train")
            found = cleaner.saturated_gain(pair.image)
            if found is None:
                continue
            head, darkness, keep = found
            clean = 1 - pair.target.astype(np.float32) / 255
            ink = kept_ink(darkness, keep) & (clean >= INK_FLOOR)
            if np.count_nonzero(ink) >= MIN_INK_PIXELS:
                rows.append((head, float(clean[ink].sum()) / float(darkness[ink].sum())))
    return np.array(rows, np.float64).reshape(-1, 2)


def fit_gain(pairs_by_source: list[np.ndarray]) -> tuple[float, float]:
    """(scale, power) of needed = scale * head ** power, least squares in logs, each source's
    crops weighing 1 in all."""
    used = [pairs for pairs in pairs_by_source if len(pairs)]
    if not used:
        raise InputError("no saturated crops to fit the tone gain to")
    head = np.log(np.concatenate([pairs[:, 0] for pairs in used]))
    needed = np.log(np.concatenate([pairs[:, 1] for pairs in used]))
    weight = np.sqrt(np.concatenate([np.full(len(pairs), 1 / len(pairs)) for pairs in used]))
    if np.ptp(head) <= 0:
        raise InputError("the head gave every saturated crop the same gain: there is no slope to fit")
    design = np.column_stack([np.ones_like(head), head]) * weight[:, None]
    log_scale, power = np.linalg.lstsq(design, needed * weight, rcond=None)[0]
    return float(np.exp(log_scale)), float(power)


def fit_tone_gain(config: dict, config_path: str) -> Path:
    """Fit `mask.tone_gain_fit` for the cleaner the config names and write it into that
    cleaner's card, with what it was fitted on."""
    cleaner = Cleaner(config["cleaner"])
    if cleaner.card.details.get("network", {}).get("tone") is not True:
        raise InputError(f"cleaner: {cleaner.name} has no tone output, so it has no tone gain to fit")
    if cleaner.tone_gain_mode != "saturated":
        raise InputError(f"cleaner: {cleaner.name} has mask.tone_gain {cleaner.tone_gain_mode!r}; the fit is for 'saturated', "
                         "where only crops of solid black ink take the gain")
    sources = cleaner.card.details.get("trained_on", {}).get("signatures", [])
    if not sources:
        raise InputError(f"cleaner: the card of {cleaner.name} names no training data (trained_on.signatures)")
    rng = np.random.default_rng(int(config.get("seed", 0)))
    copies = int(config.get("copies", 1))
    pairs_by_source, measured = [], []
    for source, paths in zip(sources, paths_by_source(sources, "train")):
        signatures = (load_clean_signature(path) for path in track(paths, description=f"{source['path']}: {len(paths)} images"))
        pairs = gain_pairs(cleaner, signatures, rng, copies)
        if len(pairs) < MIN_CROPS:
            raise InputError(f"{source['path']}: {len(pairs)} saturated crops, fewer than {MIN_CROPS}; raise copies")
        pairs_by_source.append(pairs)
        measured.append({"path": source["path"], "saturated_crops": len(pairs), "head_gain": round(float(pairs[:, 0].mean()), 3),
                         "needed_gain": round(float(pairs[:, 1].mean()), 3)})
    scale, power = fit_gain(pairs_by_source)
    scale, power = round(scale, 4), round(power, 4)
    if not (scale > 0 and power > 0):  # a card the cleaner would refuse to load
        raise InputError(f"the fit gives scale {scale} and power {power}; both must be above 0 (the head's gain "
                         "would fall as the ink needs more); the card is left as it was")
    for row, pairs in zip(measured, pairs_by_source):
        row["fitted_gain"] = round(float((scale * pairs[:, 0] ** power).mean()), 3)
    card_path = Path(cleaner.card.path).with_suffix(".json")
    data = dict(cleaner.card.details)  # the whole card as it was read
    data["mask"] = {**data.get("mask", {}), "tone_gain_fit": {"scale": scale, "power": power}}
    data["tone_gain_fit"] = {"config": config_path, "seed": int(config.get("seed", 0)), "copies": copies, "sources": measured}
    write_card(card_path, data)
    return card_path
