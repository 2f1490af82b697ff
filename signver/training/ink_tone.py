"""Ink tone: the same writer's ink is light grey on one scanner and black on another.

Normalisation keeps the ink's tone (the 95th percentile of normalised ink is 255 on
BHSig260 and 134 on CEDAR), and heads trained on ImageNet maps learn it as a trait of the
writer: `lite0-heads` loses 6.6 points of P1 EER on CEDAR's test writers when half the scans
have lighter ink (docs/benchmarks.md, twenty-second session). `ink_stretch: {tone: T}` in a
spatial-heads config puts a scaling in front of the extractor's graph, so training,
evaluation and inference all see it and `signver.normalize` stays as it is: each image is
scaled so that its ink tone, sum(x^2) / sum(x) (the ink's intensity weighted by itself, a
plain reduction in ONNX), is T. Choose a T to which no training image's ink is scaled past
full ink, so the strokes keep their own shading: 0.5 clips 0.02 % of CEDAR's ink and none of
BHSig260's, where brightening to a tone near full ink clipped a fifth of CEDAR's and gave
0.5 points more P1 EER on its test writers.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import onnx
import torch
from torch import nn

from ..errors import InputError

PREFIX = "stretch/"  # the stretch's names in the joined graph, so that none clashes with the trunk's
MOST_GAIN = 4.0  # no image is scaled by more, or by less than its inverse: faint noise on a blank crop stays faint


def stretch_spec(value) -> dict | None:
    """The model card's `ink_stretch` entry for a config's `ink_stretch` value (None when it
    asks for no stretch), checked before any work."""
    if not value:
        return None
    tone = value.get("tone") if isinstance(value, dict) else None
    if isinstance(tone, bool) or not isinstance(tone, (int, float)) or not 0 < tone <= 1:
        raise InputError(f"ink_stretch must be {{tone: T}} with T in (0, 1], not {value!r}")
    return {"tone": float(tone), "most_gain": MOST_GAIN, "measure": "sum(x^2) / sum(x)"}


class InkStretch(nn.Module):
    """Model input (N, 1, H, W) in [0, 1] -> the same scaled by tone / its ink tone (the gain
    clamped to [1 / MOST_GAIN, MOST_GAIN]), clipped at 1."""

    def __init__(self, tone: float):
        super().__init__()
        self.tone = float(tone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tone = (x * x).sum((1, 2, 3), keepdim=True) / x.sum((1, 2, 3), keepdim=True).clamp_min(1e-6)
        gain = (self.tone / tone.clamp_min(1e-6)).clamp(1 / MOST_GAIN, MOST_GAIN)
        return (x * gain).clamp(max=1.0)


def with_ink_stretch(body: onnx.ModelProto, tone: float) -> onnx.ModelProto:
    """`body` with an `InkStretch` in front of its input; the joined graph keeps the input's
    name, so callers feed it as before."""
    image = body.graph.input[0]
    dims = image.type.tensor_type.shape.dim
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad():
        path = Path(scratch) / "ink-stretch.onnx"
        torch.onnx.export(InkStretch(tone), (torch.rand(2, 1, dims[2].dim_value, dims[3].dim_value),), str(path),
                          input_names=[image.name], output_names=["stretched"],
                          dynamic_axes={image.name: {0: "batch"}, "stretched": {0: "batch"}}, opset_version=17, dynamo=False)
        front = onnx.load(path)
    front = onnx.compose.add_prefix(front, PREFIX, rename_inputs=False)
    body = copy.deepcopy(body)
    for node in body.graph.node:
        node.input[:] = [PREFIX + "input" if name == image.name else name for name in node.input]
    body.graph.input[0].name = PREFIX + "input"
    joined = onnx.compose.merge_models(front, body, io_map=[(PREFIX + "stretched", PREFIX + "input")])
    onnx.checker.check_model(joined)
    return joined
