"""Tests for signver.images: every source kind, format, conversion, limit and error, built in memory."""

import io
import struct
import zipfile
import zlib

import numpy as np
import pytest
from PIL import Image

from signver import synth
from signver.errors import (
    CorruptImageError,
    EmptyInputError,
    InputError,
    InputTooLargeError,
    UnsupportedFormatError,
)
from signver.images import load_image, load_pages


def _grey(a: np.ndarray) -> np.ndarray:
    """Assert `a` is what every loader promises (2-D contiguous uint8) and return it."""
    assert isinstance(a, np.ndarray) and a.ndim == 2 and a.dtype == np.uint8 and a.flags.c_contiguous
    return a


def _sample() -> np.ndarray:
    """A 20x30 white image with a black bar as 'ink' (rows 5..9)."""
    a = np.full((20, 30), 255, np.uint8)
    a[5:10, 3:27] = 0
    return a


def _encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _png(a: np.ndarray = None) -> bytes:
    return _encode(Image.fromarray(_sample() if a is None else a), "PNG")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a tiny IDAT: a bomb that is cheap to build."""

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


# --- source kinds -------------------------------------------------------------------------


def test_path_str_bytes_fileobj_and_pil_sources_agree(tmp_path):
    data = _png()
    path = tmp_path / "sig.png"
    path.write_bytes(data)
    expected = _sample()
    for source in (path, str(path), data, bytearray(data), memoryview(data), io.BytesIO(data)):
        np.testing.assert_array_equal(_grey(load_image(source)), expected)
    np.testing.assert_array_equal(_grey(load_image(Image.open(io.BytesIO(data)))), expected)


def test_real_file_object(tmp_path):
    path = tmp_path / "sig.png"
    path.write_bytes(_png())
    with open(path, "rb") as f:
        np.testing.assert_array_equal(load_image(f), _sample())


def test_grey_uint8_array_is_copied():
    a = _sample()
    out = _grey(load_image(a))
    np.testing.assert_array_equal(out, a)
    out[0, 0] = 7
    assert a[0, 0] == 255


def test_non_contiguous_array():
    a = np.asfortranarray(_sample())[:, ::2]
    np.testing.assert_array_equal(_grey(load_image(a)), _sample()[:, ::2])


def test_rgb_array_to_grey():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 255  # pure red -> PIL luminance 76
    rgb[0, 0] = 255
    out = _grey(load_image(rgb))
    assert out.shape == (4, 5) and out[0, 0] == 255 and out[1, 1] == 76


def test_rgba_array_alpha_flattened_onto_white():
    rgba = np.zeros((4, 5, 4), np.uint8)  # black, fully transparent
    rgba[0, 0] = (0, 0, 0, 255)  # one opaque black pixel
    out = _grey(load_image(rgba))
    assert out[0, 0] == 0 and (out.ravel()[1:] == 255).all()


def test_uint16_array_scaled_by_dtype_range():
    a = np.array([[0, 32768, 65535]], np.uint16)
    out = _grey(load_image(a))
    assert out[0, 0] == 0 and abs(int(out[0, 1]) - 128) <= 1 and out[0, 2] == 255
    # Scaling is by the range the values were written in, not the image's own min/max: values
    # up to 4095 are a 12-bit scanner's, up to 255 8-bit ones (read as 16-bit, both were blank)
    assert load_image(np.array([[1000, 2000]], np.uint16)).tolist() == [[62, 125]]
    assert load_image(np.array([[100, 200]], np.uint16)).tolist() == [[100, 200]]
    assert load_image(_encode(Image.fromarray(np.array([[0, 4095]], np.uint16)), "PNG")).tolist() == [[0, 255]]


def test_grey_with_its_one_channel_kept_reads_as_grey():
    assert load_image(np.full((3, 4, 1), 200, np.uint8)).tolist() == [[200] * 4] * 3


def test_bool_array_true_is_white():
    a = np.ones((3, 4), bool)
    a[1, 2] = False
    out = _grey(load_image(a))
    assert out[1, 2] == 0 and out.sum() == 255 * 11


def test_float_array_in_unit_range():
    out = _grey(load_image(np.array([[0.0, 0.5, 1.0]], np.float32)))
    assert out.tolist() == [[0, 128, 255]]


# --- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, kw",
    [("PNG", {}), ("TIFF", {}), ("BMP", {}), ("WEBP", {"lossless": True}), ("GIF", {})],
)
def test_lossless_formats_round_trip(fmt, kw):
    data = _encode(Image.fromarray(_sample()), fmt, **kw)
    np.testing.assert_array_equal(_grey(load_image(data)), _sample())


def test_jpeg_round_trip():
    out = _grey(load_image(_encode(Image.fromarray(_sample()), "JPEG", quality=95)))
    assert out.shape == (20, 30)
    assert np.abs(out.astype(int) - _sample()).mean() < 5


def test_one_bit_tiff():
    im = Image.fromarray(_sample()).convert("1")
    for compression in ("raw", "group4"):
        out = _grey(load_image(_encode(im, "TIFF", compression=compression)))
        np.testing.assert_array_equal(out, _sample())


def test_multipage_tiff_pages_and_page_argument():
    frames = [Image.new("L", (10, 8), v) for v in (0, 100, 200)]
    data = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    pages = load_pages(data)
    assert [int(_grey(p)[0, 0]) for p in pages] == [0, 100, 200]
    assert load_image(data, page=2)[0, 0] == 200
    assert load_image(data)[0, 0] == 0
    with pytest.raises(InputTooLargeError, match="more than 2 pages.*max_pages"):
        load_pages(data, max_pages=2)
    big = _encode(frames[0], "TIFF", save_all=True, append_images=[frames[1], Image.new("L", (400, 300), 255)])
    with pytest.raises(InputTooLargeError, match=r"over the limit .*, page 2$"):  # which page of the document
        load_pages(big, max_pixels=1000)


def test_a_documents_pages_together_have_a_limit():
    """Each page under max_pixels, but together over DOCUMENT_PAGES_OF_MAX x max_pixels: refused
    before the page that would pass it is decoded."""
    frames = [Image.new("L", (10, 10), v) for v in range(30)]
    data = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputTooLargeError, match=r"pages together are over 2500 pixels \(25 x max_pixels\) by page 26"):
        load_pages(data, max_pixels=100)
    assert len(load_pages(data, max_pixels=120)) == 30


def test_a_tiff_of_very_many_pages_is_counted_only_to_the_limit():
    """Pillow's n_frames walks every page first: minutes for a small file of a few hundred thousand."""
    frames = [Image.new("L", (4, 4), v % 256) for v in range(300)]
    data = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputTooLargeError, match="more than 100 pages"):
        load_pages(data, max_pages=100)
    assert load_image(data, page=250)[0, 0] == 250
    with pytest.raises(InputError, match="page 300 out of range"):
        load_image(data, page=300)
    cut = data[: len(data) * 2 // 3]  # a page directory cut short: Pillow raises TypeError
    with pytest.raises(CorruptImageError, match="corrupt or truncated TIFF"):
        load_pages(cut, max_pages=1000)


def test_load_pages_single_image_gives_one_page():
    pages = load_pages(_png())
    assert len(pages) == 1
    np.testing.assert_array_equal(pages[0], _sample())


def test_animated_gif_reads_first_frame_only():
    frames = [Image.new("L", (6, 6), v) for v in (10, 240)]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    pages = load_pages(data)
    assert len(pages) == 1 and pages[0][0, 0] == 10


def _pdf(*greys: int) -> bytes:
    """A PDF with one 100x50-pixel page per grey value, at 100 dpi (so 72x36 points)."""
    pages = [Image.new("L", (100, 50), g) for g in greys]
    return _encode(pages[0], "PDF", resolution=100, save_all=True, append_images=pages[1:])


def test_pdf_rendered_at_dpi():
    data = _pdf(0, 255)
    pages = load_pages(data, dpi=200)
    assert [p.shape for p in pages] == [(100, 200), (100, 200)]
    assert _grey(pages[0]).mean() < 5 and pages[1].min() == 255
    assert load_image(data, page=1, dpi=72).shape == (36, 72)


def test_pdf_pixel_limit_checked_from_page_size():
    with pytest.raises(InputTooLargeError, match="max_pixels"):
        load_image(_pdf(0), dpi=200, max_pixels=100 * 200 - 1)


def test_content_sniffed_not_extension(tmp_path):
    wrong = tmp_path / "really_a_png.jpg"
    wrong.write_bytes(_png())
    np.testing.assert_array_equal(load_image(wrong), _sample())
    text = tmp_path / "notes.png"
    text.write_text("hello, not an image")
    with pytest.raises(UnsupportedFormatError, match="not an image or PDF.*notes.png"):
        load_image(text)


# --- conversions --------------------------------------------------------------------------


def test_exif_orientation_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = _encode(Image.fromarray(_sample()), "JPEG", exif=exif)
    assert load_image(data).shape == (30, 20)


def test_png_alpha_flattened_onto_white():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[0, 0, 3] = 255
    out = load_image(_encode(Image.fromarray(rgba), "PNG"))
    assert out[0, 0] == 0 and out[3, 3] == 255
    la = Image.new("LA", (4, 4), (0, 0))
    assert (load_image(_encode(la, "PNG")) == 255).all()


def test_palette_image_with_and_without_transparency():
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    im.putpixel((0, 0), 0)
    out = load_image(_encode(im, "PNG"))
    assert out[0, 0] == 0 and out[1, 1] == 255
    im.info["transparency"] = 0  # index 0 (black) transparent -> white
    assert (load_image(_encode(im, "PNG", transparency=0)) == 255).all()
    rgba = np.zeros((4, 6, 4), np.uint8)  # transparent paper, opaque black ink: a palette holding the alpha
    rgba[1:3, 1:5] = (0, 0, 0, 255)
    quantized = Image.fromarray(rgba, "RGBA").quantize()
    assert load_image(quantized).tolist() == load_image(rgba).tolist() == load_image(_encode(quantized, "PNG")).tolist()


def test_sixteen_bit_png_scaled():
    im = Image.new("I;16", (3, 1))
    im.putpixel((1, 0), 32768)
    im.putpixel((2, 0), 65535)
    out = _grey(load_image(_encode(im, "PNG")))
    assert out[0, 0] == 0 and abs(int(out[0, 1]) - 128) <= 1 and out[0, 2] == 255


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I"])
def test_sixteen_bit_pil_modes(mode):
    im = Image.new(mode, (2, 1))
    im.putpixel((1, 0), 65535)
    assert load_image(im).tolist() == [[0, 255]]


def test_32_bit_tiff_holding_8_bit_values_read_as_8_bit():
    im = Image.fromarray(np.array([[0, 128, 255]], np.int32), mode="I")
    assert load_image(_encode(im, "TIFF")).tolist() == [[0, 128, 255]]
    sixteen = Image.fromarray(np.array([[0, 32768, 65535]], np.int32), mode="I")
    assert load_image(_encode(sixteen, "TIFF")).tolist() == [[0, 128, 255]]


def test_other_modes():
    assert load_image(Image.new("CMYK", (2, 2), (0, 0, 0, 0))).tolist() == [[255, 255]] * 2
    assert load_image(Image.new("F", (2, 1), 300.0)).tolist() == [[255, 255]]
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32))  # floats in 0-1, as numpy arrays take them
    assert load_image(_encode(unit, "TIFF")).tolist() == [[0, 128, 255]]
    overshoot = Image.fromarray(np.array([[0.0, 0.5, 1.02]], np.float32))  # resampled: a little over 1
    assert load_image(_encode(overshoot, "TIFF")).tolist() == [[0, 128, 255]]
    nan = Image.fromarray(np.array([[0.5, np.nan, 1.0]], np.float32))  # NaN was read as black ink
    with pytest.raises(InputError, match="not numbers"):
        load_image(_encode(nan, "TIFF"))
    premultiplied = Image.fromarray(np.dstack([np.full((2, 3), 100, np.uint8), np.full((2, 3), 255, np.uint8)]), "LA").convert("La")
    assert load_image(premultiplied).tolist() == [[100] * 3] * 2
    with pytest.raises(UnsupportedFormatError, match="colour mode LAB is not supported"):
        load_image(_encode(Image.new("RGB", (4, 4), "white").convert("LAB"), "TIFF"))


