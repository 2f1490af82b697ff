"""Does cleaning help verification? The cleaner's figures on test writers only.

For each dataset's test split (CEDAR: 11 writers, BHSig260-Bengali: 51-100), every image is
used as it is ("clean"), overlaid with clutter by `signver.overlays` drawn with the font
families held out of training, at the training's default strength ("overlaid") and at half of
it ("overlaid-mild": fewer elements, lighter scan damage), and overlaid by the independent
generator of `alt_overlays.py` ("alt-overlaid"), each with and without the cleaner. For each
version:

- restoration against the target (the signature alone on white): PSNR, SSIM, ink precision,
  stroke recall and ink F-measure (`signver.evaluation.cleaning`);
- protocol P1 skilled and random EER with the default extractor, images embedded through the
  library's own `clean=` switch;
- 95 % intervals of the skilled figures (the clean-image change and each recovered share) with the
  writers drawn again (`signver.evaluation.metrics.writer_bootstrap`), since 11 CEDAR test
  writers are few.

Overlays are seeded by image index, so every run makes the same ones.

    python benchmarks/clean_accuracy.py --out out/cleaner            # both datasets, ~15 min
    python benchmarks/clean_accuracy.py --datasets cedar --out out/cleaner-cedar
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from alt_overlays import alt_clutter
from common import machine
from rich.progress import track

from signver import overlays
from signver.cleaner import get_cleaner
from signver.evaluation.cleaning import mean_scores, restoration_scores
from signver.evaluation.metrics import eer, named_intervals, writer_bootstrap
from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED
from signver.evaluation.report import build_trials
from signver.models import write_card
from signver.extractor import get_extractor
from signver.errors import BlankImageError
from signver.images import load_image
from signver.normalize import ink_mask, normalize
from signver.matcher import score_trials

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
DATASETS = {"cedar": ("cedar", "cedar"), "bengali": ("bhsig260-bengali", "bhsig260-bengali")}
DEV_WRITERS = {"cedar": "1,10,20,30,40", "bengali": "46,47,48,49,50"}
VERSIONS = ("clean", "overlaid", "overlaid-mild", "alt-overlaid")
BOOTSTRAP_DRAWS = 1000


def has_ink(image: np.ndarray) -> bool:
    try:
        ink_mask(image)
        return True
    except BlankImageError:
        return False


def make_versions(image: np.ndarray, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(input, target) per version; the clean version's target is its whitened self."""
    own = overlays.clutter(image, np.random.default_rng([seed, 1]), fonts="test")
    mild = overlays.clutter(image, np.random.default_rng([seed, 2]), fonts="test", strength=0.5)
    return {"clean": (image, overlays.whiten(image)), "overlaid": (own.image, own.target),
            "overlaid-mild": (mild.image, mild.target), "alt-overlaid": alt_clutter(image, seed)}


