"""Find signatures on document pages: preprocess, ONNX network, decode centres to boxes, NMS.

The network is a one-stage centre detector (see `signver.training.detector_network`): for each
cell of a stride-s grid it gives the probability that a signature is centred there and the
distances from the cell centre to the box's four sides. Decoding and non-maximum suppression
are plain numpy, so inference needs neither torch nor custom operators. Where the card holds a
re-scorer (`signver.detector_rescorer`), the candidates are scored again from their geometry, and
where it holds a refiner (`signver.detector_refiner`), the boxes kept get their sides moved by a
second network that looks at each one.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .detector_refiner import BoxRefiner
from .detector_rescorer import Rescorer, box_features
from .errors import InputError
from .images import DEFAULT_DPI, SourceLike, load_pages
from .models import ModelCard, inference_session, load_card, made_once

DEFAULT_DETECTOR = "signature-detector"
MAX_BOXES = 50  # per page; a page holds a handful of signatures at most
TRAINING_PAGE_SHAPE = 11 / 8.5  # height over width of the training pages (US letter) before they were stretched square
TALL_PAGE = 1.3  # a page this many times a training page's height (for its width), or more, is read in windows
WINDOW_EDGE = 0.01  # of a window's height: a box this close to an inner edge is cut by it
MAX_WINDOWS = 12  # a page in more would be a sliver no signature fits across (and a long wait)
PREPROCESSING = ("signver.detector.network_input: the whole page stretched to height x width (area interpolation), divided by 255; "
                 "a page wider than that shape also read with its shape kept (shrunk to the width, laid on its median grey), the "
                 "boxes of both joined (signver.detector.readings); a page over 1.3 letter pages tall read in overlapping "
                 "letter-shaped windows (signver.detector.page_windows), and turned a quarter as one wide page, the reading "
                 "with the better box kept (signver.detector.turned_reading_wins)")  # what a card says of it


@dataclass(frozen=True)
class Box:
    """A signature found on page `page` (0-based), in that page's pixels; x1, y1 exclusive."""

    page: int
    x0: float
    y0: float
    x1: float
    y1: float
    score: float

    def to_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


# a box this much taller than wide holds a signature turned sideways (a page scanned turned): 3 of
# CEDAR's 2,640 scans are so tall (up to 1.40, all of writer 27), none of BHSig260's
SIDEWAYS_SHARE = 1.25
SIDEWAYS_NOTE = "the box is taller than wide: a signature turned sideways (the page scanned turned?)"


def sideways_note(box: Box) -> str | None:
    """What to say of a box taller than wide: the extractor knows upright signatures only, so
    the pipeline reads it turned as well (`Pipeline.run`)."""
    return SIDEWAYS_NOTE if box.y1 - box.y0 > SIDEWAYS_SHARE * (box.x1 - box.x0) else None


def network_input(page: np.ndarray, size: tuple[int, int], keep_shape: bool = False) -> tuple[np.ndarray, int, int]:
    """The network input (1, 1, H, W) float32 in [0, 1], dark ink on white, for a grey page and
    the input `size` (h, w), with the input rows the page takes: from `top`, `rows` of them.
    The page is stretched whole to the input, as the training pages were; with `keep_shape`, a
    page wider than the input's shape is shrunk to its width with its proportions kept and laid
    on its own paper (median grey)."""
    in_h, in_w = size
    rows = _rows_at_input_width(page.shape, size) if keep_shape else in_h
    canvas = np.full((in_h, in_w), np.median(page) if rows < in_h else 0, np.uint8)
    top = (in_h - rows) // 2
    canvas[top : top + rows] = cv2.resize(page, (in_w, rows), interpolation=cv2.INTER_AREA)
    return (canvas.astype(np.float32) / 255.0)[None, None], top, rows


def readings(shape: tuple[int, int], size: tuple[int, int]) -> tuple[bool, ...]:
    """How a page of `shape` (h, w) is read, as `network_input`'s keep_shape: stretched whole,
    and where it is wider than the input's shape also with its shape kept, the boxes of both
    joined. Stretching squeezes a wide page's signatures across, unlike any training page: on
    strips cut from valid pages 3.9 times as wide as tall it found 101 of 405 signatures where
    keeping the shape found 368; but on cheques made of CEDAR signatures (2.3 times as wide)
    stretching found 33 of 55 and keeping the shape 16, and both together 38
    (`benchmarks/detect_page_shapes.py`)."""
    return (False, True) if _rows_at_input_width(shape, size) < size[0] else (False,)


