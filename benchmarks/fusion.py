"""Which fusion of the distances to K references should `verify_claim` use? Protocol P2.

The choice is made on held-out TRAINING writers (never seen by the network's gradient, listed
in the model card); the test splits are reported beside it, not used to choose.

    python benchmarks/fusion.py [--model NAME] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from common import held_out_writers

from signver.evaluation.metrics import eer
from signver.evaluation.protocols import POSITIVE, RANDOM, SKILLED
from signver.evaluation.report import build_trials
from signver.extractor import Extractor
from signver.matcher import FUSIONS, distances, fuse
from signver.models import load_card

TEST_SPLITS = {"cedar": "cedar", "bhsig260-bengali": "bhsig260-bengali"}


def p2_eers(extractor: Extractor, data_dir: str, k: int, split: str | None, writers: str | None) -> dict[str, dict[str, float]]:
    _, trials = build_trials(data_dir, "p2", k, split, writers)
    embeddings = extractor.embed(trials.images)
    references = embeddings[trials.references]
    per_reference = distances(references, embeddings[trials.questioned][:, None, :])
    result = {}
    for fusion in FUSIONS:
        scores = fuse(per_reference, fusion, references)
        genuine = scores[trials.kind == POSITIVE]
        result[fusion] = {"skilled": eer(genuine, scores[trials.kind == SKILLED])[0], "random": eer(genuine, scores[trials.kind == RANDOM])[0]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--data", default="../shared/data")
    args = parser.parse_args()
    extractor = Extractor(args.model)
    card = load_card(extractor.name)
    rows = []
    for name, held_out in held_out_writers(card).items():
        for k in (5, 12):
            rows.append(("held-out training writers", name, k, p2_eers(extractor, f"{args.data}/{name}", k, None, held_out)))
            if name in TEST_SPLITS:
                rows.append(("test split", name, k, p2_eers(extractor, f"{args.data}/{name}", k, TEST_SPLITS[name], None)))
    print(f"model {extractor.name}; P2 EER skilled / random (%)")
    print("| writers | dataset | K | " + " | ".join(FUSIONS) + " |")
    print("|---|---|---|" + "---|" * len(FUSIONS))
    for role, name, k, result in rows:
        cells = " | ".join(f"{100 * result[f]['skilled']:.1f} / {100 * result[f]['random']:.1f}" for f in FUSIONS)
        print(f"| {role} | {name} | {k} | {cells} |")
    held = [r for role, _, _, r in rows if role.startswith("held-out")]
    mean_skilled = {f: float(np.mean([r[f]["skilled"] for r in held])) for f in FUSIONS}
    print(json.dumps({"held_out_mean_eer_skilled": mean_skilled, "chosen": min(mean_skilled, key=mean_skilled.get)}))


if __name__ == "__main__":
    main()
