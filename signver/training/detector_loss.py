"""Losses of the centre detector: penalty-reduced focal loss on the heatmap (CenterNet) and
GIoU on the boxes regressed around each centre (TTFNet), Gaussian-weighted."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Focal loss over all cells, normalised by the number of centres; cells near a centre
    are penalised less the closer they are ((1 - target)^4)."""
    positive = target.eq(1).float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    p = log_p.exp()
    loss = -(positive * (1 - p) ** 2 * log_p + (1 - positive) * (1 - target) ** 4 * p**2 * log_not_p)
    return loss.sum() / positive.sum().clamp_min(1.0)


def cell_centres(height: int, width: int, stride: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) * stride
    return ys[:, None].expand(height, width), xs[None, :].expand(height, width)


def predicted_boxes(distances: torch.Tensor, stride: int) -> torch.Tensor:
    """(N, 4, h, w) side distances -> (N, 4, h, w) boxes x0, y0, x1, y1 in input pixels."""
    cy, cx = cell_centres(distances.shape[2], distances.shape[3], stride, distances.device)
    left, top, right, bottom = distances.unbind(1)
    return torch.stack([cx - left, cy - top, cx + right, cy + bottom], dim=1)


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matching boxes (..., 4) x0, y0, x1, y1."""
    area_a = (a[..., 2] - a[..., 0]).clamp_min(0) * (a[..., 3] - a[..., 1]).clamp_min(0)
    area_b = (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)
    lo, hi = torch.maximum(a[..., :2], b[..., :2]), torch.minimum(a[..., 2:], b[..., 2:])
    inter = (hi - lo).clamp_min(0).prod(-1)
    union = area_a + area_b - inter
    enclosing = (torch.maximum(a[..., 2:], b[..., 2:]) - torch.minimum(a[..., :2], b[..., :2])).prod(-1)
    return inter / union.clamp_min(1e-6) - (enclosing - union) / enclosing.clamp_min(1e-6)


def box_loss(distances: torch.Tensor, box_target: torch.Tensor, weight: torch.Tensor, stride: int) -> torch.Tensor:
    """Weighted mean of 1 - GIoU over the cells that regress a box (weight > 0)."""
    cells = weight > 0
    if not cells.any():
        return distances.sum() * 0.0
    predicted = predicted_boxes(distances, stride).permute(0, 2, 3, 1)[cells]
    target = box_target.permute(0, 2, 3, 1)[cells]
    w = weight[cells]
    return ((1 - giou(predicted, target)) * w).sum() / w.sum()


def detector_loss(logits: torch.Tensor, distances: torch.Tensor, heat: torch.Tensor, box_target: torch.Tensor, weight: torch.Tensor,
                  stride: int, box_weight: float = 5.0) -> tuple[torch.Tensor, dict[str, float]]:
    heat_part = focal_loss(logits.float()[:, 0], heat)
    box_part = box_loss(distances.float(), box_target, weight, stride)
    return heat_part + box_weight * box_part, {"heat": heat_part.item(), "box": box_part.item()}