def _rows_at_input_width(shape: tuple[int, int], size: tuple[int, int]) -> int:
    """The input rows a page of `shape` (h, w) takes shrunk to the input's width, shape kept (at most all)."""
    return min(size[0], max(1, round(shape[0] * size[1] / shape[1])))


def page_windows(height: int, width: int) -> list[tuple[int, int]]:
    """The rows (top, bottom) of the windows a page is read in: the whole page, or for a page
    more than TALL_PAGE times as tall as a training page (a long receipt, pages scanned as one
    image), windows of a training page's shape, overlapping by half. Stretched whole into the
    square input, such a page shrinks its signatures' height with its own: on two valid pages
    one above the other the whole found 325 of 455 signatures, the windows 405; on three, 152
    and 404 of 454 (benchmarks/detect_page_shapes.py)."""
    window = max(round(width * TRAINING_PAGE_SHAPE), int(np.ceil(2 * height / (MAX_WINDOWS + 1))))  # a sliver: fewer, taller
    if height <= TALL_PAGE * window:
        return [(0, height)]
    count = int(np.ceil((height - window) / (window / 2))) + 1
    return [(int(top), int(top) + window) for top in np.linspace(0, height - window, count).round()]


def decode(heatmap: np.ndarray, distances: np.ndarray, stride: int, min_score: float, max_boxes: int = MAX_BOXES) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (K, 4) in input pixels and their scores from one image's heatmap (h, w) and side
    distances (4, h, w): local maxima of the heatmap over 3x3 cells above `min_score`, best first."""
    heat = np.ascontiguousarray(heatmap, dtype=np.float32)
    is_peak = (heat >= cv2.dilate(heat, np.ones((3, 3), np.uint8))) & (heat >= min_score)
    ys, xs = np.nonzero(is_peak)
    scores = heat[ys, xs]
    order = np.argsort(-scores, kind="stable")[:max_boxes]
    ys, xs, scores = ys[order], xs[order], scores[order]
    cx, cy = (xs + 0.5) * stride, (ys + 0.5) * stride
    left, top, right, bottom = distances[:, ys, xs]
    boxes = np.stack([cx - left, cy - top, cx + right, cy + bottom], axis=1).astype(np.float32)
    return boxes.reshape(-1, 4), scores.astype(np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box in `a` (N, 4) with every box in `b` (M, 4)."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[box_iou(boxes[best : best + 1], boxes[order])[0] <= iou]
    return np.array(keep, dtype=np.int64)


class Detector:
    """A signature detector described by a model card (`"kind": "detector"`)."""

    def __init__(self, model: str | None = None):
        self.card: ModelCard = load_card(model or DEFAULT_DETECTOR)
        if self.card.kind != "detector":
            raise InputError(f"model {self.card.name} is {self.card.a_kind}, not a signature detector")
        self.session = inference_session(self.card.path)
        self.input_name = self.session.get_inputs()[0].name
        self.stride = int(self.card.details["stride"])
        self.nms_iou = float(self.card.details["nms_iou"])
        spec = self.card.details.get("rescorer")
        self.rescorer = Rescorer(spec) if spec else None
        spec = self.card.details.get("refiner")
        self.refiner = BoxRefiner(spec, self.card.path.parent) if spec else None

    @property
    def name(self) -> str:
        return self.card.name

    @property
    def threshold(self) -> float:
        return float(self.card.threshold)

    def candidates(self, page: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (K, 4) in pixels of the grey `page` and the network's own scores, best first,
        down to `min_score`, after non-maximum suppression and before any re-scoring. A page
        much taller than a training page is read a page-shaped window at a time."""
        windows = page_windows(*page.shape)
        if len(windows) == 1:
            return self._window_candidates(page, min_score)
        found, scores = [np.zeros((0, 4), np.float32)], [np.zeros(0, np.float32)]
        for top, bottom in windows:
            boxes, window_scores = self._window_candidates(page[top:bottom], min_score)
            boxes += np.float32([0, top, 0, top])
            margin = WINDOW_EDGE * (bottom - top)  # cut by a window's inner edge: the window overlapping there holds it whole
            whole = ((boxes[:, 1] > top + margin) | (top == 0)) & ((boxes[:, 3] < bottom - margin) | (bottom == page.shape[0]))
            found.append(boxes[whole])
            scores.append(window_scores[whole])
        boxes, scores = np.concatenate(found), np.concatenate(scores)
        keep = nms(boxes, scores, self.nms_iou)[:MAX_BOXES]  # a signature inside two windows is found twice
        return boxes[keep], scores[keep]

    def _window_candidates(self, page: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        found, found_scores = [np.zeros((0, 4), np.float32)], [np.zeros(0, np.float32)]
        (h, w), in_w = page.shape, self.card.input_size[1]
        ways = readings(page.shape, self.card.input_size)
        for keep_shape in ways:
            network_page, top, rows = network_input(page, self.card.input_size, keep_shape)
            heatmap, distances = self.session.run(None, {self.input_name: network_page})
            boxes, scores = decode(heatmap[0, 0], distances[0], self.stride, min_score)
            keep = nms(boxes, scores, self.nms_iou)
            boxes = (boxes[keep] - np.float32([0, top, 0, top])) * np.array([w / in_w, h / rows, w / in_w, h / rows], np.float32)
            boxes = np.clip(boxes, 0, [w, h, w, h])
            on_page = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # none lies wholly on the paper added
            found.append(boxes[on_page])
            found_scores.append(scores[keep][on_page])
        boxes, scores = np.concatenate(found), np.concatenate(found_scores)
        if len(ways) == 1:
            return boxes, scores
        keep = nms(boxes, scores, self.nms_iou)[:MAX_BOXES]  # the same signature read both ways is one
        return boxes[keep], scores[keep]

    def find(self, page: np.ndarray, min_score: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Boxes (K, 4) x0, y0, x1, y1 in pixels of the grey `page` and their scores, best first,
        down to `min_score` (default: the card's threshold). With a rescorer in the card, the
        network's candidates above the rescorer's floor are scored again; with a refiner, the
        boxes kept are refined. A page read in windows (much taller than a letter page) whose
        printed lines do not plainly run across it is also read whole turned a quarter each way,
        as a wide page scanned turned is (a cheque photographed upright), and the reading whose
        best box scores highest is kept (`turned_reading_wins`)."""
        min_score = self.threshold if min_score is None else min_score
        boxes, scores = self._find_as_it_lies(page, min_score)
        if len(page_windows(*page.shape)) == 1 or lines_run_across(page):
            return boxes, scores
        for quarters in (1, 3):  # either way: one of them is upright (the other upside down)
            turned_boxes, turned_scores = self._find_as_it_lies(np.ascontiguousarray(np.rot90(page, quarters)), min_score)
            if turned_reading_wins(scores, turned_scores):
                boxes, scores = boxes_turned_back(turned_boxes, quarters, page.shape), turned_scores
        return boxes, scores

    def _find_as_it_lies(self, page: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        if self.rescorer is None:
            boxes, scores = self.candidates(page, min_score)
        else:
            boxes, scores = self.candidates(page, self.rescorer.candidate_floor)
            scores = self.rescorer(box_features(boxes, scores, page.shape)) if len(scores) else scores
            order = np.argsort(-scores, kind="stable")
            order = order[scores[order] >= min_score]
            boxes, scores = boxes[order], scores[order]
        if self.refiner is not None:
            boxes = self.refiner(page, boxes)
        return boxes, scores

    def detect_page(self, page: np.ndarray, index: int = 0, threshold: float | None = None) -> list[Box]:
        """The signatures on one grey page, labelled as page `index`, best first."""
        boxes, scores = self.find(page, threshold)
        return [Box(index, *map(float, box), float(score)) for box, score in zip(boxes, scores)]


# how much more sharply rows of ink alternate with blank rows than columns do (log of the ratio)
# where a page's printed lines plainly run across it: pages one above the other score 0.4 to 2.1
# (5 % and 95 %), bands of a page turned a quarter -1.2 to 0.6 (a scratch measure on valid pages)
LINES_ACROSS = 0.6


def lines_run_across(page: np.ndarray) -> bool:
    """Whether the printed lines of a grey page plainly run across it, as on upright pages one
    above the other, which a quarter turn would only mislead."""
    scale = 400 / max(page.shape)
    small = cv2.resize(page, (max(1, round(page.shape[1] * scale)), max(1, round(page.shape[0] * scale))), interpolation=cv2.INTER_AREA)
    ink = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)[1].astype(np.float32)

    def sharpness(profile: np.ndarray) -> float:  # how sharply a profile of ink steps between lines and gaps
        return float(np.mean(np.abs(np.diff(profile))) / (np.mean(profile) + 1e-6)) if len(profile) > 1 else 0.0

    return float(np.log((sharpness(ink.mean(axis=1)) + 1e-9) / (sharpness(ink.mean(axis=0)) + 1e-9))) >= LINES_ACROSS


def turned_reading_wins(scores: np.ndarray, turned_scores: np.ndarray) -> bool:
    """Whether a tall page read turned a quarter found a better box than read as it lies. On
    bands cut from valid pages and turned a quarter clockwise (`benchmarks/detect_page_shapes.py`)
    the windows alone found 293 of 421 signatures (bands 0.35 of a page tall) and 25 of 405
    (0.2); with the turned readings, 392 and 361. Pages one above the other, their lines across
    them, are not read turned: read turned anyway, two such pages lost 10 of 455."""
    return len(turned_scores) > 0 and (len(scores) == 0 or float(turned_scores.max()) > float(scores.max()))


def boxes_turned_back(boxes: np.ndarray, quarters: int, shape: tuple[int, int]) -> np.ndarray:
    """Boxes found on a page of `shape` (h, w) turned `quarters` quarter turns anticlockwise
    (`np.rot90`; 1 or 3), in the page's own pixels: a point (x, y) of the page turned one
    quarter anticlockwise is (w - y, x) of the page; turned three, (y, h - x)."""
    height, width = shape
    x0, y0, x1, y1 = boxes.reshape(-1, 4).T
    back = [width - y1, x0, width - y0, x1] if quarters == 1 else [y0, height - x1, y1, height - x0]
    return np.stack(back, axis=1).astype(np.float32).reshape(-1, 4)


@made_once(maxsize=4)
def get_detector(model: str | None = None) -> Detector:
    """A shared detector per model, so the session loads once per process."""
    return Detector(model)


def check_score(threshold: float | None) -> None:
    """A detection threshold is a score from 0 to 1: refuse anything else (NaN included),
    which would silently keep every box or none."""
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real) or not 0 <= threshold <= 1):
        raise InputError(f"a detection threshold is a score from 0 to 1; got {threshold!r}")


def detect(source: SourceLike, *, dpi: float = DEFAULT_DPI, threshold: float | None = None, model: str | None = None,
           dropout: str | None = None) -> list[Box]:
    """Signatures on every page of `source` (an image of any kind signver reads, a multi-page
    TIFF or a PDF rendered at `dpi`, read without `dropout`'s colour if given), as boxes in each
    page's pixels, best first per page."""
    check_score(threshold)
    detector = get_detector(model)
    pages = load_pages(source, dpi=dpi, dropout=dropout)
    return [box for index, page in enumerate(pages) for box in detector.detect_page(page, index, threshold)]


def crop(page: np.ndarray, box: Box, margin: float = 0.05) -> np.ndarray:
    """The box's region of the page, widened by `margin` of its larger side."""
    pad = margin * max(box.x1 - box.x0, box.y1 - box.y0)
    h, w = page.shape[:2]
    x0, y0 = max(0, int(box.x0 - pad)), max(0, int(box.y0 - pad))
    x1, y1 = min(w, int(np.ceil(box.x1 + pad))), min(h, int(np.ceil(box.y1 + pad)))
    return page[y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)].copy()


def annotate(page: np.ndarray, boxes: list[Box]) -> np.ndarray:
    """A colour (BGR) copy of the grey page with each box drawn and its score written."""
    out = cv2.cvtColor(page, cv2.COLOR_GRAY2BGR)
    thickness = max(1, round(max(page.shape) / 600))
    for box in boxes:
        corner0, corner1 = (int(box.x0), int(box.y0)), (int(box.x1), int(box.y1))
        cv2.rectangle(out, corner0, corner1, (0, 0, 230), thickness)
        label_at = (corner0[0], max(corner0[1] - 4 * thickness, 12 * thickness))
        cv2.putText(out, f"{box.score:.2f}", label_at, cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, (0, 0, 230), thickness)
    return out
