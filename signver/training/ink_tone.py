"""Ink tone: the same writer's ink is light grey on one scanner and black on another.

Normalisation keeps the ink's tone (the 95th percentile of normalised ink is 255 on
BHSig260 and 134 on CEDAR), and heads trained on ImageNet maps learn it as a trait of the
writer (docs/benchmarks.md, twenty-first session). `ink_stretch` in a spatial-heads config
puts a stretch in front of the extractor's graph, so training, evaluation and inference all
see it and `signver.normalize` stays as it is: each image is brightened until its ink tone,
sum(x^2) / sum(x) (the ink's intensity weighted by itself, which an ONNX graph computes and
which follows the 95th percentile closely), reaches a ratio chosen on the training images.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

PREFIX = "stretch/"  # the stretch's names in the joined graph, so that none clashes with the trunk's
MOST_GAIN = 4.0  # an image is never brightened more: faint noise on a blank crop stays faint


def ink_tone(images: np.ndarray) -> np.ndarray:
    """Each normalised uint8 image's ink tone in [0, 1]: sum(x^2) / sum(x), x = ink / 255."""
    x = images.reshape(len(images), -1).astype(np.float64) / 255.0
    return (x**2).sum(1) / np.maximum(x.sum(1), 1e-6)


def stretch_ratio(images: np.ndarray) -> float:
    """The tone the stretch aims at: the median, over images, of tone / 95th percentile of
    the ink, so that an image's 95th percentile lands near full ink as a whole."""
    tones, tops = ink_tone(images), []
    for image in images:
        ink = image[image > 0]
        tops.append(np.percentile(ink, 95) / 255.0 if ink.size else np.nan)
    return round(float(np.nanmedian(tones / np.array(tops))), 4)


class InkStretch(nn.Module):
    """Model input (N, 1, H, W) in [0, 1] -> the same with its ink brightened by
    ratio / tone, clamped to [1, MOST_GAIN], and clipped at 1."""

    def __init__(self, ratio: float):
        super().__init__()
        self.ratio = float(ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tone = (x * x).sum((1, 2, 3), keepdim=True) / x.sum((1, 2, 3), keepdim=True).clamp_min(1e-6)
        gain = (self.ratio / tone.clamp_min(1e-6)).clamp(1.0, MOST_GAIN)
        return (x * gain).clamp(max=1.0)


def with_ink_stretch(body: onnx.ModelProto, ratio: float) -> onnx.ModelProto:
    """`body` with an `InkStretch` in front of its input; the joined graph keeps the input's
    name, so callers feed it as before."""
    image = body.graph.input[0]
    dims = image.type.tensor_type.shape.dim
    with tempfile.TemporaryDirectory() as scratch, torch.no_grad():
        path = Path(scratch) / "ink-stretch.onnx"
        torch.onnx.export(InkStretch(ratio), (torch.rand(2, 1, dims[2].dim_value, dims[3].dim_value),), str(path),
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
