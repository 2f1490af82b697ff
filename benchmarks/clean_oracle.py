"""Where does the cleaner's remaining loss lie? Held-out training writers only, never test writers.

Each held-out image is overlaid as `clean_accuracy.py` overlays it, cleaned, and then rebuilt
from oracles that use the clean target (bounds, not methods): the cleaned crop with the clutter
it kept turned white ("kept clutter whitened": what a perfect precision would give), with its
kept ink drawn in the clean scan's tone instead ("clean tone on kept ink": what a perfect tone
would give), and with both (the cleaner's keep map filled with the clean scan's tone). P1 skilled
EER of each row, and the share of the EER lost to the overlay that it recovers.

    python benchmarks/clean_oracle.py --out out/clean-oracle          # both datasets, ~4 min
"""

from __future__ import annotations

import argparse
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
from clean_accuracy import DATASETS, DEV_WRITERS, SHARED_DATA, VERSIONS, has_ink, make_versions
from common import machine
from rich.progress import track

from signver import overlays
from signver.cleaner import Cleaner, get_cleaner
from signver.evaluation.metrics import eer
from signver.evaluation.protocols import POSITIVE, SKILLED
from signver.evaluation.report import build_trials
from signver.extractor import get_extractor
from signver.images import load_image
from signver.matcher import score_trials
from signver.normalize import normalize

ROWS = ("as it is", "cleaned", "kept clutter whitened", "clean tone on kept ink", "both")


def oracle_outputs(cleaner: Cleaner, dirty: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """The crop as each row of ROWS sees it. A pixel within one pixel of the target's ink counts
    as ink, so a stroke's rim is not called clutter. "both" fills the keep map even where the
    cleaner would pass the crop untouched (`mask.untouched_below`): it is a bound."""
    reading = cleaner._read(dirty)
    cleaned = cleaner._drawn(dirty, reading)
    near_ink = cv2.dilate((target <= 255 * (1 - overlays.INK_DARKNESS)).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    both = (255 - reading.keep_full * (255 - target.astype(np.float32)) + 0.5).astype(np.uint8)
    return {"as it is": dirty, "cleaned": cleaned,
            "kept clutter whitened": np.where(near_ink, cleaned, 255).astype(np.uint8),
            "clean tone on kept ink": np.where(near_ink, both, cleaned).astype(np.uint8),
            "both": both}


def run_dataset(name: str, root: str, writers: str, cleaner_model: str | None) -> dict:
    dataset_name, trials = build_trials(root, "p1", 1, None, writers)
    extractor, cleaner = get_extractor(None), get_cleaner(cleaner_model)
    normalized: dict[tuple[str, str], list] = {}
    for path in track(trials.images, description=f"{name}: {len(trials.images)} images"):
        image = load_image(path)
        seed = zlib.crc32(f"{dataset_name}/{Path(path).name}".encode())
        for version, (dirty, target) in make_versions(image, seed).items():
            outs = oracle_outputs(cleaner, dirty, target) if version != "clean" else {"as it is": dirty}
            for row, out in outs.items():
                normalized.setdefault((version, row), []).append(normalize(out if has_ink(out) else dirty, extractor.card.input_size))
    eers = {}
    for key, images in normalized.items():
        distances = score_trials(extractor.embed_normalized(images), trials.references, trials.questioned, "mean")
        eers[key] = 100 * eer(distances[trials.kind == POSITIVE], distances[trials.kind == SKILLED])[0]
    clean = eers[("clean", "as it is")]

    def recovered(version: str, row: str) -> float:
        lost = eers[(version, "as it is")] - clean
        return (eers[(version, "as it is")] - eers[(version, row)]) / lost if lost > 0 else float("nan")

    rows = {row: {v: {"eer_skilled": eers[(v, row)], "recovered": recovered(v, row)} for v in VERSIONS[1:]} for row in ROWS}
    return {"dataset": dataset_name, "writers": writers, "cleaner": cleaner.name, "extractor": extractor.name,
            "clean_eer_skilled": clean, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="cedar,bengali", help="comma-separated: cedar, bengali")
    parser.add_argument("--cleaner", default=None, help="cleaner name or .onnx path")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="folder holding cedar/ and bhsig260-bengali/")
    parser.add_argument("--out", type=Path, default=Path("out/clean-oracle"))
    args = parser.parse_args()
    results = []
    for name in args.datasets.split(","):
        root = args.data / DATASETS[name][0]
        if not root.is_dir():
            raise SystemExit(f"{root} is not here")
        results.append(run_dataset(name, str(root), DEV_WRITERS[name], args.cleaner))
    args.out.mkdir(parents=True, exist_ok=True)
    where = machine()
    (args.out / "metrics.json").write_text(json.dumps({"machine": where, "results": results}, indent=2) + "\n")
    print(f"machine: {where}")
    for r in results:
        print(f"{r['dataset']} held-out writers {r['writers']}, clean scans {r['clean_eer_skilled']:.1f} % skilled EER "
              f"({' / '.join(VERSIONS[1:])}):")
        for row, cells in r["rows"].items():
            print(f"  {row:24s} " + " / ".join(f"{c['eer_skilled']:.1f}" for c in cells.values())
                  + "  recovered " + " / ".join(f"{100 * c['recovered']:.0f}" for c in cells.values()) + " %")
    print(f"wrote {args.out / 'metrics.json'}")


if __name__ == "__main__":
    main()
