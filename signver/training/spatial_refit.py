"""`signver train spatial-heads`: new spatial heads for an exported fused extractor, from its
ONNX file alone.

The spatial part of a fused extractor (`FusedEmbedder.add_spatial`) reads ImageNet maps that
no training changed, so its heads can be trained again without the network's torch weights:
the exported graph is cut where the pooled vector (ImageNet + trained parts) and the head's
input (the joined ImageNet maps) are made (`trunk`), heads train on the maps it gives, and a
new tail (`SpatialTail`: the heads and their share) exported from torch is joined back on.

A `global` spec goes further: global heads (`GlobalHead`, metric-learned on the same maps)
take the place of the trained network branch, which the new file leaves out (about a quarter
of the network's time). Every part of that vector is then fixed or trained on the maps alone,
so both shares (global, spatial) are chosen by cross-validating the whole vector. Either kind
of head may also train on stroke-width copies of the training scans (`copies`,
`original_share` in its spec; `signver.training.stroke_width`), the copies' maps computed once.
With `ink_stretch: {tone: T}`, every image is scaled to one ink tone in front of the trunk
(`signver.training.ink_tone`), in training and in the exported file alike.

The heads' share of the squared distance is chosen by writer cross-validation over all the
training writers that are not held out (for each fold, heads trained on the other folds'
writers score the fold's, on the ImageNet part joined to them: the trained part saw these
writers, so it is left out), or on the whole vector of the held-out writers
(`share_chosen_on: holdout`). Neither is right on its own: the 20 held-out writers misstate
unseen writers by several points, and the part's best share is not the whole vector's
(docs/benchmarks.md, fourteenth and fifteenth sessions). A config may also give the shares
(`share_chosen_on: config`, one of each), such as another recipe's cross-validated choice,
which saves the folds' heads. The held-out writers set the threshold as for any extractor.

    signver train spatial-heads --config configs/extractor-lite0-ms-gpu-t5e.yaml
    signver train spatial-heads --config configs/extractor-lite0-heads.yaml
"""

from __future__ import annotations

import hashlib
import json
import copy
import time
from datetime import date
from functools import cache
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
from .networks import SpatialEnsemble, SpatialTail, fold_input_norms
from .run_state import holding_run_dir, machine_name
from .ink_tone import stretch_spec, with_ink_stretch
from .global_head import DEFAULT_GLOBAL_LOSS, global_seeds, trained_global_head
from .losses import chosen_loss
from .spatial import head_seeds, spatial_embeddings, trained_head
from .stroke_width import augmented_copy, augmented_seed, changes_of, training_maps

SHARES = (0.0, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2)  # spatial shares tried unless the config lists its own
SPATIAL = "/spatial/"  # the head's nodes, as torch names them (`FusedEmbedder.spatial`, `SpatialTail.spatial`)
TAIL = "tail/"  # prefix of the new tail's names, so that none clashes with the trunk's


def cut_points(model: onnx.ModelProto) -> tuple[str, str]:
    """The tensors an exported fused extractor with a spatial part joins into its embedding:
    (the pooled vector, the spatial head's input maps)."""
    parts = scaled_parts(model, model.graph.output[0].name)
    if parts is None:
        raise ValueError("not a fused extractor with a spatial part: its embedding is not two scaled parts joined")
    pooled = parts[0]
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


def imagenet_part(model: onnx.ModelProto, pooled: str) -> str:
    """The ImageNet part inside a fused extractor's pooled vector `pooled` (which joins it,
    scaled, to the learned part: the trained network's or a global head's)."""
    parts = scaled_parts(model, pooled)
    if parts is None:
        raise ValueError("not a fused extractor: its pooled vector is not two scaled parts joined")
    return parts[0]