def run_dataset(name: str, root: str, split: str, model: str | None, cleaner_model: str | None, limit: int | None,
                dev: bool = False) -> dict:
    if dev:  # held-out training writers (configs/cleaner-unet-wide.yaml): for choosing settings, never test writers
        split = None
        dataset_name, trials = build_trials(root, "p1", 1, None, DEV_WRITERS[name])
    else:
        dataset_name, trials = build_trials(root, "p1", 1, split, None)
    writers = trials.writers[:limit] if limit else trials.writers
    if limit:
        dataset_name, trials = build_trials(root, "p1", 1, None, ",".join(writers))
    extractor, cleaner = get_extractor(model), get_cleaner(cleaner_model)
    embeddings: dict = {(v, c): [] for v in VERSIONS for c in (False, True)}
    scores = {(v, c): [] for v in VERSIONS for c in (False, True)}
    clean_seconds, n_cleaned = 0.0, 0
    for index, path in enumerate(track(trials.images, description=f"{name}: {len(trials.images)} images")):
        image = load_image(path)
        seed = zlib.crc32(f"{dataset_name}/{Path(path).name}".encode())
        for version, (dirty, target) in make_versions(image, seed).items():
            start = time.perf_counter()
            cleaned = cleaner.clean(dirty)
            clean_seconds += time.perf_counter() - start
            n_cleaned += 1
            scores[(version, False)].append(restoration_scores(dirty if version != "clean" else target, target))
            scores[(version, True)].append(restoration_scores(cleaned, target))
            embeddings[(version, False)].append(normalize(dirty, extractor.card.input_size))
            # what Extractor.embed(clean=True) does: the cleaned crop, or the crop itself if cleaning left no ink
            embeddings[(version, True)].append(normalize(cleaned if has_ink(cleaned) else dirty, extractor.card.input_size))
    result = {"dataset": dataset_name, "split": split, "writers": writers, "images": len(trials.images),
              "n_positive": trials.count(POSITIVE), "n_skilled": trials.count(SKILLED), "n_random": trials.count(RANDOM),
              "model": extractor.name, "cleaner": cleaner.name, "clean_ms_per_crop": 1000 * clean_seconds / max(1, n_cleaned),
              "rows": {}}
    distances = {}
    for (version, cleaned), normalized in embeddings.items():
        vectors = extractor.embed_normalized(normalized)
        distances[(version, cleaned)] = d = score_trials(vectors, trials.references, trials.questioned, "mean")
        genuine = d[trials.kind == POSITIVE]
        row = {"eer_skilled": eer(genuine, d[trials.kind == SKILLED])[0],
               "eer_random": eer(genuine, d[trials.kind == RANDOM])[0],
               **mean_scores(scores[(version, cleaned)])}
        result["rows"][f"{version}{' + cleaned' if cleaned else ''}"] = row
    rows = result["rows"]
    for kind in ("skilled", "random"):
        base = rows["clean"][f"eer_{kind}"]
        result[f"clean_eer_change_{kind}"] = rows["clean + cleaned"][f"eer_{kind}"] - base
        for version in VERSIONS[1:]:
            lost = rows[version][f"eer_{kind}"] - base
            recovered = rows[version][f"eer_{kind}"] - rows[f"{version} + cleaned"][f"eer_{kind}"]
            result[f"{version}_recovered_{kind}"] = recovered / lost if lost > 0 else float("nan")
    result["intervals"] = skilled_intervals(distances, trials)
    return result


def skilled_intervals(distances: dict, trials) -> dict[str, list[float]]:
    """95 % intervals (writers drawn again, `writer_bootstrap`) of the skilled-EER change on clean
    images and of each overlaid version's recovered share: how far another set of as many writers
    could move them. A share counts only the draws where its overlay raised the EER."""
    def statistic(indices: np.ndarray) -> np.ndarray:
        kind = trials.kind[indices]
        eers = {}
        for key, d in distances.items():
            d = d[indices]
            eers[key] = eer(d[kind == POSITIVE], d[kind == SKILLED])[0]
        lost = [eers[(v, False)] - eers[("clean", False)] for v in VERSIONS[1:]]
        shares = [(eers[(v, False)] - eers[(v, True)]) / x if x > 0 else np.nan for v, x in zip(VERSIONS[1:], lost)]
        return np.array([eers[("clean", True)] - eers[("clean", False)], *shares])

    names = ["clean_eer_change_skilled", *(f"{v}_recovered_skilled" for v in VERSIONS[1:])]
    return named_intervals(writer_bootstrap(trials.claimed, statistic, draws=BOOTSTRAP_DRAWS), names)


