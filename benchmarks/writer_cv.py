"""How well do 20 held-out writers predict unseen writers? Writer cross-validation of the parts
of an extractor that never trained on training writers' signatures.

The shipped vector is mostly ImageNet features (never trained on signatures) and a spatial head
trained on ImageNet maps of the training writers. Both can be measured on every training writer:
the ImageNet part as it is, the spatial head by k-fold cross-validation (a head trained, with
the card's own spec and seed, on the other folds' writers, scored on the fold's). Folds are
drawn per dataset. The trained network saw the training writers, so it is left out here; this
measures the ImageNet + spatial part, P1 skilled EER, next to the same part on the card's 20
held-out writers.

    cd benchmarks && python writer_cv.py [--model NAME] [--folds 5] [--data ../../shared/data]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

from common import machine
from signver.extractor import Extractor
from signver.models import inference_session
from signver.normalize import to_model_input
from signver.training.data import TrainingSet, load_training_set
from signver.training.loop import holdout_eers
from signver.training.networks import SpatialHead
from signver.training.spatial import fit_head, spatial_embeddings

SHARES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)  # the spatial head's share of the squared distance


def maps_session(model_path: Path):
    """The extractor's ONNX with the spatial head's input (the joined ImageNet maps) as a second output."""
    model = onnx.load(model_path)
    head_input = next(node.input[0] for node in model.graph.node if node.name.startswith("/spatial/") and node.op_type == "BatchNormalization")
    model.graph.output.append(onnx.helper.make_tensor_value_info(head_input, onnx.TensorProto.FLOAT, None))
    path = Path(tempfile.gettempdir()) / f"{Path(model_path).stem}-maps.onnx"
    onnx.save(model, path)
    return inference_session(path)


def vectors_and_maps(session, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, torch.Tensor]:
    vectors, maps = [], []
    for start in range(0, len(images), batch):
        vector, grid = session.run(None, {session.get_inputs()[0].name: to_model_input(images[start : start + batch])})
        vectors.append(vector)
        maps.append(torch.from_numpy(grid).half())
    return np.concatenate(vectors), torch.cat(maps)


def folds_of(data: TrainingSet, k: int) -> np.ndarray:
    """Each image's fold: writers dealt round-robin within their dataset after a seeded shuffle."""
    rng, fold_of = np.random.default_rng(0), {}
    for dataset in np.unique(data.dataset):
        writers = np.unique(data.writer[data.dataset == dataset])
        for i, writer in enumerate(writers[rng.permutation(len(writers))]):
            fold_of[writer] = i % k
    return np.array([fold_of[w] for w in data.writer])


def scores(imagenet: np.ndarray, local: np.ndarray, data: TrainingSet) -> dict[float, dict[str, float]]:
    return {v: holdout_eers(np.hstack([imagenet * (1 - v) ** 0.5, local * v**0.5]), data) for v in SHARES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--data", default="../../shared/data")
    parser.add_argument("--cache", default="/tmp/writer-cv", help="folder for the normalised training images")
    args = parser.parse_args()
    card = Extractor(args.model).card
    spec = card.details["spatial"]
    sources = [{**s, "path": f"{args.data}/{Path(s['path']).name}"} for s in card.details["trained_on"]]
    Path(args.cache).mkdir(parents=True, exist_ok=True)
    train = load_training_set(sources, card.input_size, "train", Path(args.cache) / f"train-{card.input_size[0]}.npz")
    holdout = load_training_set(sources, card.input_size, "holdout", Path(args.cache) / f"holdout-{card.input_size[0]}.npz")
    session = maps_session(card.path)
    vectors, maps = vectors_and_maps(session, train.images)
    held_vectors, _ = vectors_and_maps(session, holdout.images)
    local_size = int(spec["channels"]) * int(np.prod(maps.shape[-2:])) // int(spec.get("pool", 2)) ** 2
    imagenet_size = vectors.shape[1] - int(card.details["network"]["dim"]) - local_size

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    fold = folds_of(train, args.folds)
    per_fold = []
    for k in range(args.folds):
        torch.manual_seed(int(spec.get("seed", 0)))
        head = SpatialHead(spec["taps"], maps.shape[1], int(spec["width"]), int(spec["channels"]), int(spec.get("pool", 2)))
        fit_head(head, maps[fold != k], spec, train.subset(fold != k))
        mine = fold == k
        per_fold.append(scores(unit(vectors[mine, :imagenet_size]), spatial_embeddings(head, maps[mine]), train.subset(mine)))
        print(f"fold {k + 1} of {args.folds}: " + json.dumps({str(v): r for v, r in per_fold[-1].items()}), flush=True)
    shipped = scores(unit(held_vectors[:, :imagenet_size]), unit(held_vectors[:, -local_size:]), holdout)
    names = [n for n in per_fold[0][SHARES[0]] if n not in ("all", "mean")]
    print(f"\nmodel {card.name}; machine {machine()}")
    print(f"P1 skilled EER (%) of the ImageNet part + spatial head; {args.folds}-fold writer cross-validation over "
          f"{len(np.unique(train.writer))} training writers, against the card's {len(np.unique(holdout.writer))} held-out writers (shipped head)")
    print("| writers | spatial share v | " + " | ".join(names) + " | mean |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for v in SHARES:
        cv = {n: 100 * np.mean([f[v][n] for f in per_fold]) for n in names + ["mean"]}
        print(f"| cross-validated training writers | {v} | " + " | ".join(f"{cv[n]:.2f}" for n in names + ["mean"]) + " |")
    for v in SHARES:
        print(f"| held-out writers | {v} | " + " | ".join(f"{100 * shipped[v][n]:.2f}" for n in names + ["mean"]) + " |")


if __name__ == "__main__":
    main()
