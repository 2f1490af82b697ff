"""Print a markdown table row per metrics.json written by `signver evaluate`."""

import json
import sys

COLUMNS = ("eer_skilled", "eer_random", "auc_skilled", "balanced_accuracy_skilled", "threshold", "frr_at_threshold",
           "far_skilled_at_threshold", "far_random_at_threshold", "ece", "cllr")

print("| model | dataset | protocol | EER skilled | EER random | AUC skilled | bal. acc. skilled | threshold | FRR@thr | FAR skilled@thr | FAR random@thr | ECE | Cllr |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for path in sys.argv[1:]:
    m = json.load(open(path))
    protocol = "P1" if m["protocol"] == "p1" else f"P2, K={m['references']}, {m['fusion']}"
    cells = ["-" if c not in m else f"{m[c]:.3f}" if c in ("auc_skilled", "threshold", "ece", "cllr") else f"{100 * m[c]:.1f}" for c in COLUMNS]
    print(f"| {m['model']} | {m['dataset']} | {protocol} | " + " | ".join(cells) + " |")