def table(results: list[dict]) -> str:
    lines = ["| dataset | images | EER skilled | EER random | PSNR dB | SSIM | ink F | ink precision | stroke recall |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for row_name, row in r["rows"].items():
            lines.append(f"| {r['dataset']} {row_name} | {r['images']} | {100 * row['eer_skilled']:.1f} | {100 * row['eer_random']:.1f} | "
                         f"{row['psnr']:.1f} | {row['ssim']:.3f} | {row['ink_f']:.3f} | {row['ink_precision']:.3f} | {row['stroke_recall']:.3f} |")
    lines.append("")
    for r in results:
        lines.append(f"{r['dataset']}: EER change on clean images (skilled / random): {100 * r['clean_eer_change_skilled']:+.2f} / "
                     f"{100 * r['clean_eer_change_random']:+.2f} points; lost EER recovered (skilled / random): "
                     + ", ".join(f"{v} {100 * r[f'{v}_recovered_skilled']:.0f} % / {100 * r[f'{v}_recovered_random']:.0f} %" for v in VERSIONS[1:])
                     + f"; cleaning {r['clean_ms_per_crop']:.1f} ms per crop")
        lines.append(f"{r['dataset']}: 95 % intervals with the writers drawn again: " + ", ".join(
            f"{name} {100 * low:.1f} to {100 * high:.1f}" for name, (low, high) in r["intervals"].items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="cedar,bengali", help="comma-separated: cedar, bengali")
    parser.add_argument("--model", default=None, help="extractor (default: the shipped default)")
    parser.add_argument("--cleaner", default=None, help="cleaner name or .onnx path")
    parser.add_argument("--limit-writers", type=int, default=None, help="only the first N test writers (quick checks)")
    parser.add_argument("--write-card", action="store_true", help="put the figures into the measured cleaner's model card")
    parser.add_argument("--dev", action="store_true", help="held-out training writers instead of test writers (to choose settings)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="folder holding cedar/ and bhsig260-bengali/")
    parser.add_argument("--out", type=Path, default=Path("out/cleaner"))
    args = parser.parse_args()
    if args.write_card and (args.dev or args.limit_writers or set(args.datasets.split(",")) != set(DATASETS)):
        sys.exit("--write-card records the figures of every test writer of both datasets: drop --dev, --limit-writers and --datasets")
    if not overlays.font_files("test"):  # the overlays would fall back to PIL's one font: incomparable figures
        sys.exit(f"no font of the held-out families ({', '.join(overlays.HELD_OUT_FAMILIES)}) is installed; "
                 f"install Debian's {' '.join(overlays.FONT_PACKAGES)}")
    results = []
    for name in args.datasets.split(","):
        folder, split = DATASETS[name]
        root = str(args.data / folder)
        if not Path(root).is_dir():
            sys.exit(f"{root} is not here")
        results.append(run_dataset(name, root, split, args.model, args.cleaner, args.limit_writers, args.dev))
    args.out.mkdir(parents=True, exist_ok=True)
    fonts = {subset: len(overlays.font_files(subset)) for subset in ("train", "test")}
    (args.out / "metrics.json").write_text(json.dumps({"machine": machine(), "fonts": fonts, "results": results}, indent=2) + "\n")
    print(f"machine: {machine()}")
    print(table(results))
    print(f"wrote {args.out / 'metrics.json'}")
    if args.write_card:
        record_in_card(results, machine(), args.cleaner)


def record_in_card(results: list[dict], where: str, cleaner: str | None) -> None:
    """Put the test-writer figures into the measured cleaner's model card (`measured_on_test_writers`)."""
    card_path = get_cleaner(cleaner).card.path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    measured = {"machine": where, "command": "python benchmarks/clean_accuracy.py --write-card" + (f" --cleaner {cleaner}" if cleaner else ""), "extractor": results[0]["model"],
                "protocol": "P1, test writers only",
                "overlays": "overlaid: signver.overlays with held-out fonts, strength 1; overlaid-mild: strength 0.5; "
                            "alt-overlaid: benchmarks/alt_overlays.py (independent generator, OpenCV Hershey fonts)"}
    for r in results:
        measured[r["dataset"]] = {"images": r["images"], "rows": {k: {m: round(v, 4) for m, v in row.items()} for k, row in r["rows"].items()},
                                  **{k: round(v, 4) for k, v in r.items() if "recovered" in k or "change" in k},
                                  "intervals_95": {k: [round(v, 4) for v in pair] for k, pair in r["intervals"].items()}}
    card["measured_on_test_writers"] = measured
    write_card(card_path, card)
    print(f"wrote the figures into {card_path}")


if __name__ == "__main__":
    main()
