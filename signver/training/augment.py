"""Batch augmentation in torch for normalised signatures (ink bright on black, N x 1 x H x W).

It imitates how one writer's signatures vary (size, slant, rotation, shear, stroke width,
local elastic wobble) and how scans vary (ink tone, blur, noise), on the whole batch at once
so it costs little next to the network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, low: float, high: float, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def random_geometry(x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    """Random affine (rotation, anisotropic scale, shear, shift) plus a smooth elastic field."""
    n, _, h, w = x.shape
    at = x.device
    angle = _uniform(n, -8, 8, at) * strength * math.pi / 180
    scale_x = _uniform(n, 0.85, 1.05, at)
    scale_y = scale_x * _uniform(n, 1 - 0.1 * strength, 1 + 0.1 * strength, at)
    shear = _uniform(n, -0.2, 0.2, at) * strength
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(n, 2, 3, device=at)
    theta[:, 0, 0] = cos / scale_x
    theta[:, 0, 1] = (-sin + shear) / scale_x * h / w
    theta[:, 1, 0] = sin / scale_y * w / h
    theta[:, 1, 1] = cos / scale_y
    theta[:, :, 2] = _uniform(2 * n, -0.05, 0.05, at).view(n, 2) * strength
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    elastic = torch.randn(n, 2, 4, 8, device=at) * 0.012 * strength
    grid = grid + F.interpolate(elastic, size=(h, w), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_stroke_width(x: torch.Tensor, p: float = 0.25) -> torch.Tensor:
    """Thicken (dilate) or thin (erode) the strokes of some samples."""
    choice = torch.rand(len(x), device=x.device)[:, None, None, None]
    thick = F.max_pool2d(x, 3, stride=1, padding=1)
    thin = -F.max_pool2d(-x, 3, stride=1, padding=1)
    return torch.where(choice < p, thick, torch.where(choice > 1 - p, thin, x))


def random_scan(x: torch.Tensor) -> torch.Tensor:
    """Ink tone, occasional blur and sensor noise."""
    n = len(x)
    x = x * _uniform(n, 0.6, 1.0, x.device)[:, None, None, None]
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    x = torch.where(torch.rand(n, device=x.device)[:, None, None, None] < 0.2, blurred, x)
    noise = torch.randn_like(x) * _uniform(n, 0, 0.04, x.device)[:, None, None, None]
    return (x + noise * (x > 0.05)).clamp(0, 1)


def augment(x: torch.Tensor, strength: float = 1.0) -> torch.Tensor:
    return random_scan(random_stroke_width(random_geometry(x, strength)))
