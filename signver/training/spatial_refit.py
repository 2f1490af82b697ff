"""`signver train spatial-heads`: new spatial heads for an exported fused extractor, from its
ONNX file alone.

The spatial part of a fused extractor (`FusedEmbedder.add_spatial`) reads ImageNet maps that
no training changed, so its heads can be trained again without the network's torch weights:
the exported graph is cut where the pooled vector (ImageNet + trained parts) and the head's
input (the joined ImageNet maps) are made (`trunk`), heads train on the maps it gives, and a
new tail (`SpatialTail`: the heads and their share) exported from torch is joined back on.

The heads' share of the squared distance is chosen by writer cross-validation over all the
training writers that are not held out (for each fold, heads trained on the other folds'
writers score the fold's, on the ImageNet part joined to them: the trained part saw these
writers, so it is left out), or on the whole vector of the held-out writers
(`share_chosen_on: holdout`). Neither is right on its own: the 20 held-out writers misstate
unseen writers by several points, and the part's best share is not the whole vector's
(docs/benchmarks.md, fourteenth and fifteenth sessions). The held-out writers set the
threshold as for any extractor.

    signver train spatial-heads --config configs/extractor-lite0-ms-gpu-t5e.yaml
"""

from __future__ import annotations

import copy
import time
from datetime import date
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from rich.progress import track

from ..errors import InputError
from ..extractor import Extractor
from ..models import inference_session, write_card
from ..normalize import to_model_input
from .data import TrainingSet, load_training_set
from .loop import holdout_eers, set_holdout_threshold
from .networks import SpatialEnsemble, SpatialTail
from .run_state import machine_name
from .spatial import head_seeds, spatial_embeddings, trained_head

SHARES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)  # spatial shares tried unless the config lists its own
SPATIAL = "/spatial/"  # the head's nodes, as torch names them (`FusedEmbedder.spatial`, `SpatialTail.spatial`)
TAIL = "tail/"  # prefix of the new tail's names, so that none clashes with the trunk's


def cut_points(model: onnx.ModelProto) -> tuple[str, str]:
    """The tensors an exported fused extractor with a spatial part joins into its embedding:
    (the pooled vector, the spatial head's input maps)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    final = producers.get(model.graph.output[0].name)
    if final is None or final.op_type != "Concat" or len(final.input) != 2 or any(producers.get(i) is None or producers[i].op_type != "Mul" for i in final.input):
        raise ValueError("not a fused extractor with a spatial part: its embedding is not two scaled parts joined")
    pooled = producers[final.input[0]].input[0]
    from_image = {model.graph.input[0].name}  # tensors that depend on the image, in graph order
    for node in model.graph.node:
        if from_image.intersection(node.input):
            from_image.update(node.output)
    head = [node for node in model.graph.node if SPATIAL in node.name]
    inside = {out for node in head for out in node.output}
    entries = {name for node in head for name in node.input if name in from_image and name not in inside}
    if len(entries) != 1:
        raise ValueError(f"not a fused extractor with a spatial part: its spatial nodes' input maps are {sorted(entries) or 'not there'}")
    return pooled, entries.pop()


def trunk(model: onnx.ModelProto) -> onnx.ModelProto:
    """The graph from the image to (pooled vector, maps), without the spatial part."""
    pooled, maps = cut_points(model)
    return onnx.utils.Extractor(onnx.shape_inference.infer_shapes(model)).extract_model([model.graph.input[0].name], [pooled, maps])


def trunk_session(body: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU session of a `trunk`, made from memory."""
    return ort.InferenceSession(body.SerializeToString(), providers=["CPUExecutionProvider"])


def pooled_and_maps(session: ort.InferenceSession, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, torch.Tensor]:
    """The trunk's outputs for normalised uint8 images: pooled vectors, and maps as float16
    (what the heads train on; 9,162 training images' maps take 0.85 GB so)."""
    pooled, maps = [], []
    for start in track(range(0, len(images), batch), description="ImageNet maps"):
        vector, grid = session.run(None, {session.get_inputs()[0].name: to_model_input(images[start : start + batch])})
        pooled.append(vector)
        maps.append(torch.from_numpy(grid).half())
    return np.concatenate(pooled), torch.cat(maps)


def folds_of(data: TrainingSet, k: int) -> np.ndarray:
    """Each image's fold: writers dealt round-robin within their dataset after a seeded shuffle."""
    rng, fold_of = np.random.default_rng(0), {}
    for dataset in np.unique(data.dataset):
        writers = np.unique(data.writer[data.dataset == dataset])
        for i, writer in enumerate(writers[rng.permutation(len(writers))]):
            fold_of[writer] = i % k
    return np.array([fold_of[w] for w in data.writer])


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def joined(pooled: np.ndarray, local: np.ndarray, share: float) -> np.ndarray:
    return np.hstack([pooled * (1 - share) ** 0.5, local * share**0.5])


def ensemble_vectors(heads: list, maps: torch.Tensor) -> np.ndarray:
    """What `SpatialEnsemble(heads)` gives for `maps` (one head: its own vector)."""
    return unit(np.hstack([spatial_embeddings(head, maps) for head in heads]))


