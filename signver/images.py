"""Load every input signver accepts into one 2-D uint8 grey array (ink dark on white).

Paths, bytes, file objects, arrays and PIL images in any supported format all pass through
here, so that the size limits, the sniffing of formats from content and the error messages
are applied in one place, before any untrusted data is decoded.
"""

from __future__ import annotations

import contextlib
import io
import numbers
import os
import stat
import re
import struct
import threading
import warnings
import zlib
from typing import BinaryIO, Iterator, Union

import cv2
import numpy as np
import pypdfium2 as pdfium
from PIL import Image, ImageOps, UnidentifiedImageError

from signver.errors import (
    CorruptImageError,
    EmptyInputError,
    InputError,
    InputTooLargeError,
    SignverError,
    UnsupportedFormatError,
)
from signver.matcher import fits_float

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_PAGES = 100  # pages of one document read by default (the service takes fewer: SIGNVER_MAX_PAGES)
# a document's pages together: a few kilobytes of PDF can draw 100 pages at the per-page limit,
# 4 GB of pixels held at once; 25 x the default is 1 GB, 100 pages of 10 megapixels
DOCUMENT_PAGES_OF_MAX = 25
FLOAT_UNIT_MAX = 2.0  # a floating-point image whose values stay under this is on a 0-1 scale
DEFAULT_DPI = 200
MIN_DPI = 50  # below it a signature 1.5 cm tall is under 30 pixels: too few to detect or verify
MAX_DPI = 9600  # a scanner's finest; past it a page's size in pixels could overflow
# The colours whose marks (a red stamp over a signature) `dropout` removes, by channel index.
DROPOUT_CHANNELS = {"red": 0, "green": 1, "blue": 2}
# How many times its excess over the other channels lifts a pixel of the dropped colour. Chosen on
# the default extractor's held-out training writers (benchmarks/colour_stamps.py's stamps; P1
# skilled EER, CEDAR / Bengali / Hindi): 1 gave red stamps 5.35 / 2.75 / 11.56 % and blue ones
# 10.97 / 2.72 / 11.61 %, 2 gave 5.94 / 2.83 / 11.59 % and 6.15 / 2.68 / 11.50 % (clean 4.78 / 2.78 / 11.68 %).
DROPOUT_LIFT = 2

SourceLike = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO, np.ndarray, Image.Image]

_SUPPORTED = "supported formats: PNG, JPEG, TIFF, BMP, WebP, GIF, PDF"
# Magic numbers mapped to the PIL format id that is allowed to open them.
_IMAGE_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
}
# Formats we refuse, named so that the message tells the user what they sent.
_OTHER_MAGIC = {
    b"PK\x03\x04": "ZIP archive (or DOCX/XLSX)",
    b"\x1f\x8b": "gzip archive",
    b"%!PS": "PostScript",
    b"8BPS": "Photoshop PSD",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000",
    b"{\\rtf": "RTF document",
}
_EMPTY_PAGE_TREE = re.compile(rb"/Type\s*/Pages\b[^>]*?/Count\s+0\b|/Count\s+0\b[^>]*?/Type\s*/Pages\b")
_PAGE = re.compile(rb"/Type\s*/Page\b")  # a page object ("/Pages" is the tree, not a page)
# PDFium may not be called from two threads at once, not even on different documents.
_PDFIUM_LOCK = threading.Lock()


def load_image(
    source: SourceLike,
    *,
    page: int = 0,
    dpi: float = DEFAULT_DPI,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    dropout: str | None = None,
) -> np.ndarray:
    """One page of `source` (page `page` of a multi-page TIFF or PDF) as a 2-D uint8 grey array.
    `dropout` ("red", "green" or "blue") reads a colour image without the marks of that colour,
    such as a stamp over the signature (`_without_colour`); grey images are read as they are."""
    if isinstance(page, bool) or not isinstance(page, numbers.Integral):
        raise InputError(f"page must be an int, got {type(page).__name__}")
    page = int(page)
    return _load(source, page, dpi, max_bytes, max_pixels, 1, dropout)[0]


