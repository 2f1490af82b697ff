"""Export a torch embedding network to ONNX, the only form inference uses."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


def input_spec(size: tuple[int, int]) -> dict:
    """The model card's description of what the network takes."""
    return {"height": size[0], "width": size[1], "channels": 1, "dtype": "float32", "range": [0, 1],
            "polarity": "ink bright on black", "preprocessing": "signver.normalize.normalize"}


def export_onnx(network: nn.Module, path: Path, input_size: tuple[int, int]) -> Path:
    """Write `network` (input (N, 1, H, W) float in [0, 1]) as ONNX with a dynamic batch axis."""
    network = network.eval().float()
    example = torch.zeros(2, 1, *input_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            network,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["embedding"],
            dynamic_axes={"image": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    return path