def cross_validated_shares(imagenet: np.ndarray, maps: torch.Tensor, train: TrainingSet, spec: dict, folds: int, shares, run_dir: Path) -> dict[float, dict[str, float]]:
    """P1 skilled EER (mean over folds, per dataset and their mean) of the ImageNet part joined
    to heads trained on the other folds, at each share. Heads are kept in `run_dir`."""
    fold = folds_of(train, folds)
    per_fold = []
    for k in range(folds):
        rest, mine = torch.from_numpy(fold != k), fold == k
        heads = [trained_head(spec, seed, maps.shape[1], lambda: maps[rest], train.subset(fold != k), run_dir / f"spatial-seed{seed}-fold{k}of{folds}.pt")
                 for seed in head_seeds(spec)]
        local = ensemble_vectors(heads, maps[torch.from_numpy(mine)])
        per_fold.append({v: holdout_eers(joined(imagenet[mine], local, v), train.subset(mine)) for v in shares})
    names = [n for n in per_fold[0][shares[0]] if n != "all"]
    return {v: {n: round(float(np.mean([f[v][n] for f in per_fold])), 4) for n in names} for v in shares}


def export_tail(body: onnx.ModelProto, tail: SpatialTail, pooled_size: int, maps_shape: tuple[int, ...], path: Path) -> Path:
    """Write a `trunk` joined to `tail` as one ONNX file at `path`."""
    pooled, maps = (output.name for output in body.graph.output)
    tail_path = path.with_name(path.stem + "-tail.onnx")
    with torch.no_grad():
        torch.onnx.export(tail.eval(), (torch.zeros(2, pooled_size), torch.zeros(2, *maps_shape)), str(tail_path),
                          input_names=["pooled", "maps"], output_names=["embedding"],
                          dynamic_axes={"pooled": {0: "batch"}, "maps": {0: "batch"}, "embedding": {0: "batch"}}, opset_version=17, dynamo=False)
    end = onnx.compose.add_prefix(onnx.load(tail_path), TAIL)
    tail_path.unlink()
    for node in end.graph.node:
        node.output[:] = ["embedding" if out == TAIL + "embedding" else out for out in node.output]
    end.graph.output[0].name = "embedding"
    model = onnx.compose.merge_models(body, end, io_map=[(pooled, TAIL + "pooled"), (maps, TAIL + "maps")])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    inference_session.cache_clear()  # a file of the same name made earlier in this process may be cached
    return path


def refit_spatial(config: dict, config_path: str) -> Path:
    """Train the config's heads for its `base` extractor, choose their share (`share_chosen_on`:
    `cross_validation`, or `holdout`, the whole vector on the held-out writers), export the new
    extractor with its card; returns the ONNX path."""
    started = time.time()
    base = Extractor(config["base"])
    spec, run_dir = config["spatial"], Path(config["run_dir"])
    folds, shares = int(config.get("folds", 5)), tuple(float(v) for v in config.get("shares", SHARES))
    rule = config.get("share_chosen_on", "cross_validation")
    if rule not in ("cross_validation", "holdout"):
        raise InputError(f"share_chosen_on must be cross_validation or holdout, not {rule!r}")
    sources = config.get("data") or base.card.details["trained_on"]
    size = base.card.input_size
    train = load_training_set(sources, size, "train", run_dir / "train.npz")
    holdout = load_training_set(sources, size, "holdout", run_dir / "holdout.npz")
    body = trunk(onnx.load(base.card.path))
    session = trunk_session(body)
    train_pooled, train_maps = pooled_and_maps(session, train.images)
    held_pooled, held_maps = pooled_and_maps(session, holdout.images)
    heads = [trained_head(spec, seed, train_maps.shape[1], lambda: train_maps, train, run_dir / f"spatial-seed{seed}.pt") for seed in head_seeds(spec)]
    local = ensemble_vectors(heads, held_maps)
    held = {v: holdout_eers(joined(held_pooled, local, v), holdout) for v in shares}
    found = {"holdout_eer": {str(v): held[v] for v in shares}}
    if rule == "cross_validation":
        trained_dim = int(base.card.details["network"]["dim"])
        cv = cross_validated_shares(unit(train_pooled[:, :-trained_dim]), train_maps, train, spec, folds, shares, run_dir)
        share, chosen_on = min(shares, key=lambda v: cv[v]["mean"]), f"{folds}-fold writer cross-validation over the training writers (ImageNet part + heads)"
        found["cross_validated_eer"] = {str(v): cv[v] for v in shares}
    else:
        share, chosen_on = min(shares, key=lambda v: held[v]["mean"]), "held-out training writers (the whole vector)"
    spatial = SpatialEnsemble(heads) if len(heads) > 1 else heads[0]
    path = export_tail(body, SpatialTail(spatial, share), held_pooled.shape[1], tuple(train_maps.shape[1:]), Path(config["out"]) / f"{config['name']}.onnx")
    card = {key: copy.deepcopy(value) for key, value in base.card.details.items() if key not in ("calibration", "claims", "test_metrics", "threshold_selection")}
    card |= {
        "name": config["name"],
        "description": config["description"],
        "base": base.name,
        "spatial": {**spec, "heads": len(heads), "weight": share, "chosen_on": chosen_on, **found,
                    "seconds": round(time.time() - started), "head_training_seconds": round(sum(torch.load(p, weights_only=False).get("seconds", 0) for p in run_dir.glob("spatial-seed*.pt")), 1),
                    "machine": machine_name(), "date": date.today().isoformat()},
        "training_command": f"signver train spatial-heads --config {config_path}",
    }
    write_card(path.with_suffix(".json"), card)
    set_holdout_threshold(path, card, holdout)
    return path
