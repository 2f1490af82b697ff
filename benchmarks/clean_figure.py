"""Figure: real signature crops before and after cleaning, side by side.

Crops are the labelled signature boxes of a YOLO detection split (e.g.
../shared/data/signature-detection/valid), widened by `--pad` of their size so the printed
text and lines around them come along, as a detector's crop would. The figure holds dataset
images, so it must stay out of the repository: write it under out/ (git-ignored).

    python benchmarks/clean_figure.py ../shared/data/signature-detection/valid --out out/cleaner/real-crops.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from signver.cleaner import get_cleaner
from signver.images import load_image

TILE = (110, 330)  # height, width of each half of a row


def crops(folder: Path, n: int, pad: float) -> list[np.ndarray]:
    found = []
    for label in sorted((folder / "labels").glob("*.txt")):
        lines = [line for line in label.read_text().splitlines() if line.strip()]
        images = list((folder / "images").glob(label.stem + ".*"))
        if not lines or not images:
            continue
        page = load_image(images[0])
        height, width = page.shape
        for line in lines:
            _, cx, cy, w, h = map(float, line.split()[:5])
            w, h = w * (1 + pad), h * (1 + pad)
            x0, y0 = max(0, int((cx - w / 2) * width)), max(0, int((cy - h / 2) * height))
            x1, y1 = min(width, int((cx + w / 2) * width) + 1), min(height, int((cy + h / 2) * height) + 1)
            if x1 - x0 > 8 and y1 - y0 > 8:
                found.append(page[y0:y1, x0:x1].copy())
        if len(found) >= n:
            break
    return found[:n]


def fit(image: np.ndarray) -> np.ndarray:
    tile = np.full(TILE, 200, np.uint8)
    s = min(TILE[0] / image.shape[0], TILE[1] / image.shape[1])
    resized = cv2.resize(image, (max(1, int(image.shape[1] * s)), max(1, int(image.shape[0] * s))), interpolation=cv2.INTER_AREA)
    tile[: resized.shape[0], : resized.shape[1]] = resized
    return tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("split", type=Path, help="folder with images/ and labels/ (YOLO format)")
    parser.add_argument("--out", type=Path, default=Path("out/cleaner/real-crops.png"))
    parser.add_argument("--n", type=int, default=24, help="crops in the figure")
    parser.add_argument("--pad", type=float, default=0.3, help="widen each box by this fraction of its size")
    parser.add_argument("--cleaner", default=None, help="cleaner name or .onnx path (default: the shipped default)")
    args = parser.parse_args()
    cleaner = get_cleaner(args.cleaner)
    rows = []
    for crop in crops(args.split, args.n, args.pad):
        gap = np.full((TILE[0], 6), 255, np.uint8)
        rows.append(np.hstack([fit(crop), gap, fit(cleaner.clean(crop))]))
        rows.append(np.full((4, rows[-1].shape[1]), 120, np.uint8))
    half = (len(rows) + 3) // 4 * 2
    columns = [np.vstack(rows[:half]), np.vstack(rows[half:] or [np.zeros((0, rows[0].shape[1]), np.uint8)])]
    height = max(c.shape[0] for c in columns)
    columns = [np.pad(c, ((0, height - c.shape[0]), (0, 0)), constant_values=255) for c in columns]
    figure = np.hstack([columns[0], np.full((height, 16), 255, np.uint8), columns[1]])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), figure)
    print(f"wrote {args.out}: {len(rows) // 2} crops, each before (left) and after (right) cleaning")


if __name__ == "__main__":
    main()