def scaled_parts(model: onnx.ModelProto, tensor: str) -> tuple[str, str] | None:
    """The two tensors that `tensor` joins, each scaled by its share (`join_parts`: a Concat of
    two Muls), or None when it is not made so."""
    producers = {out: node for node in model.graph.node for out in node.output}
    join = producers.get(tensor)
    if join is None or join.op_type != "Concat" or len(join.input) != 2 or any(producers.get(i) is None or producers[i].op_type != "Mul" for i in join.input):
        return None
    first, second = (producers[i].input[0] for i in join.input)
    return first, second


def trunk(model: onnx.ModelProto, imagenet_only: bool = False) -> onnx.ModelProto:
    """The graph from the image to (pooled vector, maps), without the spatial part; with
    `imagenet_only`, to (ImageNet part, maps), which leaves out the trained network branch."""
    pooled, maps = cut_points(model)
    if imagenet_only:
        pooled = imagenet_part(model, pooled)
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
    grid = cross_validated_grid(imagenet, maps, train, spec, folds, shares, run_dir)
    return {v: grid[0.0, v] for v in shares}


def cross_validated_grid(imagenet: np.ndarray, maps: torch.Tensor, train: TrainingSet, spec: dict, folds: int, shares, run_dir: Path,
                         global_spec: dict | None = None, global_shares=(0.0,), changed: dict[str, torch.Tensor] | None = None,
                         scored_folds: list[int] | None = None, made_from: str = "") -> dict[tuple[float, float], dict[str, float]]:
    """As `cross_validated_shares`, for each (global share w, spatial share v): the ImageNet
    part joined first to global heads (`global_spec`) trained on the other folds at share w, then
    to the spatial heads at share v. Every part is fixed or trained without the scored writers,
    so this scores the whole vector. Heads that train on copies find their maps in `changed`;
    they are scored on the originals. `scored_folds`: only these folds (a quicker estimate)."""
    scored = list(range(folds)) if scored_folds is None else [int(k) for k in scored_folds]
    if not scored or not all(0 <= k < folds for k in scored):
        raise InputError(f"scored folds must be among 0 to {folds - 1}, got {scored_folds}")
    fold = folds_of(train, folds)
    per_fold = []
    for k in scored:
        rest, mine = fold != k, fold == k
        others = train.subset(rest)
        spatial_maps = cache(lambda: training_maps(spec, maps, changed or {}).subset(rest))  # once per fold, and only if a head must train
        heads = [trained_head(spec, seed, maps.shape[1], spatial_maps, others, run_dir / f"spatial-seed{seed}-fold{k}of{folds}.pt", made_from)
                 for seed in head_seeds(spec)]
        local = ensemble_vectors(heads, maps[torch.from_numpy(mine)])
        learned = None
        if global_spec is not None:
            global_maps = cache(lambda: training_maps(global_spec, maps, changed or {}).subset(rest))
            globals_ = [trained_global_head(global_spec, seed, maps.shape[1], global_maps, others, run_dir / f"global-seed{seed}-fold{k}of{folds}.pt", made_from)
                        for seed in global_seeds(global_spec)]
            learned = ensemble_vectors(globals_, maps[torch.from_numpy(mine)])
        per_fold.append({(w, v): holdout_eers(joined(with_learned(imagenet[mine], learned, w), local, v), train.subset(mine)) for w in global_shares for v in shares})
    first = next(iter(per_fold[0].values()))
    names = [n for n in first if n != "all"]
    return {key: {n: round(float(np.mean([f[key][n] for f in per_fold])), 4) for n in names} for key in per_fold[0]}


def with_learned(imagenet: np.ndarray, learned: np.ndarray | None, share: float) -> np.ndarray:
    """The pooled vector: the ImageNet part, joined to a learned global part at `share` if any."""
    return imagenet if learned is None else joined(imagenet, learned, share)


def copy_images(name: str, train: TrainingSet, sources: list[dict], size: tuple[int, int], run_dir: Path) -> np.ndarray:
    """The images of copy `name`, image for image with `train`: an augmented copy of its
    normalised images, or the raw scans changed (`stroke_width.CHANGES`) and normalised."""
    seed = augmented_seed(name)
    if seed is not None:
        return augmented_copy(train.images, seed)
    return load_training_set(sources, size, "train", run_dir / f"train-{name}.npz", change=name).images