def test_a_bmp_alpha_channel_of_zeros_is_taken_as_opaque():
    """Some programs write 32-bit BMPs with every alpha byte 0: flattened, the page went blank.
    (A PNG with every pixel transparent is a blank page, as test_png_alpha_flattened_onto_white says.)"""
    rgba = np.dstack([np.repeat(_sample()[:, :, None], 3, axis=2), np.zeros((20, 30), np.uint8)])
    assert load_image(_encode(Image.fromarray(rgba, "RGBA"), "BMP")).tolist() == _sample().tolist()
    assert load_image(Image.new("1", (2, 1), 0)).tolist() == [[0, 0]]
    stamped = np.dstack([_stamped_page(), np.zeros((50, 60), np.uint8)])  # read without red as any other colour scan
    assert np.array_equal(load_image(_encode(Image.fromarray(stamped, "RGBA"), "BMP"), dropout="red"), load_image(_stamped_page(), dropout="red"))


# --- errors -------------------------------------------------------------------------------


def test_empty_bytes_and_file(tmp_path):
    with pytest.raises(EmptyInputError, match="0 bytes"):
        load_image(b"")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(EmptyInputError, match="empty.png"):
        load_image(empty)
    with pytest.raises(EmptyInputError, match="0 bytes"):
        load_image(io.BytesIO())


