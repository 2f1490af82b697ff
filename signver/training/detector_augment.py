"""Augmentation of document pages with their signature boxes, for what real pages do: printed
text crowding the ink, 90-degree turns, scale, aspect and small rotations, paper borders,
contrast and ink tone, blur, noise and JPEG. numpy + OpenCV on uint8 grey pages; boxes are
(N, 4) x0, y0, x1, y1 in pixels and move with the page.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..synth_pages import paste_dark, text_line

MIN_VISIBLE = 0.5  # a box cut by the page edge is kept when at least this much of it stays in view


def augment_page(page: np.ndarray, boxes: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                 strength: float = 1.0, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A randomly transformed copy of `page` at `size` (h, w), or a `window` x `window` part of
    it, and its boxes in the new pixels."""
    page = page.copy()
    add_printed_text(page, boxes, rng)
    if rng.random() < 0.3:
        page, boxes = turn(page, boxes, int(rng.integers(1, 4)))
    page, boxes = random_affine(page, boxes, size, rng, strength, window)
    return photometric(page, rng, strength), boxes


def add_printed_text(page: np.ndarray, boxes: np.ndarray, rng: np.random.Generator) -> None:
    """Printed lines just under, over or touching some signatures (names, titles, form labels),
    and a few anywhere, drawn in place."""
    h, w = page.shape
    for x0, y0, x1, y1 in boxes:
        if rng.random() < 0.4:
            height = int(np.clip(rng.uniform(0.2, 0.6) * (y1 - y0), 0.012 * h, 0.04 * h))
            line = text_line(rng, height, int((x1 - x0) * rng.uniform(0.5, 1.5)) + 1)
            y = y1 + rng.uniform(-0.3, 0.3) * height if rng.random() < 0.7 else y0 - rng.uniform(0.7, 1.3) * line.shape[0]
            paste_dark(page, line, int(x0 + rng.uniform(-0.2, 0.3) * (x1 - x0)), int(y))
    for _ in range(int(rng.integers(0, 3))):
        height = int(rng.uniform(0.012, 0.03) * h)
        line = text_line(rng, height, int(rng.uniform(0.2, 0.8) * w))
        paste_dark(page, line, int(rng.uniform(0, w - line.shape[1])), int(rng.uniform(0, h - line.shape[0])))


def turn(page: np.ndarray, boxes: np.ndarray, quarters: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotate page and boxes by `quarters` x 90 degrees counter-clockwise."""
    for _ in range(quarters):
        width = page.shape[1]
        page = np.ascontiguousarray(np.rot90(page))
        boxes = np.stack([boxes[:, 1], width - boxes[:, 2], boxes[:, 3], width - boxes[:, 0]], axis=1).reshape(-1, 4)
    return page, boxes


def random_affine(page: np.ndarray, boxes: np.ndarray, size: tuple[int, int], rng: np.random.Generator,
                  strength: float, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stretch the page to `size` as inference does, then zoom, squash and rotate a little and
    shift; uncovered paper is the page's own tone (or black, as scanner borders are). With
    `window`, only a square of that side is made, most often around a signature: training on
    such crops costs a fraction of whole pages and the network is convolutional anyway."""
    h, w = page.shape
    out_h, out_w = size
    zoom = np.exp(rng.uniform(np.log(0.65), np.log(1.5)) * strength)
    aspect = np.exp(rng.uniform(-0.25, 0.25) * strength)
    angle = np.deg2rad(rng.uniform(-4, 4) * strength) if rng.random() < 0.5 else 0.0
    scale = np.array([out_w / w * zoom * aspect**0.5, out_h / h * zoom / aspect**0.5])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    linear = rotation @ np.diag(scale)
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ linear.T
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    extent, room = hi - lo, np.array([out_w, out_h])
    slack = room - extent  # negative where the page overflows the output: then its edge goes out of view
    shift = np.minimum(slack, 0) + rng.uniform(0, 1, 2) * np.abs(slack) - lo
    matrix = np.hstack([linear, shift[:, None]])
    if window:
        matrix[:, 2] -= crop_offset(move_boxes(boxes, matrix, size), size, window, rng)
        out_h = out_w = window
    border = 0 if rng.random() < 0.15 else int(np.percentile(page[::8, ::8], 90))
    interpolation = cv2.INTER_AREA if zoom * min(scale) < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(page, matrix, (out_w, out_h), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out, move_boxes(boxes, matrix, (out_h, out_w))


def crop_offset(boxes: np.ndarray, size: tuple[int, int], window: int, rng: np.random.Generator) -> np.ndarray:
    """Top-left corner (x, y) of a window: around a random signature 70 % of the time, else anywhere."""
    room = np.maximum(np.array([size[1], size[0]]) - window, 0)
    if len(boxes) and rng.random() < 0.7:
        x0, y0, x1, y1 = boxes[rng.integers(len(boxes))]
        centre = np.array([x0 + x1, y0 + y1]) / 2
        return np.clip(centre - rng.uniform(0.15, 0.85, 2) * window, 0, room)
    return rng.uniform(0, 1, 2) * room


def move_boxes(boxes: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boxes through an affine map (the box around the moved corners), clipped to the page;
    those mostly outside it are dropped."""
    if not len(boxes):
        return boxes.reshape(0, 4).astype(np.float32)
    x0, y0, x1, y1 = boxes.T
    corners = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x0, y1], 1), np.stack([x1, y1], 1)], axis=1)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    full = np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)
    h, w = size
    clipped = np.clip(full, 0, [w, h, w, h])
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    keep = area(clipped) >= MIN_VISIBLE * np.maximum(area(full), 1e-6)
    return clipped[keep].astype(np.float32)


def photometric(page: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Contrast, paper and ink tone, gamma, blur, noise and JPEG, each applied at random."""
    x = page.astype(np.float32)
    if rng.random() < 0.6:
        paper = rng.uniform(200, 255)
        contrast = np.exp(rng.uniform(-0.7, 0.2) * strength)
        x = paper - (255.0 - x) * contrast * paper / 255.0
    if rng.random() < 0.3:
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** np.exp(rng.uniform(-0.5, 0.5) * strength)
    if rng.random() < 0.3:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.3, 1.3) * strength)
    if rng.random() < 0.3:
        x = x + rng.normal(0, rng.uniform(2, 12) * strength, x.shape).astype(np.float32)
    out = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(25, 90))])
        out = cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE)
    return out
