"""Detection metrics, COCO style: average precision at IoU 0.5 and over IoU 0.5:0.95, with
101-point interpolation; precision, recall and F1 at a score threshold; the share of
signature-free pages left without a box; the choice of that threshold; a precision-recall plot.

Matching follows COCO: on each page, detections in descending score order take the unmatched
true box they overlap most, if that IoU reaches the threshold; the rest are false positives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..detector import box_iou

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_POINTS = np.linspace(0, 1, 101)
MIN_CLEAN_SHARE = 0.95  # signature-free pages that must get no box at the chosen threshold


@dataclass(frozen=True)
class PageDetections:
    boxes: np.ndarray  # (K, 4) detections x0, y0, x1, y1
    scores: np.ndarray  # (K,)
    truth: np.ndarray  # (M, 4) true boxes, same units


def true_positives(page: PageDetections, iou_threshold: float) -> np.ndarray:
    """For each detection of the page (in its own order), whether it matched a true box."""
    hits = np.zeros(len(page.scores), bool)
    if not len(page.truth) or not len(page.scores):
        return hits
    iou = box_iou(page.boxes, page.truth)
    free = np.ones(len(page.truth), bool)
    for k in np.argsort(-page.scores, kind="stable"):
        candidates = np.where(free, iou[k], -1.0)
        best = int(np.argmax(candidates))
        if candidates[best] >= iou_threshold:
            free[best], hits[k] = False, True
    return hits


def ranked(pages: list[PageDetections], iou_threshold: float) -> tuple[np.ndarray, np.ndarray, int]:
    """All detections' scores, best first, whether each is a true positive, and the number of true boxes."""
    scores = np.concatenate([p.scores for p in pages] + [np.zeros(0, np.float32)])
    hits = np.concatenate([true_positives(p, iou_threshold) for p in pages] + [np.zeros(0, bool)])
    order = np.argsort(-scores, kind="stable")
    return scores[order], hits[order], sum(len(p.truth) for p in pages)


def precision_recall_curve(pages: list[PageDetections], iou_threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision and recall after each detection, best first, and the scores they stop at."""
    scores, hits, n_truth = ranked(pages, iou_threshold)
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / max(n_truth, 1)
    return precision, recall, scores


def average_precision(pages: list[PageDetections], iou_threshold: float) -> float:
    """Area under the precision envelope sampled at 101 recall levels (COCO)."""
    precision, recall, _ = precision_recall_curve(pages, iou_threshold)
    if not len(precision):
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, RECALL_POINTS, side="left")
    return float(np.mean(np.where(at < len(envelope), envelope[np.minimum(at, len(envelope) - 1)], 0.0)))


def counts_at(pages: list[PageDetections], threshold: float, iou_threshold: float = 0.5) -> tuple[int, int, int]:
    """True positives, false positives and missed true boxes among detections scoring >= threshold."""
    kept = [PageDetections(p.boxes[p.scores >= threshold], p.scores[p.scores >= threshold], p.truth) for p in pages]
    tp = sum(int(true_positives(p, iou_threshold).sum()) for p in kept)
    fp = sum(len(p.scores) for p in kept) - tp
    return tp, fp, sum(len(p.truth) for p in pages) - tp


def clean_share(pages: list[PageDetections], threshold: float) -> float | None:
    """Share of the signature-free pages with no detection scoring >= threshold (None: no such page)."""
    empty = [p for p in pages if not len(p.truth)]
    if not empty:
        return None
    return float(np.mean([not np.any(p.scores >= threshold) for p in empty]))


def choose_threshold(pages: list[PageDetections], min_clean: float = MIN_CLEAN_SHARE) -> float:
    """The score threshold with the best F1 at IoU 0.5 among those leaving at least `min_clean`
    of the signature-free pages without a box; halfway between two scores, so that it does not
    sit on one. Ties go to the higher threshold."""
    scores, hits, n_truth = ranked(pages, 0.5)
    if not len(scores):
        return 0.5
    tp = np.cumsum(hits)
    f1 = 2 * tp / (np.arange(1, len(scores) + 1) + n_truth)
    lower = np.r_[scores[1:], 0.0]
    cuts = (scores + lower) / 2  # keeping detections 0..k: cut between score k and score k+1
    best_on_empty = np.array([p.scores.max(initial=0.0) for p in pages if not len(p.truth)])
    allowed = (best_on_empty[None, :] < cuts[:, None]).mean(axis=1) >= min_clean if len(best_on_empty) else np.ones(len(cuts), bool)
    if not allowed.any():
        return float(scores[0] + 1e-6)  # no threshold is clean enough: keep nothing
    f1 = np.where(allowed, f1, -1.0)
    best = int(np.flatnonzero(f1 == f1.max())[0])  # first = highest threshold among ties
    return float(cuts[best])


def detection_metrics(pages: list[PageDetections], threshold: float) -> dict:
    """The figures of `signver evaluate-detector` (all but the timing)."""
    tp, fp, fn = counts_at(pages, threshold)
    n_boxes = sum(len(p.truth) for p in pages)
    # with no box found, precision is undefined (None), not 0: nothing found was wrong; with no
    # signature in the split, recall, F1 and AP are undefined too: nothing was missed
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if n_boxes else None
    aps = [average_precision(pages, t) for t in IOU_THRESHOLDS] if n_boxes else [None] * len(IOU_THRESHOLDS)
    return {
        "n_images": len(pages),
        "n_boxes": n_boxes,
        "n_signature_free": sum(not len(p.truth) for p in pages),
        "map50": aps[0],
        "map75": aps[list(IOU_THRESHOLDS).index(0.75)],
        "map50_95": float(np.mean(aps)) if n_boxes else None,
        "score_threshold": float(threshold),
        "precision": precision,
        "recall": recall,
        "f1": 2 * tp / (2 * tp + fp + fn) if n_boxes else None,
        "true_positives": tp,
        "false_positives": fp,
        "missed": fn,
        "signature_free_pages_clean": clean_share(pages, threshold),
    }
