"""Start a fine-tuning run from a shipped ONNX file instead of a run's checkpoint.

A run's checkpoints stay on the machine that trained it, so re-making a fine-tuned model used to
mean re-training its whole chain first. A shipped ONNX file holds the same network with each
batch norm folded into the convolution before it (evaluation-mode batch norm is an affine map
per channel), so the torch network is given the same shape: every batch norm that follows a
convolution is removed and that convolution gets a bias (`fold_batch_norms`), and then each
convolution (and linear layer) takes the weights of the ONNX one that runs at the same place
(`load_onnx_weights`). Fine-tuning then goes on without batch norm in those layers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from torch import nn

from ..errors import InputError
from .networks import batch_norm_affine


def fold_batch_norms(network: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d that directly follows a Conv2d (in registration order, which is
    the order they run in inside each layer) by the identity, folding its current statistics and
    affine into the convolution, so the network computes what it did in evaluation mode."""
    replacements = []
    for parent in network.modules():  # each module once, even one reachable under two names
        previous: nn.Conv2d | None = None
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                previous = child
            elif isinstance(child, nn.BatchNorm2d) and previous is not None and previous.out_channels == child.num_features:
                replacements.append((parent, name, previous, child))
                previous = None
            else:
                previous = None
    for parent, name, conv, norm in replacements:
        with torch.no_grad():
            scale, bias = batch_norm_affine(norm)
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias.clone(), requires_grad=conv.weight.requires_grad)
        setattr(parent, name, nn.Identity())
    return network


def layers_in_running_order(network: nn.Module, sample: torch.Tensor, kinds: tuple[type[nn.Module], ...]) -> list[nn.Module]:
    """The network's layers of any of `kinds` in the order one forward pass calls them (leaves
    the network in evaluation mode; training loops set their mode each step)."""
    order: list[nn.Module] = []
    hooks = [m.register_forward_hook(lambda module, _in, _out: order.append(module))
             for m in network.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            network.eval()(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return order


LAYER_KINDS = ((nn.Conv2d, "Conv", "convolution"), (nn.Linear, "Gemm", "linear (Gemm)"))  # what a file's weights are taken for


def onnx_layer_weights(path: Path, op_type: str, graph: onnx.GraphProto | None = None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of each `op_type` node (Conv, or Gemm: a linear layer, weight given as
    torch holds it) of an ONNX graph, in graph order."""
    graph = graph if graph is not None else onnx.load(str(path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # some exporters keep weights in Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    weights = []
    for node in graph.node:
        if node.op_type != op_type:
            continue
        if node.input[1] not in tensors:
            raise InputError(f"init: {path}: layer {node.name} has weights computed in the graph (a quantised file?); start from a float model")
        weight, bias = tensors[node.input[1]], tensors.get(node.input[2]) if len(node.input) > 2 else None
        if op_type == "Gemm":
            attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attributes.get("transA", 0) or attributes.get("alpha", 1.0) != 1.0 or attributes.get("beta", 1.0) != 1.0:
                raise InputError(f"init: {path}: Gemm {node.name} is not a plain linear layer (transA, alpha or beta set)")
            weight = weight if attributes.get("transB", 0) else weight.T
            bias = None if bias is None else bias.reshape(-1)
        weights.append((weight, bias))
    return weights


def load_onnx_weights(network: nn.Module, path: Path, sample: torch.Tensor, new: list[nn.Module] = (),
                      exported: Callable[[torch.Tensor], torch.Tensor] = lambda y: y) -> nn.Module:
    """Fold the network's batch norms and give its convolutions and linear layers the weights
    of the ONNX file at `path`, which must hold the same network, checked layer by layer and
    then by running both on `sample` (`exported` turns the network's output into the file's,
    e.g. a sigmoid). Layers in `new` (a head the file lacks) keep their weights when the file
    has fewer layers of their kind than the network; a file that has them too gives them its
    weights."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"init: {path} is not a file")
    fold_batch_norms(network)
    fresh = {id(m) for m in new}
    graph = onnx.load(str(path)).graph
    order = layers_in_running_order(network, sample, tuple(kind for kind, _, _ in LAYER_KINDS))
    for kind, op_type, what in LAYER_KINDS:
        weights = onnx_layer_weights(path, op_type, graph)
        runs = [m for m in order if isinstance(m, kind)]
        layers = runs if len(runs) == len(weights) else [m for m in runs if id(m) not in fresh]
        if len(layers) != len(weights) or len(set(map(id, layers))) != len(layers):
            raise InputError(f"init: {path} holds a different network ({len(weights)} {what} layers; this one runs {len(runs)}, "
                             f"{len(runs) - len(layers)} of them new)")
        for index, (layer, (weight, bias)) in enumerate(zip(layers, weights)):
            if tuple(layer.weight.shape) != weight.shape or (bias is not None and layer.bias is None):
                raise InputError(f"init: {path} holds a different network ({what} layer {index}: {weight.shape}"
                                 f"{' with a bias' if bias is not None else ''}, this one {tuple(layer.weight.shape)})")
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.array(weight)))
                if layer.bias is not None:
                    layer.bias.copy_(torch.from_numpy(np.array(bias)) if bias is not None else torch.zeros_like(layer.bias))
    check_same_output(network, path, sample, exported)
    return network


def check_same_output(network: nn.Module, path: Path, sample: torch.Tensor, exported: Callable[[torch.Tensor], torch.Tensor]) -> None:
    """Refuse weights that landed in the wrong layers: two layers of one shape swapped, a batch
    norm left unfolded, a file that keeps its own batch norms would each change the output."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {session.get_inputs()[0].name: sample.numpy()})
    with torch.no_grad():
        got = exported(network.eval()(sample)).numpy()[:, : expected.shape[1]]
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4):
        raise InputError(f"init: {path} computes something else than this network with its weights "
                         f"(largest difference {np.abs(got - expected).max() if got.shape == expected.shape else 'in shape'})")
