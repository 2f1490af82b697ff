"""A cleaner network whose encoder is EfficientNet-Lite0 with its ImageNet weights.

The plain U-Net learns from nothing what printed type, stamps and handwriting look like, and
the clutter it keeps (stamps and overlapping print most) is what holds verification back on
cleaned crops (docs/benchmarks.md, "Cleaner"). ImageNet features already tell textures and
shapes apart, so here they carry the "what is this" and a light top-down decoder, fed at the
finest level with the pixel-unshuffled input itself, carries the "exactly where".

Input (N, 1, H, W), ink bright in [0, 1], H and W multiples of 16; output (N, 1, H, W) logits
of "this pixel is signature ink" (N, 2, H, W with a tone head), as `signver.training.cleaner.UNet` gives.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .detector_network import separable
from .pretrained import FrozenLayers, imagenet_input, lite0_trunk

TAPS = (0, 2, 4, 10)  # the last block of each stride: 2, 4, 8 and 16
FROZEN_BLOCKS = 5  # what cleaner-lite0 and cleaner-lite0-calm train with
SETTINGS = {"kind", "width", "frozen_blocks", "pretrained", "tone", "tone_context"}  # the `network` keys this kind reads


class Lite0Cleaner(FrozenLayers):
    """Encoder blocks tapped at strides 2, 4, 8 and 16, merged top-down (stride 16 into 8 into
    4, each by a separable convolution), added to the stride-2 tap and joined there with the
    2x2 pixel-unshuffled input; a 1x1 convolution gives four logits per stride-2 cell, shuffled
    back to full resolution. The stem and the first `frozen_blocks` blocks keep their ImageNet
    weights and batch-norm statistics (the stem always: it sees only grey pages). With `tone`, a
    second 1x1 convolution gives a second output channel, the logit of the clean signature's ink
    darkness at each pixel, as the U-Net's tone head does. With `tone_context`, a linear map of
    the deepest features averaged over the network's input (the crop and its white padding)
    shifts that logit by one number per pixel of each 2x2 cell, the same over the whole crop:
    scan damage that takes an ink's tone away (a bitonal scan) leaves no trace of it at any one
    pixel, and what the crop shows as a whole (script, stroke style, what the damage did) is all
    there is to go on."""

    def __init__(self, width: int = 32, frozen_blocks: int = FROZEN_BLOCKS, pretrained: bool = True, tone: bool = False,
                 tone_context: bool = False):
        super().__init__()
        if not 0 <= frozen_blocks <= TAPS[-1] + 1:
            raise InputError(f"network.frozen_blocks must be 0 to {TAPS[-1] + 1} for kind lite0, not {frozen_blocks}")
        self.stem, self.blocks = lite0_trunk(TAPS[-1] + 1, pretrained)
        channels = [self.blocks[t]._project_conv.out_channels for t in TAPS]
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.merge = nn.ModuleList(separable(width, width) for _ in TAPS[1:-1])
        self.fine = nn.Sequential(nn.Conv2d(width + 4, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(width, 4, 1)
        self.tone = nn.Conv2d(width, 4, 1) if tone else None
        if tone_context and not tone:
            raise InputError("network.tone_context needs network.tone: true")
        self.tone_context = nn.Linear(channels[-1], 4) if tone_context else None
        if self.tone_context is not None:  # starts as no shift: a network given a file's weights computes what the file does
            nn.init.zeros_(self.tone_context.weight)
            nn.init.zeros_(self.tone_context.bias)
        self.freeze([self.stem, *self.blocks[:frozen_blocks]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(imagenet_input(x))
        features = []
        for index, block in enumerate(self.blocks):
            h = block(h)
            if index in TAPS:
                features.append(h)
        top = self.lateral[-1](features[-1])
        for level in range(len(features) - 2, 0, -1):
            lateral = self.lateral[level](features[level])
            top = self.merge[level - 1](lateral + F.interpolate(top, size=lateral.shape[-2:], mode="bilinear", align_corners=False))
        finest = self.lateral[0](features[0]) + F.interpolate(top, size=features[0].shape[-2:], mode="bilinear", align_corners=False)
        fine = self.fine(torch.cat([finest, F.pixel_unshuffle(x, 2)], 1))
        ink = F.pixel_shuffle(self.head(fine), 2)
        if self.tone is None:
            return ink
        tone = self.tone(fine)
        if self.tone_context is not None:
            tone = tone + self.tone_context(features[-1].mean((2, 3)))[:, :, None, None]
        return torch.cat([ink, F.pixel_shuffle(tone, 2)], 1)


def build_lite0_cleaner(config: dict) -> Lite0Cleaner:
    """The network a config's `network: {kind: lite0, ...}` describes; unknown keys (the
    U-Net's channels) are refused rather than dropped."""
    unknown = set(config) - SETTINGS
    if unknown:
        raise InputError(f"network keys {sorted(unknown)} do not apply to kind lite0 (it reads {sorted(SETTINGS - {'kind'})})")
    return Lite0Cleaner(int(config.get("width", 32)), int(config.get("frozen_blocks", FROZEN_BLOCKS)), bool(config.get("pretrained", True)),
                        bool(config.get("tone", False)), bool(config.get("tone_context", False)))
