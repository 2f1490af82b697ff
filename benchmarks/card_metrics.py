"""Record a model's measured test-split figures in its model card (`test_metrics`), from the
metrics.json files `benchmarks/accuracy.sh MODEL` wrote under out/MODEL/.

    python benchmarks/card_metrics.py MODEL
"""

import json
import sys
from datetime import date
from pathlib import Path

from signver.models import load_card, write_card

KEYS = ("eer_skilled", "eer_random", "auc_skilled", "balanced_accuracy_skilled", "threshold", "frr_at_threshold",
        "far_skilled_at_threshold", "far_random_at_threshold", "ece", "cllr")

model = sys.argv[1]
card_path = load_card(model).path.with_suffix(".json")
card = json.loads(card_path.read_text())
measured = {"measured_with": f"bash benchmarks/accuracy.sh {model}", "date": date.today().isoformat(),
            "splits": "standard test writers (see ../shared/data/README.md)"}
for path in sorted(Path("out", model).glob("*/metrics.json")):
    metrics = json.loads(path.read_text())
    measured[path.parent.name] = {k: round(metrics[k], 4) for k in KEYS if k in metrics}
card["test_metrics"] = measured
write_card(card_path, card)
print(f"wrote {len(measured) - 3} results into {card_path}")
