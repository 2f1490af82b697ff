"""Metric-learning losses as small interchangeable parts: loss(embeddings, labels) -> scalar.

Embeddings arrive L2-normalised. Labels are class ids; a skilled forgery carries a label of
its own, so it is a negative for its writer (and for everyone) and a positive for no one:
the forgeries of the writers in a batch are its hardest negatives.
"""

from __future__ import annotations

import inspect
from functools import partial

import torch
import torch.nn.functional as F


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def _distances(embeddings: torch.Tensor) -> torch.Tensor:
    return (2 - 2 * embeddings @ embeddings.T).clamp_min(1e-12).sqrt()


def contrastive(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.8) -> torch.Tensor:
    """Siamese contrastive loss over every pair of the batch (Hadsell et al. 2006)."""
    positive, negative = _masks(labels)
    d = _distances(embeddings)
    return (d[positive].pow(2).mean() + F.relu(margin - d[negative]).pow(2).mean()) / 2


def triplet(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.2, mining: str = "semihard") -> torch.Tensor:
    """Triplet loss with online mining: `hard` takes each anchor's hardest positive and
    negative; `semihard` takes, for every positive pair, the closest negative farther than the
    positive (FaceNet), falling back to the hardest negative."""
    positive, negative = _masks(labels)
    d = _distances(embeddings)
    inf = torch.tensor(float("inf"), dtype=d.dtype, device=d.device)
    if mining == "hard":
        hardest_positive = torch.where(positive, d, -inf).max(dim=1).values
        hardest_negative = torch.where(negative, d, inf).min(dim=1).values
        valid = positive.any(1) & negative.any(1)
        return F.relu(hardest_positive - hardest_negative + margin)[valid].mean()
    anchor, pos = positive.nonzero(as_tuple=True)
    d_ap = d[anchor, pos][:, None]
    d_an = torch.where(negative[anchor], d[anchor], inf)
    semi_hard = torch.where(d_an > d_ap, d_an, inf).min(dim=1).values
    chosen = torch.where(torch.isinf(semi_hard), d_an.min(dim=1).values, semi_hard)
    return F.relu(d_ap[:, 0] - chosen + margin).mean()


def multi_similarity(
    embeddings: torch.Tensor, labels: torch.Tensor, alpha: float = 2.0, beta: float = 40.0, base: float = 0.5, epsilon: float = 0.1
) -> torch.Tensor:
    """Multi-similarity loss with its pair mining (Wang et al., CVPR 2019)."""
    positive, negative = _masks(labels)
    s = embeddings @ embeddings.T
    inf = torch.tensor(float("inf"), dtype=s.dtype, device=s.device)
    hardest_positive = torch.where(positive, s, inf).min(dim=1, keepdim=True).values
    hardest_negative = torch.where(negative, s, -inf).max(dim=1, keepdim=True).values
    mined_positive = positive & (s - epsilon < hardest_negative)
    mined_negative = negative & (s + epsilon > hardest_positive)
    pos_term = torch.log1p((torch.exp(-alpha * (s - base)) * mined_positive).sum(1)) / alpha
    neg_term = torch.log1p((torch.exp(beta * (s - base)) * mined_negative).sum(1)) / beta
    valid = positive.any(1)
    return (pos_term + neg_term)[valid].mean()


def supervised_contrastive(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al., NeurIPS 2020)."""
    positive, _ = _masks(labels)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    logits = (embeddings @ embeddings.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    valid = positive.any(1)
    mean_log_prob = (log_prob.masked_fill(~positive, 0).sum(1) / positive.sum(1).clamp_min(1))
    return -mean_log_prob[valid].mean()


LOSSES = {
    "contrastive": contrastive,
    "triplet": triplet,
    "multi_similarity": multi_similarity,
    "supcon": supervised_contrastive,
}


def chosen_loss(spec, where: str = "loss"):
    """The loss a config's `{name: ..., settings...}` names, its settings bound: a name or a
    setting it does not take refused before any work (a misspelt margin trained with the default)."""
    from ..errors import InputError

    if not isinstance(spec, dict) or spec.get("name") not in LOSSES:
        raise InputError(f"{where} must name one of {', '.join(LOSSES)} ({{name: multi_similarity}}, with its settings), not {spec!r}")
    settings = dict(spec)
    function = LOSSES[settings.pop("name")]
    takes = set(inspect.signature(function).parameters) - {"embeddings", "labels"}
    if set(settings) - takes:
        raise InputError(f"{where} {spec['name']} has no setting {', '.join(sorted(set(settings) - takes))}; it takes {', '.join(sorted(takes))}")
    return partial(function, **settings)
