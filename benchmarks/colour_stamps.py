"""What does a coloured stamp over a signature cost, and how much does reading the scan without
its colour (`dropout`) or cleaning it win back? P1 EER of an extractor on the CEDAR and
BHSig260-Bengali test writers, every questioned and reference scan changed alike:

- as scanned;
- a red rubber stamp over the signature, read as grey (the stamp is as dark as ink there), as
  grey then cleaned by the shipped cleaner, and with `dropout="red"`;
- the same with the signature in blue ballpoint instead of black, `dropout="red"`;
- a blue stamp over a black signature, `dropout="blue"`.

Stamps are drawn here with OpenCV (rings or a frame, a word, uneven inking, a turn, a colour
drawn from a family of reds or blues), laid over the ink as ink is (each channel multiplied),
and every colour scan is saved as JPEG (4:2:0, quality 75-95) before it is read, as scanners
write them, so that colour bleeds across stroke edges. Each scan's stamp is seeded by its
index: every run and every reading sees the same stamps.

    cd benchmarks && python colour_stamps.py [--model NAME] [--data ../../shared/data] [--writers holdout]
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from common import held_out_writers, machine, p1_eers_of_changed_scans
from signver.cleaner import get_cleaner
from signver.extractor import Extractor
from signver.images import load_image

DATASETS = ("cedar", "bhsig260-bengali")
REDS = ((190, 35, 45), (210, 40, 60), (170, 20, 30), (220, 70, 50), (200, 50, 90))
BLUES = ((30, 50, 170), (40, 70, 190), (20, 40, 140), (60, 60, 180))
BLUE_PEN = (25, 45, 150)
WORDS = ("APPROVED", "RECEIVED", "PAID", "VERIFIED", "COPY", "NOTARY")


def stamp_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A rubber stamp's ink share (0-1) on a page of `shape`, over its middle: rings with a word,
    or a framed word, inked unevenly and turned."""
    h, w = shape
    size = int(min(h, w) * rng.uniform(0.7, 1.0))
    mask = np.zeros((h, w), np.uint8)
    centre = (int(w / 2 + rng.uniform(-0.2, 0.2) * w), int(h / 2 + rng.uniform(-0.15, 0.15) * h))
    line = max(2, size // 30)
    if rng.random() < 0.6:
        radius = size // 2
        cv2.circle(mask, centre, radius, 255, line, cv2.LINE_AA)
        cv2.circle(mask, centre, int(radius * 0.72), 255, max(1, line // 2), cv2.LINE_AA)
    else:
        half_w, half_h = int(size * rng.uniform(0.8, 1.2)), int(size * 0.3)
        cv2.rectangle(mask, (centre[0] - half_w, centre[1] - half_h), (centre[0] + half_w, centre[1] + half_h), 255, line, cv2.LINE_AA)
    word = str(rng.choice(WORDS))
    scale = size / 260
    (text_w, text_h), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, max(1, line))
    cv2.putText(mask, word, (centre[0] - text_w // 2, centre[1] + text_h // 2), cv2.FONT_HERSHEY_DUPLEX, scale, 255, max(1, line), cv2.LINE_AA)
    turn = cv2.getRotationMatrix2D(centre, rng.uniform(-25, 25), 1.0)
    mask = cv2.warpAffine(mask, turn, (w, h)).astype(np.float32) / 255
    texture = cv2.resize(rng.random((max(2, h // 12), max(2, w // 12))).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    return mask * np.clip(rng.uniform(0.6, 0.95) + 0.5 * (texture - 0.5), 0.2, 1.0)


def inked(gray: np.ndarray, pen: tuple[int, int, int]) -> np.ndarray:
    """A grey scan as an RGB one whose ink is of colour `pen` (black: the scan itself)."""
    darkness = 1 - gray.astype(np.float32)[..., None] / 255
    return 255 * (1 - darkness * (1 - np.array(pen, np.float32) / 255))


def stamped_jpeg(gray: np.ndarray, index: int, stamp_colours, pen=(0, 0, 0)) -> bytes:
    """Scan `index` in `pen`'s ink with a stamp of one of `stamp_colours` over it, as JPEG bytes."""
    rng = np.random.default_rng([index, 42])
    rgb = inked(gray, pen)
    colour = np.clip(np.array(stamp_colours[rng.integers(len(stamp_colours))], np.float32) + rng.normal(0, 10, 3), 0, 255)
    alpha = stamp_mask(gray.shape, rng)[..., None]
    rgb *= 1 - alpha * (1 - colour / 255)
    quality = int(rng.integers(75, 96))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.clip(rgb, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


def readings(cleaner) -> dict:
    """Each column of the table: how a scan is changed and read, (grey scan, index) -> grey."""
    return {
        "as scanned": lambda gray, _: gray,
        "red stamp, grey": lambda gray, i: load_image(stamped_jpeg(gray, i, REDS)),
        "red stamp, grey, cleaned": lambda gray, i: cleaner.clean(load_image(stamped_jpeg(gray, i, REDS))),
        "red stamp, dropout red": lambda gray, i: load_image(stamped_jpeg(gray, i, REDS), dropout="red"),
        "blue pen, red stamp, dropout red": lambda gray, i: load_image(stamped_jpeg(gray, i, REDS, BLUE_PEN), dropout="red"),
        "blue stamp, grey": lambda gray, i: load_image(stamped_jpeg(gray, i, BLUES)),
        "blue stamp, dropout blue": lambda gray, i: load_image(stamped_jpeg(gray, i, BLUES), dropout="blue"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--cleaner", default=None)
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--writers", choices=("test", "holdout"), default="test")
    args = parser.parse_args()
    extractor, cleaner = Extractor(args.model), get_cleaner(args.cleaner)
    columns = readings(cleaner)
    print(f"model {extractor.name}, cleaner {cleaner.name}; machine {machine()}; {args.writers} writers; P1 EER skilled / random in %")
    print("| dataset | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for dataset in DATASETS:
        writers = held_out_writers(extractor.card)[dataset] if args.writers == "holdout" else None
        _, eers = p1_eers_of_changed_scans(extractor, args.data, dataset, writers, list(columns.values()))
        print(f"| {dataset} | " + " | ".join(f"{skilled:.2f} / {random:.2f}" for skilled, random in eers) + " |", flush=True)


if __name__ == "__main__":
    main()