def export_tail(body: onnx.ModelProto, tail: SpatialTail, pooled_size: int, maps_shape: tuple[int, ...], path: Path) -> Path:
    """Write a `trunk` joined to `tail` as one ONNX file at `path`."""
    pooled, maps = (output.name for output in body.graph.output)
    tail_path = path.with_name(path.stem + "-tail.onnx")
    with torch.no_grad():
        torch.onnx.export(fold_input_norms(tail), (torch.zeros(2, pooled_size), torch.zeros(2, *maps_shape)), str(tail_path),
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
    extractor with its card; returns the ONNX path. With a `global` spec, global heads on the
    same maps take the trained network branch's place (left out of the new file), and their
    share is chosen with the spatial share, from `global_shares`."""
    started = time.time()
    base = Extractor(config["base"])
    spec, global_spec, run_dir = config["spatial"], config.get("global"), Path(config["run_dir"])
    folds, shares = int(config.get("folds", 5)), tuple(float(v) for v in config.get("shares", SHARES))
    global_shares = tuple(float(w) for w in config.get("global_shares", SHARES)) if global_spec else (0.0,)
    rule = config.get("share_chosen_on", "cross_validation")
    if rule not in ("cross_validation", "holdout", "config"):
        raise InputError(f"share_chosen_on must be cross_validation, holdout or config, not {rule!r}")
    if rule == "config" and len(shares) * len(global_shares) != 1:
        raise InputError("share_chosen_on: config needs one share in shares (and in global_shares with a global spec)")
    copy_names = list(dict.fromkeys(changes_of(spec) + changes_of(global_spec or {})))  # checked before any work
    if global_spec:
        chosen_loss(global_spec.get("loss", DEFAULT_GLOBAL_LOSS), "global, loss")
    stretch = stretch_spec(config.get("ink_stretch"))
    sources = config.get("data") or base.card.details["trained_on"]
    if not global_spec and json.dumps(sources, sort_keys=True) != json.dumps(base.card.details["trained_on"], sort_keys=True):
        raise InputError(f"without global heads the model keeps {base.name}'s trained network, trained on its own data and held-out "
                         "writers: the heads' data must be the same (leave data out to use the base's), or its held-out writers would "
                         "not be held out of the model")
    size = base.card.input_size
    with holding_run_dir(run_dir):
        train = load_training_set(sources, size, "train", run_dir / "train.npz")
        holdout = load_training_set(sources, size, "holdout", run_dir / "holdout.npz")
        body = trunk(onnx.load(base.card.path), imagenet_only=global_spec is not None)
        if stretch:
            body = with_ink_stretch(body, stretch["tone"])
        session = trunk_session(body)
        # the maps the heads read: a head saved from another base or ink stretch read others
        made_from = f" maps of {hashlib.sha1(base.card.path.read_bytes()).hexdigest()}, ink stretch {stretch or None}"
        train_pooled, train_maps = pooled_and_maps(session, train.images)
        held_pooled, held_maps = pooled_and_maps(session, holdout.images)
        changed = {name: pooled_and_maps(session, copy_images(name, train, sources, size, run_dir))[1] for name in copy_names}
        heads = [trained_head(spec, seed, train_maps.shape[1], lambda: training_maps(spec, train_maps, changed), train, run_dir / f"spatial-seed{seed}.pt", made_from)
                 for seed in head_seeds(spec)]
        globals_ = [trained_global_head(global_spec, seed, train_maps.shape[1], lambda: training_maps(global_spec, train_maps, changed), train, run_dir / f"global-seed{seed}.pt", made_from)
                    for seed in global_seeds(global_spec)] if global_spec else []
        local = ensemble_vectors(heads, held_maps)
        learned = ensemble_vectors(globals_, held_maps) if globals_ else None
        grid = [(w, v) for w in global_shares for v in shares]
        held = {(w, v): holdout_eers(joined(with_learned(held_pooled, learned, w), local, v), holdout) for w, v in grid}
        if rule == "cross_validation":
            imagenet = train_pooled if global_spec else unit(train_pooled[:, : -int(base.card.details["network"]["dim"])])
            scores = cross_validated_grid(imagenet, train_maps, train, spec, folds, shares, run_dir, global_spec, global_shares, changed, made_from=made_from)
            chosen_on = f"{folds}-fold writer cross-validation over the training writers (" + ("the whole vector" if global_spec else "ImageNet part + heads") + ")"
        else:
            scores, chosen_on = held, "held-out training writers (the whole vector)" if rule == "holdout" else "given in the config"
        global_share, share = min(grid, key=lambda key: scores[key]["mean"])
        spatial = SpatialEnsemble(heads) if len(heads) > 1 else heads[0]
        learned_head = (SpatialEnsemble(globals_) if len(globals_) > 1 else globals_[0]) if globals_ else None
        tail = SpatialTail(spatial, share, learned_head, global_share)
        path = export_tail(body, tail, held_pooled.shape[1], tuple(train_maps.shape[1:]), Path(config["out"]) / f"{config['name']}.onnx")
        card = {key: copy.deepcopy(value) for key, value in base.card.details.items() if key not in ("calibration", "claims", "test_metrics", "threshold_selection")}
        seconds = {"seconds": round(time.time() - started), "machine": machine_name(), "date": date.today().isoformat()}
        card |= {
            "name": config["name"],
            "description": config["description"],
            "base": base.name,
            "trained_on": copy.deepcopy(list(sources)),  # the heads' data, which calibration reads; not the base's
            "spatial": {**spec, "heads": len(heads), "weight": share, "chosen_on": chosen_on, **found_shares(held, scores if rule == "cross_validation" else None, global_spec is not None),
                        "head_training_seconds": _training_seconds(run_dir, "spatial-seed*.pt"), **seconds},
            "training_command": f"signver train spatial-heads --config {config_path}",
        }
        if stretch:
            card["ink_stretch"] = stretch
        if global_spec:
            learned_size = int(global_spec.get("dim", 128)) * len(globals_)
            card |= {
                "network": {"kind": "lite0", "blocks": max(int(t) for t in spec["taps"]), "pretrained": True, "trained_blocks": 0, "dim": learned_size,
                            "learned_part": "global heads on the fixed ImageNet maps (no trained network branch)"},
                "global": {**global_spec, "heads": len(globals_), "weight": global_share, "chosen_on": chosen_on,
                           "head_training_seconds": _training_seconds(run_dir, "global-seed*.pt")},
                "fusion": {**card.get("fusion", {}), "weight": round(1 - global_share, 6), "chosen_on": chosen_on},
                "loss": global_spec.get("loss", DEFAULT_GLOBAL_LOSS),
                "training": {"kind": "heads on fixed ImageNet maps", **seconds},
            }
        write_card(path.with_suffix(".json"), card)
        set_holdout_threshold(path, card, holdout)
        return path


def found_shares(held: dict, cross_validated: dict | None, with_global: bool) -> dict:
    """The EERs each share (or pair of global and spatial shares) scored, for the card."""
    def table(scores: dict) -> dict | list:
        if with_global:
            return [{"global_weight": w, "weight": v, **eers} for (w, v), eers in scores.items()]
        return {str(v): eers for (_, v), eers in scores.items()}
    return {"holdout_eer": table(held)} | ({"cross_validated_eer": table(cross_validated)} if cross_validated is not None else {})


def _training_seconds(run_dir: Path, pattern: str) -> float:
    return round(sum(torch.load(p, weights_only=False).get("seconds", 0) for p in run_dir.glob(pattern)), 1)
