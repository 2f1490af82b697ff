"""Print a markdown table row per metrics.json written by `signver evaluate`."""

import argparse
import json
from pathlib import Path

COLUMNS = ("eer_skilled", "eer_random", "auc_skilled", "balanced_accuracy_skilled", "balanced_accuracy_skilled_at_threshold", "threshold",
           "frr_at_threshold", "far_skilled_at_threshold", "far_random_at_threshold", "ece", "cllr")

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("metrics", nargs="+", type=Path, help="metrics.json files")
args = parser.parse_args()

print("| model | dataset | protocol | EER skilled | EER random | AUC skilled | best bal. acc. skilled | bal. acc. skilled@thr | threshold | FRR@thr "
      "| FAR skilled@thr | FAR random@thr | ECE | Cllr |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for path in args.metrics:
    m = json.loads(path.read_text())
    protocol = "P1" if m["protocol"] == "p1" else f"P2, K={m['references']}, {m['fusion']}"
    cells = ["-" if c not in m else f"{m[c]:.3f}" if c in ("auc_skilled", "threshold", "ece", "cllr") else f"{100 * m[c]:.1f}" for c in COLUMNS]
    print(f"| {m['model']} | {m['dataset']} | {protocol} | " + " | ".join(cells) + " |")
