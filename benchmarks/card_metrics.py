"""Record a model's measured test-split figures in its model card (`test_metrics`), from the
metrics.json files `benchmarks/accuracy.sh MODEL` wrote under out/MODEL/.

    python benchmarks/card_metrics.py MODEL
"""

import argparse
import json
from datetime import date
from pathlib import Path

from signver.models import load_card, write_card

KEYS = ("eer_skilled", "eer_random", "auc_skilled", "balanced_accuracy_skilled", "balanced_accuracy_skilled_at_threshold",
        "threshold", "frr_at_threshold", "far_skilled_at_threshold", "far_random_at_threshold", "ece", "cllr")

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("model", help="the model whose card takes the figures (name or .onnx path)")
parser.add_argument("--runs", type=Path, default=None, help="folder of the runs' metrics.json files (default out/MODEL)")
args = parser.parse_args()

runs = sorted((args.runs or Path("out", args.model)).glob("*/metrics.json"))
if not runs:  # run from the wrong folder, this would have replaced the card's figures with none
    parser.error(f"no */metrics.json under {args.runs or Path('out', args.model)}: run `bash benchmarks/accuracy.sh {args.model}` "
                 "from the project folder first")
card_path = load_card(args.model).path.with_suffix(".json")
card = json.loads(card_path.read_text())
measured = {"measured_with": f"bash benchmarks/accuracy.sh {args.model}", "date": date.today().isoformat(),
            "splits": "standard test writers (see ../shared/data/README.md)"}
for path in runs:
    metrics = json.loads(path.read_text())
    measured[path.parent.name] = {k: round(metrics[k], 4) for k in KEYS if k in metrics}
card["test_metrics"] = measured
write_card(card_path, card)
print(f"wrote {len(runs)} results into {card_path}")