def load_pages(
    source: SourceLike,
    *,
    dpi: float = DEFAULT_DPI,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pages: int = DEFAULT_MAX_PAGES,
    dropout: str | None = None,
) -> list[np.ndarray]:
    """Every page of `source` as 2-D uint8 grey arrays: one for a single image, all of a TIFF or
    PDF, refusing more than `max_pages` pages, any over `max_pixels`, and pages together over
    DOCUMENT_PAGES_OF_MAX x max_pixels. `dropout` as for `load_image`."""
    return _load(source, None, dpi, max_bytes, max_pixels, max_pages, dropout)


def check_dpi(dpi: float) -> float:
    """The resolution PDF pages render at: a number from MIN_DPI to MAX_DPI, as a float."""
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not MIN_DPI <= dpi <= MAX_DPI or not fits_float(dpi):
        raise InputError(f"dpi must be a number of at least {MIN_DPI} and at most {MAX_DPI}, got {dpi!r}")
    return float(dpi)


MAX_BYTES_LIMIT = 2**40  # 1 TiB: a limit beyond any file, yet one a read can be asked for (past 2**63 it overflows)


def check_limits(max_bytes: int, max_pixels: int, max_pages: int, names: tuple[str, str, str] = ("max_bytes", "max_pixels", "max_pages")) -> None:
    """Limits are whole numbers of at least 1: a negative one would refuse every input as too
    large. Each must also be one that can hold: Pillow refuses an image of more than twice its
    MAX_IMAGE_PIXELS as a decompression bomb whatever max_pixels says. `names`: how the caller
    calls the three, for the error."""
    pillow = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    for name, value, most in zip(names, (max_bytes, max_pixels, max_pages), (MAX_BYTES_LIMIT, pillow, None)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise InputError(f"{name} must be a whole number of at least 1, got {value!r}")
        if most is not None and value > most:
            raise InputError(f"{name} must be at most {most:,} (got {value:,}): " +
                             ("Pillow refuses larger images as decompression bombs" if most == pillow else "no file is so large"))


def check_dropout(dropout: str | None) -> str | None:
    """None (read colour as grey, also for "none") or the name of a colour to drop, in lower
    case: red, green or blue."""
    if dropout is None or isinstance(dropout, str) and dropout.lower() == "none":
        return None
    if not isinstance(dropout, str) or dropout.lower() not in DROPOUT_CHANNELS:
        raise InputError(f"dropout must be one of {', '.join(DROPOUT_CHANNELS)} (the colour whose marks to drop) or none, got {dropout!r}")
    return dropout.lower()


def _load(source, page, dpi, max_bytes, max_pixels, max_pages, dropout) -> list[np.ndarray]:
    check_dpi(dpi)
    check_limits(max_bytes, max_pixels, max_pages)
    dropout = check_dropout(dropout)
    if isinstance(source, np.ndarray):
        _pick(1, page, max_pages, "array")
        return [_from_array(source, max_pixels, dropout)]
    if isinstance(source, Image.Image):
        position = source.tell()
        try:
            return _from_pil(source, "PIL image", page, max_pixels, max_pages, dropout)
        finally:
            with contextlib.suppress(Exception):  # the caller's image left at the frame it was on
                source.seek(position)
    data, label = _read(source, max_bytes)
    with errors_naming(source):  # among several named uploads, each error says which (most say so already)
        kind = _sniff(data, label)
        if kind == "PDF":
            return _from_pdf(data, label, page, dpi, max_pixels, max_pages, dropout)
        with _decoding(label, kind):
            im = Image.open(io.BytesIO(data), formats=[kind])
        with im:
            return _from_pil(im, label, page, max_pixels, max_pages, dropout)


def _read(source, max_bytes: int) -> tuple[bytes, str]:
    """The raw bytes of a path, bytes-like or file object, refusing more than `max_bytes` unread."""
    if isinstance(source, (str, os.PathLike)):
        label = printable_name(source)  # errors name the file in text any output can carry
        if "\x00" in label:  # no file name holds one; the system call would raise a bare ValueError
            raise InputError(f"not a file name (it holds a NUL character): {label!r}")
        try:
            info = os.stat(source)
            if stat.S_ISDIR(info.st_mode):
                raise InputError(f"is a directory, not a file: {label}")
            _check_bytes(info.st_size, max_bytes, label)
            with open(source, "rb") as f:
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise InputError(f"no such file: {label}") from None
        except OSError as exc:
            raise InputError(f"cannot read {label}: {exc.strerror or exc}") from exc
    elif isinstance(source, (bytes, bytearray, memoryview)):
        label = "input bytes"
        _check_bytes(source.nbytes if isinstance(source, memoryview) else len(source), max_bytes, label)
        data = bytes(source)
    elif hasattr(source, "read"):
        label = str(getattr(source, "name", "file object"))
        if isinstance(source, io.TextIOBase):  # reading it would fail decoding the image as text
            raise InputError(f"file object must be opened in binary mode: {label}")
        try:
            data = source.read(max_bytes + 1)
        except (OSError, ValueError) as exc:  # ValueError: a closed file
            raise InputError(f"cannot read file object {label}: {exc}") from None
        if not isinstance(data, (bytes, bytearray)):
            raise InputError(f"file object must be opened in binary mode: {label}")
    else:
        raise InputError(
            f"cannot load an image from type {type(source).__name__}: expected a path, bytes, "
            "a binary file object, a numpy array or a PIL image"
        )
    if not data:
        raise EmptyInputError(f"empty input (0 bytes): {label}")
    _check_bytes(len(data), max_bytes, label)
    return bytes(data), label


def _check_bytes(size: int, max_bytes: int, label: str) -> None:
    if size > max_bytes:
        raise InputTooLargeError(f"input over {max_bytes} bytes (max_bytes): {label}")


def _check_document(pages: list[np.ndarray], width: int, height: int, max_pixels: int, label: str) -> None:
    """Before the next page of a document is decoded: all its pages together stay under
    DOCUMENT_PAGES_OF_MAX x max_pixels."""
    total = sum(p.size for p in pages) + width * height
    if total > DOCUMENT_PAGES_OF_MAX * max_pixels:
        raise InputTooLargeError(f"the pages together are over {DOCUMENT_PAGES_OF_MAX * max_pixels} pixels "
                                 f"({DOCUMENT_PAGES_OF_MAX} x max_pixels) by page {len(pages) + 1}: {label}")


def _check_pixels(width: int, height: int, max_pixels: int, label: str) -> None:
    if width * height > max_pixels:
        raise InputTooLargeError(
            f"image of {width}x{height} = {width * height} pixels is over the limit of "
            f"{max_pixels} (max_pixels): {label}"
        )


def _sniff(data: bytes, label: str) -> str:
    """The format of `data` from its magic number: 'PDF' or a PIL format id. Extensions lie."""
    if data.startswith(b"%PDF"):
        return "PDF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for magic, kind in _IMAGE_MAGIC.items():
        if data.startswith(magic):
            return kind
    found = next((name for magic, name in _OTHER_MAGIC.items() if data.startswith(magic)), None)
    if found is None and b"%PDF-" in data[:1024]:  # readers accept a header anywhere in the first kilobyte (a byte-order mark)
        return "PDF"
    if found is None and data[4:8] == b"ftyp":
        found = "HEIF/AVIF or MP4"
    if found:
        raise UnsupportedFormatError(f"unsupported format: {found}: {label}; {_SUPPORTED}")
    raise UnsupportedFormatError(f"not an image or PDF: {label}; {_SUPPORTED}")


@contextlib.contextmanager
def _decoding(label: str, kind: str) -> Iterator[None]:
    """Turn the many ways decoders fail on bad data into our errors (never load truncated data)."""
    try:
        yield
    except SignverError:
        raise
    except Image.DecompressionBombError as exc:
        reason = str(exc).rstrip(".")
        raise InputTooLargeError(f"refused as a possible decompression bomb ({reason}): {label}") from exc
    except UnidentifiedImageError as exc:
        raise CorruptImageError(f"data starts like {kind} but cannot be parsed: {label}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, TypeError, struct.error, zlib.error, pdfium.PdfiumError) as exc:
        raise CorruptImageError(f"corrupt or truncated {kind} ({exc}): {label}") from exc  # TypeError: a TIFF page cut short


def _pick(count: int, page: int | None, max_pages: int, label: str) -> range:
    """The page indices to load: all of them (page None, at most max_pages) or just `page`."""
    if count == 0:
        raise EmptyInputError(f"document has no pages: {label}")
    if page is None:
        if count > max_pages:
            raise InputTooLargeError(f"more than {max_pages} pages, the limit (max_pages): {label}")  # a TIFF is counted only so far
        return range(count)
    if not 0 <= page < count:
        raise InputError(f"page {page} out of range: {label} has {count} page(s)")
    return range(page, page + 1)


def _from_pil(im: Image.Image, label: str, page, max_pixels: int, max_pages: int, dropout: str | None) -> list[np.ndarray]:
    """Pages of a (lazily opened) PIL image; each frame's size is checked before it is decoded."""
    with _decoding(label, im.format or "image"):
        count = _frames_up_to(im, (max_pages if page is None else page) + 1) if im.format == "TIFF" else 1
        pages = []
        for index in _pick(count, page, max_pages, label):
            where = f"{label}, page {index}" if count > 1 else label  # which page of many is bad
            with _decoding(where, im.format or "image"):
                if count > 1:
                    im.seek(index)
                _check_pixels(*im.size, max_pixels, where)
                _check_document(pages, *im.size, max_pixels, where)
                pages.append(_to_gray(im, dropout))
        return pages


def _frames_up_to(im: Image.Image, limit: int) -> int:
    """A TIFF's page count, counted no further than `limit`: Pillow's n_frames walks every page
    first, minutes for a small file of a few hundred thousand empty ones."""
    count = 1
    while count < limit:
        try:
            im.seek(count)
        except EOFError:
            break
        count += 1
    im.seek(0)
    return count


def _to_gray(im: Image.Image, dropout: str | None = None) -> np.ndarray:
    """Grey uint8 as seen on paper: EXIF rotation applied, transparency flattened onto white;
    with `dropout`, a colour image without that colour's marks instead of its luminance."""
    bmp = im.format == "BMP"
    im = ImageOps.exif_transpose(im)
    if im.mode.startswith("I"):  # 16-bit grey ('I;16', 'I;16B') or 32-bit 'I' holding 16- or 8-bit values
        return _scale16(np.clip(np.asarray(im), 0, 65535))
    if im.mode == "F":  # floating point: 0-1 as numpy arrays take it, or 0-255 as some TIFF writers store it
        values = np.asarray(im, dtype=np.float64)
        if not np.isfinite(values).all():  # NaN read as 0 once: black ink all over the page
            raise InputError("the image holds pixels that are not numbers (NaN or infinity)")
        unit = values.max() <= FLOAT_UNIT_MAX  # 0-1, with room for a resampling overshoot; 0-255 passes it at once
        return np.rint(np.clip(values * (255 if unit else 1), 0, 255)).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or im.has_transparency_data:  # a palette may hold the alpha
        rgba = (im.convert("LA") if im.mode == "La" else im).convert("RGBA")
        if bmp and rgba.getchannel("A").getextrema()[1] == 0:  # many programs write 32-bit BMPs with every alpha byte 0
            im = rgba.convert("RGB")
        else:
            im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), rgba)
    try:
        if dropout and im.mode not in ("1", "L"):
            return _without_colour(np.asarray(im.convert("RGB")), DROPOUT_CHANNELS[dropout])
        return np.array(im.convert("L"), dtype=np.uint8)
    except ValueError as exc:  # "conversion from LAB to L not supported"
        raise UnsupportedFormatError(f"colour mode {im.mode} is not supported ({exc})") from exc


