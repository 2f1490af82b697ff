"""Start a fine-tuning run from a shipped ONNX file instead of a run's checkpoint.

A run's checkpoints stay on the machine that trained it, so re-making a fine-tuned model used to
mean re-training its whole chain first. A shipped ONNX file holds the same network with each
batch norm folded into the convolution before it (evaluation-mode batch norm is an affine map
per channel), so the torch network is given the same shape: every batch norm that follows a
convolution is removed and that convolution gets a bias (`fold_batch_norms`), and then each
convolution takes the weights of the ONNX convolution that runs at the same place
(`load_onnx_weights`). Fine-tuning then goes on without batch norm in those layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper
from torch import nn

from ..errors import InputError


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
            scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
            bias = norm.bias - norm.running_mean * scale
            if conv.bias is not None:
                bias = bias + conv.bias * scale
            conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
            conv.bias = nn.Parameter(bias.clone(), requires_grad=conv.weight.requires_grad)
        setattr(parent, name, nn.Identity())
    return network


def convolutions_in_running_order(network: nn.Module, sample: torch.Tensor) -> list[nn.Conv2d]:
    """The network's Conv2d modules in the order one forward pass calls them."""
    order: list[nn.Conv2d] = []
    hooks = [m.register_forward_hook(lambda module, _in, _out: order.append(module))
             for m in network.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            network.eval()(sample)
    finally:
        for hook in hooks:
            hook.remove()
    return order


def onnx_convolution_weights(path: Path) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of each Conv node of an ONNX graph, in graph order."""
    graph = onnx.load(str(path)).graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:  # some exporters keep weights in Constant nodes
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensors[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    weights = []
    for node in graph.node:
        if node.op_type == "Conv":
            if node.input[1] not in tensors:
                raise InputError(f"{path}: convolution {node.name} has weights computed in the graph (a quantised file?); start from a float model")
            weights.append((tensors[node.input[1]], tensors.get(node.input[2]) if len(node.input) > 2 else None))
    return weights


def load_onnx_weights(network: nn.Module, path: Path, sample: torch.Tensor, new: list[nn.Module] = ()) -> nn.Module:
    """Fold the network's batch norms and give its convolutions the weights of the ONNX file
    at `path`, which must hold the same network (checked convolution by convolution) apart from
    the layers in `new` (a head the file lacks), which keep the weights they have."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"init: {path} is not a file")
    fold_batch_norms(network)
    fresh = {id(m) for m in new}
    convolutions = [c for c in convolutions_in_running_order(network, sample) if id(c) not in fresh]
    weights = onnx_convolution_weights(path)
    if len(convolutions) != len(weights) or len(set(map(id, convolutions))) != len(convolutions):
        raise InputError(f"init: {path} holds a different network ({len(weights)} convolutions, this one runs {len(convolutions)})")
    for index, (conv, (weight, bias)) in enumerate(zip(convolutions, weights)):
        if tuple(conv.weight.shape) != weight.shape:
            raise InputError(f"init: {path} holds a different network (convolution {index}: {weight.shape}, "
                             f"this one {tuple(conv.weight.shape)})")
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(np.array(weight)))
            if bias is None:
                if conv.bias is not None:
                    conv.bias.zero_()
            elif conv.bias is None:
                conv.bias = nn.Parameter(torch.from_numpy(bias.copy()), requires_grad=conv.weight.requires_grad)
            else:
                conv.bias.copy_(torch.from_numpy(np.array(bias)))
    return network