def test_truncated_png_refused():
    data = _png(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8))
    with pytest.raises(CorruptImageError, match="truncated"):
        load_image(data[: len(data) // 2])


def test_garbage_after_png_magic():
    with pytest.raises(CorruptImageError, match="PNG"):
        load_image(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)


def test_corrupt_pdf():
    with pytest.raises(CorruptImageError, match="PDF"):
        load_image(b"%PDF-1.4\nnot really a pdf")


def pdf_of(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF file of these numbered objects, with a correct cross-reference table."""
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    table = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    return out + b"trailer\n<< /Size %d /Root 1 0 R " % (len(objects) + 1) + trailer + b">>\nstartxref\n%d\n%%%%EOF\n" % table


def test_a_password_protected_pdf_says_so_and_the_next_bad_pdf_gives_no_stale_reason():
    """PDFium reports its last error, which a later document that fails may not reset."""
    page = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 100] >>"]
    encrypted = pdf_of(page + [b"<< /Filter /Standard /V 1 /R 2 /O <" + b"11" * 32 + b"> /U <" + b"22" * 32 + b"> /P -4 >>"],
                       b"/Encrypt 4 0 R /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] ")
    with pytest.raises(UnsupportedFormatError, match="password-protected"):
        load_image(encrypted)
    no_pages = pdf_of([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])
    with pytest.raises(EmptyInputError, match="document has no pages") as raised:
        load_image(no_pages)  # PDFium fails on it without setting a new error: its last is still "incorrect password"
    assert "password" not in str(raised.value)
    assert load_image(b"\xef\xbb\xbf\r\n" + pdf_of(page)).shape == (round(100 * 200 / 72), round(200 * 200 / 72))  # junk before the header
    with pytest.raises(UnsupportedFormatError, match="PostScript"):  # its own magic first, whatever a comment says
        load_image(b"%!PS-Adobe-3.0\n%%Title: %PDF-1.4 export\n")
    with pytest.raises(CorruptImageError, match="corrupt or truncated PDF"):  # an empty outline is not an empty document
        load_image(b"%PDF-1.4\n1 0 obj << /Type /Outlines /Count 0 >> endobj\ngarbage")


def test_text_and_zip_unsupported():
    with pytest.raises(UnsupportedFormatError, match="not an image or PDF.*PNG, JPEG"):
        load_image(b"just some text")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hi")
    with pytest.raises(UnsupportedFormatError, match="ZIP archive"):
        load_image(buf.getvalue())


def test_too_many_bytes(tmp_path):
    data = _png()
    path = tmp_path / "big.png"
    path.write_bytes(data)
    for source in (data, path, io.BytesIO(data)):
        with pytest.raises(InputTooLargeError, match="max_bytes"):
            load_image(source, max_bytes=len(data) - 1)
    assert load_image(data, max_bytes=len(data)).shape == (20, 30)


def test_decompression_bomb_refused_before_decoding(monkeypatch):
    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded pixels of an image over the limit")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "tobytes", no_decoding)
    # 20000x20000: over PIL's own bomb limit as well as ours.
    with pytest.raises(InputTooLargeError, match="decompression bomb.*400000000 pixels"):
        load_image(_png_header_only(20000, 20000))
    # 8000x6000 = 48M: under PIL's limit, over our default of 40M.
    with pytest.raises(InputTooLargeError, match="8000x6000.*max_pixels"):
        load_image(_png_header_only(8000, 6000))


def test_pixel_limit_on_real_image_and_arrays():
    with pytest.raises(InputTooLargeError, match="30x20 = 600 pixels"):
        load_image(_png(), max_pixels=599)
    with pytest.raises(InputTooLargeError, match="max_pixels"):
        load_image(_sample(), max_pixels=599)
    with pytest.raises(InputTooLargeError, match="max_pixels"):
        load_image(Image.fromarray(_sample()), max_pixels=599)


def test_page_out_of_range():
    frames = [Image.new("L", (4, 4), v) for v in (0, 255)]
    tiff = _encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="page 5 out of range.*2 page"):
        load_image(tiff, page=5)
    with pytest.raises(InputError, match="page 1 out of range.*1 page"):
        load_image(_png(), page=1)
    with pytest.raises(InputError, match="page 2 out of range.*2 page"):
        load_image(_pdf(0, 0), page=2)
    with pytest.raises(InputError, match="page -1 out of range"):
        load_image(_sample(), page=-1)


@pytest.mark.parametrize(
    "array, match",
    [
        (np.zeros(5, np.uint8), r"shape \(5,\)"),
        (np.zeros((3, 3, 2), np.uint8), r"shape \(3, 3, 2\)"),
        (np.zeros((2, 3, 4, 1), np.uint8), r"shape \(2, 3, 4, 1\)"),
        (np.zeros((3, 3), np.int64), "dtype int64"),
        (np.zeros((3, 3), np.complex64), "dtype complex64"),
        (np.full((3, 3), 2.0), r"\[0, 1\]"),
        (np.full((3, 3), np.nan), r"\[0, 1\]"),
    ],
)
def test_bad_arrays(array, match):
    with pytest.raises(InputError, match=match):
        load_image(array)


def test_empty_array():
    with pytest.raises(EmptyInputError, match="no pixels"):
        load_image(np.zeros((0, 5), np.uint8))


@pytest.mark.parametrize("source, name", [(42, "int"), ([1, 2], "list"), (None, "NoneType")])
def test_wrong_python_type(source, name):
    with pytest.raises(InputError, match=f"from type {name}"):
        load_image(source)


def test_text_mode_file_object(tmp_path):
    with pytest.raises(InputError, match="binary mode"):
        load_image(io.StringIO("hello"))
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(path)
    with open(path) as text, pytest.raises(InputError, match="binary mode"):  # not a UnicodeDecodeError
        load_image(text)


def test_missing_path_and_directory(tmp_path):
    with pytest.raises(InputError, match="no such file: .*nothere.png"):
        load_image(tmp_path / "nothere.png")
    with pytest.raises(InputError, match="directory"):
        load_image(tmp_path)


def test_a_path_with_a_nul_character_is_an_input_error():
    with pytest.raises(InputError, match="NUL"):
        load_image("scan\x00.png")


def test_bad_dpi_and_page_type():
    for dpi in (0, 1, 49.9, 9601, 1e308, float("inf"), "200", None, True):
        with pytest.raises(InputError, match="dpi must be a number of at least 50 and at most 9600"):
            load_image(_pdf(0), dpi=dpi)
    with pytest.raises(InputError, match="page must be an int"):
        load_image(_png(), page=1.0)


def _stamped_page() -> np.ndarray:
    """White paper, a black stroke (rows 5-9), a red stamp band (rows 20-29) crossed by the black
    stroke's continuation (column 30-34), and a blue stroke (rows 40-44)."""
    a = np.full((50, 60, 3), 255, np.uint8)
    a[5:10, :] = (30, 30, 30)
    a[20:30, :] = (196, 57, 66)  # a stamp of (190, 35, 45) at 90 % ink, as on a scan
    a[20:30, 30:35] = (24, 7, 9)  # black ink crossing the stamp
    a[40:45, :] = (30, 50, 150)
    return a


@pytest.mark.parametrize("source", ["array", "png", "pdf"])
def test_dropout_lifts_marks_of_that_colour_to_paper_and_keeps_other_ink(source):
    a = _stamped_page()
    data = {"array": a, "png": _encode(Image.fromarray(a), "PNG"), "pdf": _encode(Image.fromarray(a), "PDF", resolution=200)}[source]
    grey, dropped = load_pages(data)[0], load_pages(data, dropout="red")[0]
    assert grey.shape == dropped.shape
    rows = lambda image, y: image[int(y * image.shape[0] / 50), int(10 * image.shape[1] / 60)]  # noqa: E731
    assert rows(grey, 25) < 120  # as grey, the stamp is as dark as ink
    assert rows(dropped, 25) >= 250  # dropped: paper
    assert rows(dropped, 7) < 60 and rows(dropped, 42) < 60  # black and blue ink stay
    assert dropped[int(25 * dropped.shape[0] / 50), int(32 * dropped.shape[1] / 60)] < 60  # ink over the stamp stays
    assert rows(dropped, 15) >= 250  # paper stays paper


def test_dropout_of_blue_removes_blue_ink_and_keeps_red_marks():
    dropped = load_image(_stamped_page(), dropout="blue")
    assert dropped[42, 10] >= 250 and dropped[25, 10] < 120 and dropped[7, 10] < 60


def test_dropout_leaves_grey_images_as_they_are():
    grey = _sample()
    assert np.array_equal(load_image(grey, dropout="red"), load_image(grey))
    assert np.array_equal(load_image(_encode(Image.fromarray(grey), "PNG"), dropout="green"), grey)


def test_dropout_reads_transparent_and_palette_images_flattened_onto_white():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[5:10, :] = (200, 40, 40, 255)  # an opaque red stamp stroke on transparent paper
    dropped = load_image(rgba, dropout="red")
    assert dropped.min() >= 250  # the stamp is gone and the transparent paper is white, not black
    palette = Image.fromarray(_stamped_page()).convert("P", palette=Image.ADAPTIVE, colors=8)
    assert load_image(palette, dropout="red")[25, 10] >= 240


@pytest.mark.parametrize("value", ["purple", "", 1, "r"])
def test_dropout_names_the_colours_it_takes(value):
    with pytest.raises(InputError, match="dropout must be one of red, green, blue"):
        load_image(_sample(), dropout=value)


def test_dropout_takes_any_case_and_none_for_grey():
    assert np.array_equal(load_image(_stamped_page(), dropout="Red"), load_image(_stamped_page(), dropout="red"))
    assert np.array_equal(load_image(_stamped_page(), dropout="None"), load_image(_stamped_page()))


def test_coloured_marks_names_the_colours_of_marks_on_a_colour_scan(tmp_path):
    from signver.images import coloured_marks

    Image.fromarray(_stamped_page()).save(tmp_path / "stamped.png")
    Image.fromarray(_sample()).save(tmp_path / "grey.png")
    Image.fromarray(np.dstack([_sample()] * 3)).save(tmp_path / "grey-as-rgb.jpg")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    assert coloured_marks(tmp_path / "stamped.png") == ["red", "blue"]
    assert coloured_marks(tmp_path / "grey.png") == [] and coloured_marks(tmp_path / "grey-as-rgb.jpg") == []
    assert coloured_marks(tmp_path / "broken.png") == [] and coloured_marks(tmp_path / "missing.png") == []


def test_a_stamp_on_a_whole_page_is_found_at_the_page_share(tmp_path):
    """A ring stamp 1.6 inches across covers under half a per cent of a letter page at 200 dpi:
    under the share a signature scan needs, over the share a page needs."""
    import cv2

    from signver.images import PAGE_COLOURED_MARKS_SHARE, coloured_marks

    page = np.full((2200, 1700, 3), 250, np.uint8)
    cv2.circle(page, (1200, 1800), 150, (200, 30, 40), 12)
    cv2.circle(page, (1200, 1800), 110, (200, 30, 40), 6)
    Image.fromarray(page).save(tmp_path / "letter.png")
    assert coloured_marks(tmp_path / "letter.png") == [] and coloured_marks(tmp_path / "letter.png", PAGE_COLOURED_MARKS_SHARE) == ["red"]
    Image.fromarray(page).save(tmp_path / "letter.pdf", resolution=200)  # and as a PDF page, the main document format
    assert coloured_marks(tmp_path / "letter.pdf", PAGE_COLOURED_MARKS_SHARE) == ["red"]
    Image.fromarray(page[..., 0]).save(tmp_path / "grey.pdf", resolution=200)
    assert coloured_marks(tmp_path / "grey.pdf", PAGE_COLOURED_MARKS_SHARE) == []


def test_an_error_names_a_named_input_once_and_bytes_by_their_place_alone():
    """Among several inputs each error says which one, and never twice: bytes have no name of
    their own, so their place in the list names them."""
    from signver.extractor import Extractor

    nan = io.BytesIO()
    Image.fromarray(np.full((60, 120), np.nan, np.float32)).save(nan, format="TIFF")
    with pytest.raises(InputError, match=r"^image 2 of 2: the image holds pixels that are not numbers"):
        Extractor("effnet-lite0-imagenet").embed([_png(), nan.getvalue()])
    named = io.BytesIO(nan.getvalue())
    named.name = "scan.tif"
    with pytest.raises(InputError, match=r"^scan.tif: the image holds pixels that are not numbers"):
        load_image(named)


def test_a_pil_image_is_left_at_the_frame_it_was_on():
    frames = [Image.fromarray(synth.genuine(1, s)) for s in (0, 1)]
    data = io.BytesIO()
    frames[0].save(data, format="TIFF", save_all=True, append_images=frames[1:])
    with Image.open(data) as im:
        im.seek(1)
        assert np.array_equal(load_image(im), load_image(data.getvalue()))  # page 1 is read, as for a file
        assert im.tell() == 1