def _without_colour(rgb: np.ndarray, channel: int) -> np.ndarray:
    """Grey with the marks of one colour lifted to paper: that colour's channel plus
    DROPOUT_LIFT times its excess over the darker of the other two. A red stamp is light in red
    and dark in green and blue, so the excess lifts it to white even where the red channel alone
    leaves it grey (a stamp at 190 red reads 196 there, a dark blue one at 140 blue 152); black
    ink, and ink of another colour, has no excess and stays dark, also where it crosses the
    stamp. As a scanner's colour dropout, ink of the dropped colour goes too: a red pen under
    `dropout="red"`."""
    own = rgb[:, :, channel].astype(np.int16)
    others = np.delete(rgb, channel, axis=2).min(axis=2).astype(np.int16)
    return np.clip(own + DROPOUT_LIFT * (own - others), 0, 255).astype(np.uint8)


def _scale16(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit values to 8 by the range they were written in, not by the image's own
    min/max, to keep contrast: values up to 255 are 8-bit ones in a wider type (some TIFF
    writers), up to 4095 a 12-bit scanner's, else the 16-bit range. A 16-bit scan of paper is
    never that dark, and read as 16-bit such values were blank."""
    top = int(values.max()) if values.size else 0
    full = 255 if top <= 255 else 4095 if top <= 4095 else 65535
    return ((values.astype(np.uint32) * 255 + full // 2) // full).astype(np.uint8)


def _from_array(a: np.ndarray, max_pixels: int, dropout: str | None = None) -> np.ndarray:
    """A copy of a grey/RGB/RGBA array as grey uint8; bool arrays read like PIL '1' (True = white)."""
    if a.ndim == 3 and a.shape[2] == 1:  # grey with its one channel kept, as OpenCV and scikit-image may give it
        a = a[:, :, 0]
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise InputError(
            f"array of shape {a.shape} is not an image: expected HxW grey (or HxWx1), HxWx3 RGB or HxWx4 RGBA"
        )
    if a.size == 0:
        raise EmptyInputError(f"array of shape {a.shape} holds no pixels")
    _check_pixels(a.shape[1], a.shape[0], max_pixels, "array")
    if a.dtype.kind == "b":
        a = np.where(a, 255, 0).astype(np.uint8)
    elif a.dtype.kind == "u" and a.dtype.itemsize == 2:
        a = _scale16(a)
    elif a.dtype.kind == "f":
        if not (np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1):
            raise InputError(f"float array values must lie in [0, 1] (dtype {a.dtype})")
        a = np.rint(a * 255).astype(np.uint8)
    elif not (a.dtype.kind == "u" and a.dtype.itemsize == 1):
        raise InputError(
            f"unsupported array dtype {a.dtype}: expected uint8, uint16, bool or float in [0, 1]"
        )
    if a.ndim == 3:
        return _to_gray(Image.fromarray(np.ascontiguousarray(a)), dropout)
    return np.array(a, dtype=np.uint8, order="C")


def _from_pdf(data: bytes, label: str, page, dpi: float, max_pixels: int, max_pages: int, dropout: str | None) -> list[np.ndarray]:
    """Render PDF pages grey (or in colour, for `dropout`) at `dpi`, checking each page's pixel
    count from its size in points first."""
    scale = dpi / 72
    with _PDFIUM_LOCK, _decoding(label, "PDF"):
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as error:  # PDFium's last error, which may be an earlier document's
            if error.err_code == pdfium.raw.FPDF_ERR_PASSWORD and b"/Encrypt" in data:
                raise UnsupportedFormatError(f"password-protected (encrypted) PDF: remove the password first: {label}") from None
            if _EMPTY_PAGE_TREE.search(data) and not _PAGE.search(data):  # PDFium refuses an empty page tree without saying why
                raise EmptyInputError(f"document has no pages: {label}") from None
            raise CorruptImageError(f"corrupt or truncated PDF (PDFium cannot load it): {label}") from None
        try:
            pages = []
            for index in _pick(len(pdf), page, max_pages, label):
                where = f"{label}, page {index}" if len(pdf) > 1 else label  # which page of many is bad
                pdf_page = pdf[index]
                width, height = pdf_page.get_size()
                # a page over the limit at this dpi may not be at a lower one (a phone photo saved as a 72-dpi PDF)
                rendered = (f"{where}, its page {width / 72:.1f}x{height / 72:.1f} inches rendered at {dpi:g} dpi: a lower dpi "
                            "(dpi= in Python and in the service's document requests; --dpi of detect, and of check and identify --document) reads it smaller")
                _check_pixels(round(width * scale), round(height * scale), max_pixels, rendered)
                _check_document(pages, round(width * scale), round(height * scale), max_pixels, rendered)
                bitmap = pdf_page.render(scale=scale, grayscale=not dropout)
                if dropout:
                    pages.append(_to_gray(bitmap.to_pil(), dropout))
                else:
                    pages.append(np.array(bitmap.to_numpy(), dtype=np.uint8))  # copy out of PDFium's buffer
                pdf_page.close()
            return pages
        finally:
            pdf.close()


def _regular(path: str | os.PathLike) -> bool:
    """A look beside a result reads regular files only: a pipe could be read once, by the load."""
    return stat.S_ISREG(os.stat(path).st_mode)


@contextlib.contextmanager
def _quietly_opened(path: str | os.PathLike | BinaryIO) -> Iterator[Image.Image]:
    """The file lazily opened by Pillow, without its warning of a size over its bomb limit:
    loading refuses such a file, not a look at it."""
    with warnings.catch_warnings(), Image.open(path) as im:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield im


def _look(source: str | os.PathLike | io.BytesIO) -> tuple[bool, object, object] | None:
    """For a look beside a result: (is it a PDF, what pdfium opens, what Pillow opens) of a
    regular file or an upload; None for anything else (a pipe could be read once only)."""
    if isinstance(source, io.BytesIO):
        data = source.getvalue()
        return _sniff(data[:1024], "") == "PDF", data, io.BytesIO(data)
    if not _regular(source):
        return None
    with open(source, "rb") as file:
        return _sniff(file.read(1024), "") == "PDF", os.fspath(source), source


@contextlib.contextmanager
def _pdf_opened(document) -> Iterator[pdfium.PdfDocument]:
    """A PDF opened by pdfium, which is not thread-safe, under its lock."""
    with _PDFIUM_LOCK:
        pdf = pdfium.PdfDocument(document)
        try:
            yield pdf
        finally:
            pdf.close()


def first_page(source: str | os.PathLike | io.BytesIO) -> tuple[float, float, bool] | None:
    """(width, height, whether more pages or frames follow) of a file's or an upload's first
    page as it will be read (its EXIF turn applied; a PDF page in points), from its headers;
    None where that cannot be told cheaply, or safely: not a regular file (a pipe could be read
    once only), or damaged anywhere. For notes beside a result, which must never stop one:
    loading says what is wrong."""
    try:
        if (look := _look(source)) is None:
            return None
        is_pdf, document, image_file = look
        if is_pdf:
            with _pdf_opened(document) as pdf:
                return (*pdf[0].get_size(), len(pdf) > 1) if len(pdf) else None
        with _quietly_opened(image_file) as im:
            # EXIF orientations that swap the sides; a PNG's EXIF is read only by decoding it all
            turned = im.format in ("JPEG", "MPO", "TIFF", "WEBP") and im.getexif().get(0x0112) in (5, 6, 7, 8)
            width, height = (im.height, im.width) if turned else im.size
            return width, height, bool(getattr(im, "is_animated", False))  # TIFF pages, GIF, WebP and PNG frames
    except Exception:  # noqa: BLE001  any damage a decoder meets: the load that follows reports it
        return None


# height over width beyond which a file is not taken for one signature without a note: 3 of CEDAR's
# 2,640 scans are (up to 1.40, all of writer 27) and none of BHSig260's; a letter page is 1.29, A4 1.41
TALL_SHARE = 1.25


def shape_note(source: str | os.PathLike | io.BytesIO, find_signatures: str) -> str | None:
    """A note for a file or upload that is not plainly one signature: of several pages, where
    the first alone is read, or taller than wide, as a signature is not (a whole page read as one
    signature can pass for anyone's, and a sideways signature matches no one).
    `find_signatures` says how to find the signatures on a page where the note is read."""
    peek = first_page(source)
    if peek is None:
        return None
    width, height, more_pages = peek
    several = f"of several pages or frames, only the first is read (to find the signatures on every page: {find_signatures})"
    tall = (f"taller than wide, as a signature is not: a document page is read whole as one signature (find its signatures "
            f"first: {find_signatures}), and a signature turned sideways matches no one (turn it upright)")
    return "; ".join(note for note in (several if more_pages else None, tall if height > TALL_SHARE * width else None) if note) or None


# A colour's marks worth a hint: pixels of its hue, saturated and darker than paper, over this
# share of the image. A red stamp over a CEDAR-sized scan covers several per cent of it.
COLOURED_MARKS_SHARE = 0.005
# On a whole page a stamp is a smaller share: a 1.6-inch ring stamp covers 0.43 % of a letter page.
PAGE_COLOURED_MARKS_SHARE = 0.001
_HUES = {"red": ((0, 12), (168, 180)), "green": ((40, 85),), "blue": ((95, 135),)}  # OpenCV's hue, 0-180


def coloured_marks(path: str | os.PathLike, share: float = COLOURED_MARKS_SHARE) -> list[str]:
    """The colours (red, green, blue) that marks on a file's first page are drawn in, over
    `share` of it, for a hint where a stamp may cover a signature; none for grey files, or
    where that cannot be told."""
    try:
        if (look := _look(path)) is None:
            return []
        is_pdf, document, image_file = look
        if is_pdf:
            with _pdf_opened(document) as pdf:
                page = pdf[0]
                rgb = np.asarray(page.render(scale=800 / max(page.get_size())).to_pil().convert("RGB"))  # 800 pixels: enough to see a stamp
        else:
            with _quietly_opened(image_file) as im:
                if im.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "F") or im.width * im.height > DEFAULT_MAX_PIXELS:
                    return []
                im.draft("RGB", (800, 800))  # a JPEG decodes at a fraction of its size: enough to see a stamp
                im.thumbnail((800, 800))
                rgb = np.asarray(im.convert("RGB"))
    except Exception:  # noqa: BLE001  any damage a decoder meets: a hint is left out, the load reports it
        return []
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    marked = (hsv[:, :, 1] > 90) & (hsv[:, :, 2] < 235)
    hue = hsv[:, :, 0]
    return [colour for colour, ranges in _HUES.items()
            if (marked & np.any([(lo <= hue) & (hue < hi) for lo, hi in ranges], axis=0)).mean() > share]


def source_name(source) -> str | None:
    """How errors name a source: its path, or a named file object's name; None for data
    without a name (arrays, PIL images, bytes)."""
    if isinstance(source, (str, os.PathLike)):
        return printable_name(source)
    name = getattr(source, "name", None) if hasattr(source, "read") else None
    return str(name) if name is not None else None


@contextlib.contextmanager
def errors_naming(source, label: str | None = None):
    """Input errors raised inside begin with `source`'s name, or where it has none with `label`
    (image 3 of 5), so that the one bad input among many can be found: blank, too thin."""
    try:
        yield
    except InputError as error:
        name = source_name(source) or label
        if name is None or name in str(error):  # named once: many messages name it already, some in the middle
            raise
        raise type(error)(f"{name}: {error}") from None


def printable_name(path: str | os.PathLike) -> str:
    r"""A file name as text that can be printed or stored, whatever bytes it was made of: an
    undecodable byte is written as its escape (the byte ff as the four characters \xff), so
    two such files keep two names, where U+FFFD would give them one."""
    return os.fsdecode(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
