"""Synthetic documents for the pipeline and service tests, and a stand-in detector.

A page is white paper with printed lines (Pillow's own font) and one or more signatures of
known writers pasted at known places, so the right decision is known. The stand-in detector
returns those places (scaled to whatever size the page was rendered at), so the tests of the
pipeline's own logic do not depend on how well a detector model finds them; the shipped
detector is tested on the detector's own synthetic pages where it is installed.
"""

from __future__ import annotations

import io
import socket
import threading
import time

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from signver import synth
from signver.images import DROPOUT_LIFT

PAGE_SIZE = (1100, 850)  # (h, w): a letter page at 100 dpi


def page_with_signatures(signatures: list[tuple[int, int]], size: tuple[int, int] = PAGE_SIZE, seed: int = 0):
    """A page with printed text and the signatures synth.genuine(writer, sample) pasted in
    turn, one per row down the lower half (three fit); returns (uint8 grey page, boxes as fractions of the page)."""
    h, w = size
    canvas = Image.new("L", (w, h), 255)
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=22)
    for line in range(6):
        draw.text((60, 60 + 40 * line), f"Clause {line + 1}: the undersigned agrees to the terms {seed}.", fill=20, font=font)
    page = np.asarray(canvas).copy()
    boxes = []
    for k, (writer, sample) in enumerate(signatures):
        ink = synth.genuine(writer, sample)
        ys, xs = np.nonzero(ink < 200)
        ink = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        x, y = 80 + 40 * k, 400 + 220 * k
        ih, iw = ink.shape
        region = page[y: y + ih, x: x + iw]
        np.minimum(region, ink[: region.shape[0], : region.shape[1]], out=region)
        boxes.append((x / w, y / h, (x + iw) / w, (y + ih) / h))
    return page, boxes


class StandInDetector:
    """Finds the boxes it is given (fractions of the page), on every page, score 0.9."""

    name = "stand-in-detector"
    threshold = 0.5

    def __init__(self, boxes, delay_s: float = 0.0, fail: Exception | None = None):
        self.boxes, self.delay_s, self.fail = list(boxes), delay_s, fail

    def find(self, page: np.ndarray, min_score=None):
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        h, w = page.shape
        boxes = np.array([(x0 * w, y0 * h, x1 * w, y1 * h) for x0, y0, x1, y1 in self.boxes], np.float32).reshape(-1, 4)
        return boxes, np.full(len(boxes), 0.9, np.float32)


class StandInCleaner:
    """Whitens everything lighter than mid-grey: enough to tell that cleaning ran."""

    name = "stand-in-cleaner"

    def __init__(self):
        self.calls = 0

    def clean(self, gray: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.where(gray > 128, 255, gray).astype(np.uint8)


def embed_plain(images) -> list[np.ndarray]:
    """Embeddings of grey images, never cleaned, whatever the library's default for cleaning."""
    from signver.extractor import get_extractor
    from signver.normalize import normalize

    extractor = get_extractor()
    return list(extractor.embed_normalized([normalize(i, extractor.card.input_size) for i in images]))


def png(image: np.ndarray) -> bytes:
    """PNG bytes of a grey or RGB image."""
    return cv2.imencode(".png", image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes()


def red_stamped(gray: np.ndarray) -> np.ndarray:
    """`gray` as an RGB scan with a ring stamp over it, dark red where it lies on paper (about
    as dark as ink when read as grey), in the red that `dropout="red"` lifts back to exactly
    the paper's value, so that the image reads as `gray` again under that dropout."""
    h, w = gray.shape
    ring = np.zeros((h, w), np.uint8)
    cv2.ellipse(ring, (w // 2, h // 2), (w // 3, h // 2 - 4), 0, 0, 360, 255, max(3, h // 12))
    cv2.line(ring, (w // 6, h // 2), (5 * w // 6, h // 2), 255, max(3, h // 12))
    on_paper = (ring > 0) & (gray > 200)
    g, lift = gray[on_paper].astype(np.int16), DROPOUT_LIFT
    low = 40 + (g + 40 * lift) % (1 + lift)  # green and blue, so that red = (g + lift low) / (1 + lift) exactly (lift = -1 mod 1 + lift):
    red = (g + lift * low) // (1 + lift)  # red + lift (red - low) = g
    rgb = np.dstack([gray] * 3)
    rgb[on_paper] = np.stack([red, low, low], axis=1).astype(np.uint8)
    return rgb


def pdf(*pages: np.ndarray, dpi: int = 100) -> bytes:
    """A PDF of the pages at `dpi`, so that rendering at `dpi` gives them back at their size."""
    out = io.BytesIO()
    images = [Image.fromarray(p) for p in pages]
    images[0].save(out, format="PDF", resolution=dpi, save_all=True, append_images=images[1:])
    return out.getvalue()


def tiff(*pages: np.ndarray) -> bytes:
    out = io.BytesIO()
    images = [Image.fromarray(p) for p in pages]
    images[0].save(out, format="TIFF", save_all=True, append_images=images[1:])
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 in a thread; `with ServerThread(app) as url:`."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
