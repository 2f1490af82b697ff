"""Signature detection without torch: decoding and NMS on hand-made outputs, COCO mAP on boxes
with known answers, the threshold rule, YOLO splits, synthetic pages, the classical baseline,
and the `detect` / `evaluate-detector` commands on synthetic pages and PDFs."""

import json
import os
import time

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import signver
from signver import synth_pages
from signver.cli import app
from signver.detector import MAX_WINDOWS, Box, annotate, box_iou, crop, decode, get_detector, network_input, nms, page_windows, readings
from signver.detector_baseline import BaselineDetector
from signver.errors import DatasetError, InputError
from signver.evaluation.detection import PageDetections, average_precision, choose_threshold, detection_metrics
from signver.models import available_models
from signver.pipeline import Pipeline
from signver.yolo import parse_labels, read_split

from .conftest import shared_dataset

runner = CliRunner()


def test_decode_keeps_local_maxima_and_adds_the_cell_centre():
    heat = np.zeros((8, 8), np.float32)
    heat[2, 3], heat[2, 4], heat[6, 6], heat[0, 7] = 0.9, 0.5, 0.6, 0.05
    distances = np.zeros((4, 8, 8), np.float32)
    distances[:, 2, 3] = (10, 5, 20, 6)
    distances[:, 6, 6] = (2, 2, 2, 2)
    boxes, scores = decode(heat, distances, stride=4, min_score=0.1)
    # (2, 4) touches the stronger (2, 3); (0, 7) is under min_score
    assert scores.tolist() == pytest.approx([0.9, 0.6])
    # cell (row 2, col 3) is centred at x = 3.5 * 4 = 14, y = 2.5 * 4 = 10
    assert boxes.tolist() == [[4, 5, 34, 16], [24, 24, 28, 28]]
    assert decode(np.zeros((8, 8), np.float32), distances, 4, 0.1)[0].shape == (0, 4)


def test_nms_and_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
    assert box_iou(boxes[:1], boxes)[0].tolist() == pytest.approx([1, 81 / 119, 0, 0.5])
    keep = nms(boxes, np.array([0.9, 0.8, 0.7, 0.6], np.float32), iou=0.5)
    assert keep.tolist() == [0, 2, 3]  # IoU exactly 0.5 is kept
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def page_of(truth, detections):
    boxes = np.array([d[:4] for d in detections], np.float32).reshape(-1, 4)
    scores = np.array([d[4] for d in detections], np.float32)
    return PageDetections(boxes, scores, np.array(truth, np.float32).reshape(-1, 4))


def test_average_precision_known_answers():
    a, b = [0, 0, 10, 10], [50, 50, 70, 60]
    perfect = [page_of([a, b], [(*a, 0.9), (*b, 0.8)])]
    assert average_precision(perfect, 0.5) == 1.0 and average_precision(perfect, 0.95) == 1.0
    # hit, false positive, hit: precision 1 up to recall 0.5, then 2/3 (101-point interpolation)
    mixed = [page_of([a, b], [(*a, 0.9), (100, 100, 110, 110, 0.8), (*b, 0.7)])]
    assert average_precision(mixed, 0.5) == pytest.approx((51 + 50 * 2 / 3) / 101)
    # one detection at IoU 0.62 counts at thresholds 0.5, 0.55, 0.6 only
    loose = [page_of([[0, 0, 100, 100]], [(0, 0, 100, 62, 0.9)])]
    metrics = detection_metrics(loose, 0.5)
    assert metrics["map50"] == 1.0 and metrics["map50_95"] == pytest.approx(0.3)
    # a true box is matched once: the duplicate is a false positive
    duplicate = [page_of([a], [(*a, 0.9), (*a, 0.8)])]
    assert detection_metrics(duplicate, 0.5)["precision"] == 0.5
    assert average_precision([page_of([a], [])], 0.5) == 0.0
    # nothing found: precision is 0/0, not 0; recall and F1 are 0
    missed = detection_metrics([page_of([a], [])], 0.5)
    assert (missed["precision"], missed["recall"], missed["f1"]) == (None, 0.0, 0.0)


def test_threshold_respects_signature_free_pages():
    pages = [
        page_of([[0, 0, 10, 10]], [(0, 0, 10, 10, 0.9)]),
        page_of([], [(0, 0, 10, 10, 0.4)]),  # no signature on this page
        page_of([[0, 0, 10, 10]], [(0, 0, 10, 10, 0.3)]),
    ]
    # keeping all would give the best F1 (0.8) but a box on the signature-free page
    assert choose_threshold(pages, min_clean=0.95) == pytest.approx(0.65)
    assert choose_threshold(pages, min_clean=0.0) == pytest.approx(0.15)
    metrics = detection_metrics(pages, 0.65)
    assert (metrics["precision"], metrics["recall"], metrics["signature_free_pages_clean"]) == (1.0, 0.5, 1.0)
    # a split of signature-free pages only: nothing to recall, so no recall or AP (not 0)
    free = detection_metrics([page_of([], [(0, 0, 10, 10, 0.4)]), page_of([], [])], 0.5)
    assert [free[k] for k in ("map50", "map75", "map50_95", "recall", "f1")] == [None] * 5
    assert free["signature_free_pages_clean"] == 1.0 and free["n_boxes"] == 0


def test_synthetic_pages_and_yolo_split(tmp_path):
    page = synth_pages.page(3, (400, 300), signatures=2)
    assert page.image.shape == (400, 300) and page.image.dtype == np.uint8 and len(page.boxes) == 2
    for x0, y0, x1, y1 in page.boxes.astype(int):
        assert page.image[y0:y1, x0:x1].min() < 100  # ink inside each box
    assert np.array_equal(synth_pages.page(3, (400, 300), signatures=2).image, page.image)
    split = synth_pages.write_yolo_split(tmp_path / "split", 5, (320, 320), seed=1)
    pages = read_split(split)
    assert len(pages) == 5 and all(p.boxes.shape[1] == 4 and (p.boxes >= 0).all() and (p.boxes <= 1).all() for p in pages)
    (split / "labels" / "page_000.txt").unlink()
    with pytest.raises(DatasetError, match="no label file"):
        read_split(split)
    with pytest.raises(DatasetError, match="not a YOLO split"):
        read_split(tmp_path)


@pytest.mark.parametrize("line", ["0 nan 0.5 0.2 0.1", "0 inf 0.5 0.2 0.1", "0 1.7 2.5 3.2 4.1", "0 0.5 0.5 -0.2 0.1",
                                  "0 0.5 0.5 0.2 0", "signature 0.5 0.5 0.2 0.1", "0.5 0.5 0.5 0.2 0.1", "0 0.5 0.5 0.2"])
def test_a_label_line_off_the_page_or_not_numbers_is_named(tmp_path, line):
    """Such a box would be clipped or kept and never match, silently lowering recall."""
    label = tmp_path / "page.txt"
    label.write_text(f"0 0.5 0.5 0.2 0.1\n{line}\n")
    with pytest.raises(DatasetError, match="page.txt:2: expected 'class cx cy w h'"):
        parse_labels(label)


def test_labels_within_the_page_are_read_and_a_binary_label_file_is_named(tmp_path):
    label = tmp_path / "page.txt"
    label.write_text("0 0.5 0.5 0.2 0.1\n\n1.0 1.0004 0.0 1.0 0.5\n")  # a class as 1.0; rounding just past the edge
    assert np.allclose(parse_labels(label), [[0.4, 0.45, 0.6, 0.55], [0.5004, 0, 1, 0.25]], atol=1e-4)
    label.write_bytes(b"\xef\xbb\xbf0 0.5 0.5 0.2 0.1\r\n")  # a Windows editor's byte-order mark and line ends
    assert np.allclose(parse_labels(label), [[0.4, 0.45, 0.6, 0.55]])
    label.write_bytes(b"\xff\xfe0 0.5")
    with pytest.raises(DatasetError, match="not a text file of YOLO labels"):
        parse_labels(label)


def test_crop_and_annotate():
    page = np.full((100, 200), 255, np.uint8)
    box = Box(0, 50.0, 20.0, 150.0, 60.0, 0.9)
    assert crop(page, box, margin=0.0).shape == (40, 100)
    assert crop(page, box, margin=0.1).shape == (60, 120)
    drawn = annotate(page, [box])
    assert drawn.shape == (100, 200, 3) and (drawn[20, 50:150] != 255).any()
    assert box.to_dict() == {"page": 0, "x0": 50.0, "y0": 20.0, "x1": 150.0, "y1": 60.0, "score": 0.9}


def test_baseline_finds_synthetic_signatures():
    pages = [synth_pages.page(seed, (640, 640), signatures=2) for seed in range(4)]
    detections = [PageDetections(*BaselineDetector().find(p.image), p.boxes) for p in pages]
    assert detection_metrics(detections, 0.0)["recall"] > 0.5


def test_detect_api_on_a_page_and_a_blank_page():
    page = synth_pages.page(5, (800, 600), signatures=1)
    boxes = signver.detect(page.image)
    assert all(isinstance(b, Box) and b.page == 0 and 0 <= b.x0 < b.x1 <= 600 and 0 <= b.y0 < b.y1 <= 800 for b in boxes)
    assert [b.score for b in boxes] == sorted((b.score for b in boxes), reverse=True)
    assert signver.detect(np.full((800, 600), 250, np.uint8)) == []


def test_a_page_wider_than_the_input_is_read_stretched_and_with_its_shape_kept():
    assert readings((100, 400), (512, 512)) == (False, True) and readings((400, 300), (512, 512)) == (False,)
    assert readings((2000, 2001), (512, 512)) == (False,)  # the same input either way: read once
    page = np.full((100, 400), 200, np.uint8)
    page[40:60, 100:300] = 20
    shaped, top, rows = network_input(page, (512, 512), keep_shape=True)  # shrunk to the width, laid on its paper
    assert shaped.shape == (1, 1, 512, 512) and (top, rows) == (192, 128)
    assert np.allclose(shaped[0, 0, :top], 200 / 255) and shaped[0, 0, top + 52 : top + 76, 129:383].max() < 30 / 255
    assert network_input(page, (512, 512))[1:] == (0, 512)  # stretched whole, as the training pages were
    assert network_input(np.zeros((300, 200), np.uint8), (512, 512), keep_shape=True)[1:] == (0, 512)  # not wide: stretched
    sliver = np.full((100, 400_000), 255, np.uint8)  # within the pixel limit; padded at full size it took 149 GiB
    assert network_input(sliver, (512, 512), keep_shape=True)[2] == 1 and get_detector().find(sliver)[0].shape == (0, 4)


def test_a_page_much_taller_than_a_training_page_is_read_in_overlapping_windows():
    assert page_windows(1100, 850) == [(0, 1100)]  # a letter page
    assert page_windows(1400, 850) == [(0, 1400)]  # a legal page
    windows = page_windows(3300, 850)  # three letter pages one above the other
    assert windows[0][0] == 0 and windows[-1][1] == 3300 and {b - t for t, b in windows} == {1100}
    assert all(next_top <= top + 550 for (top, _), (next_top, _) in zip(windows, windows[1:]))  # overlapping by at least half
    sliver = page_windows(400_000, 100)  # 3,100 windows of a training page's shape: at most MAX_WINDOWS, taller
    assert len(sliver) <= MAX_WINDOWS and sliver[-1][1] == 400_000


def test_signatures_on_pages_one_above_the_other_are_found_once_where_they_are():
    """Stretched whole, three pages made a third of each signature's height (the detector found
    50 of 149 on valid pages so stacked); read in windows, each is found once."""
    pages = [synth_pages.page(seed, (1100, 850), signatures=1) for seed in range(3)]
    tall = np.vstack([p.image for p in pages])
    truth = np.concatenate([p.boxes + np.float32([0, 1100 * i, 0, 1100 * i]) for i, p in enumerate(pages)])
    boxes, _ = get_detector().find(tall)
    assert len(boxes) == 3 and (box_iou(truth, boxes).max(axis=1) >= 0.5).all()


def test_signatures_on_strips_cut_from_pages_are_found_where_they_are():
    """A strip the shape of a cheque, stretched to the square input, squeezed its signature to a
    third of its width, and the detector found 2 of these 8 (see benchmarks/detect_page_shapes.py);
    it now reads such a page with its shape kept too."""
    detector = get_detector()
    for seed in range(5):
        page = synth_pages.page(seed, (1100, 850), signatures=1)
        centre = int((page.boxes[0, 1] + page.boxes[0, 3]) / 2)
        top = min(max(0, centre - 110), 1100 - 220)
        strip = page.image[top : top + 220]
        boxes, _ = detector.find(strip)
        assert len(boxes) and box_iou(page.boxes[:1] - np.float32([0, top, 0, top]), boxes).max() >= 0.5, seed
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 850).all() and (boxes[:, 3] <= 220).all()


def test_a_wide_page_scanned_turned_is_read_turned_back():
    """A cheque photographed upright is a tall page: read in windows as it lies, its sideways
    signature was found at IoU 0.5 in 5 of these 12 (the cheque-shaped strips above, turned a
    quarter each way); read turned back too, the better reading kept, in all. The boxes are in
    the turned page's own pixels. Pages one above the other, their lines across, are not turned."""
    from signver.detector import boxes_turned_back, lines_run_across

    detector = get_detector()
    stacked = np.vstack([synth_pages.page(seed, (1100, 850), signatures=1).image for seed in range(3)])
    assert lines_run_across(stacked)
    found_before = found = 0
    for seed in range(6):
        page = synth_pages.page(seed, (1100, 850), signatures=1)
        top = min(max(0, int((page.boxes[0, 1] + page.boxes[0, 3]) / 2) - 110), 1100 - 220)
        strip = page.image[top : top + 220]
        truth = page.boxes[:1] - np.float32([0, top, 0, top])
        x0, y0, x1, y1 = truth.T
        for quarters, turned_truth in ((1, np.stack([y0, 850 - x1, y1, 850 - x0], 1)), (3, np.stack([220 - y1, x0, 220 - y0, x1], 1))):
            assert np.allclose(boxes_turned_back(turned_truth, quarters, strip.shape), truth)
            turned = np.ascontiguousarray(np.rot90(strip, quarters))
            assert not lines_run_across(turned)
            boxes, _ = detector.find(turned)
            before, _ = detector._find_as_it_lies(turned, detector.threshold)
            found += bool(len(boxes)) and box_iou(turned_truth, boxes).max() >= 0.5
            found_before += bool(len(before)) and box_iou(turned_truth, before).max() >= 0.5
            assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 220).all() and (boxes[:, 3] <= 850).all()
    assert found == 12 and found_before == 5


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan"), "0.5", True])
def test_detect_api_refuses_a_threshold_that_is_not_a_score(threshold):
    """Out of 0..1 a threshold keeps every box or none, silently: refused like the CLI's."""
    with pytest.raises(InputError, match="from 0 to 1"):
        signver.detect(np.full((80, 60), 250, np.uint8), threshold=threshold)
    with pytest.raises(InputError, match="from 0 to 1"):
        Pipeline(detect_threshold=threshold)
    with pytest.raises(InputError, match="dpi must be a number of at least 50 and at most 9600"):
        Pipeline(dpi=10)


def test_shipped_detector_card():
    (card,) = [c for c in available_models("detector") if c.name == "signature-detector"]
    assert 0 < card.threshold < 1 and card.input_size[0] == card.input_size[1]
    assert card.details["valid"]["map50"] > 0 and card.details["training_command"].startswith("signver train detector")
    assert (card.path.parent / card.details["refiner"]["model"]).is_file() and card.details["refiner"]["training_command"].startswith("signver train detector-refiner")


@pytest.fixture(scope="module")
def two_page_pdf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pdf")
    pages = [Image.fromarray(synth_pages.page(seed, (1100, 850), signatures=2).image) for seed in (7, 8)]
    pages[0].save(folder / "letter.pdf", save_all=True, append_images=pages[1:], resolution=100)
    return folder / "letter.pdf"


def test_cli_detect_pdf_with_crops_annotations_and_json(two_page_pdf, tmp_path):
    crops, annotated = tmp_path / "crops", tmp_path / "annotated"
    result = runner.invoke(app, ["detect", str(two_page_pdf), "--dpi", "100", "--threshold", "0.05",
                                 "--crops", str(crops), "--annotate", str(annotated), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["page"] for r in records] == [0, 1]
    assert all((r["width"], r["height"]) == (850, 1100) for r in records)
    boxes = [box for r in records for box in r["boxes"]]
    assert boxes and {b["crop"] for b in boxes} == {str(p) for p in crops.iterdir()}
    assert sorted(p.name for p in annotated.iterdir()) == ["letter-page0.png", "letter-page1.png"]
    assert Image.open(annotated / "letter-page0.png").size == (850, 1100)
    text = runner.invoke(app, ["detect", str(two_page_pdf), "--dpi", "100"])
    assert text.exit_code == 0 and all(line.startswith(f"{two_page_pdf}\t") for line in text.stdout.splitlines())


def test_cli_detect_never_writes_over_an_input_or_another_files_outputs(tmp_path, two_page_pdf):
    """Pages named scan, scan (another folder) and scan-2 get outputs named apart; a folder that
    holds inputs is refused for outputs, since an annotated page could take an input's name."""
    for folder, name in (("x", "scan.pdf"), ("y", "scan.pdf"), (".", "scan-2.pdf")):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / name).write_bytes(two_page_pdf.read_bytes())
    inputs = [tmp_path / "x" / "scan.pdf", tmp_path / "y" / "scan.pdf", tmp_path / "scan-2.pdf"]
    crops, annotated = tmp_path / "crops", tmp_path / "annotated"
    result = runner.invoke(app, ["detect", *map(str, inputs), "--dpi", "50", "--threshold", "0.05",
                                 "--crops", str(crops), "--annotate", str(annotated), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    named = [box["crop"] for r in records for box in r["boxes"]]
    assert named and len(set(named)) == len(named) == len(list(crops.iterdir()))
    assert sorted(p.name for p in annotated.iterdir()) == sorted(f"{stem}-page{i}.png" for stem in ("scan", "scan-2", "scan-2-2") for i in (0, 1))
    inputs[0].with_name("Scan.pdf").write_bytes(two_page_pdf.read_bytes())
    cased = runner.invoke(app, ["detect", str(inputs[0]), str(inputs[0].with_name("Scan.pdf")), "--dpi", "50", "--annotate", str(tmp_path / "cased")])
    assert cased.exit_code == 0 and sorted(p.name for p in (tmp_path / "cased").iterdir()) == [
        "Scan-2-page0.png", "Scan-2-page1.png", "scan-page0.png", "scan-page1.png"]  # one file on a case-blind disk
    before = inputs[2].read_bytes()
    refused = runner.invoke(app, ["detect", str(inputs[2]), "--annotate", str(tmp_path)])
    assert refused.exit_code == 2 and "holds input files" in refused.output and inputs[2].read_bytes() == before


def test_cli_detect_goes_on_past_an_output_it_cannot_write_and_never_overwrites_an_input(tmp_path, two_page_pdf):
    """A crop whose name is taken by a folder is that page's error; a crop that is a hard link
    to an input is refused, not written over; an output folder already holding files is said."""
    crops = tmp_path / "crops"
    crops.mkdir()
    (crops / "letter-page0.png").mkdir()  # where --annotate's first page would go
    kept = tmp_path / "kept.png"
    kept.write_bytes(b"an input")
    os.link(kept, crops / "letter-page1.png")  # the second page's annotation would overwrite it
    result = runner.invoke(app, ["detect", str(two_page_pdf), str(kept), "--dpi", "50", "--annotate", str(crops), "--json"])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 2 and [(r.get("page"), "error" in r) for r in records] == [(0, True), (1, True), (None, True)], result.output
    assert "is one of the inputs" in records[1]["error"] and kept.read_bytes() == b"an input"
    assert "already holds 2 file(s)" in result.stderr
    assert all("boxes" in r for r in records[:2])  # the pages' boxes are still reported
    # a crop that cannot be written is that box's error; the page's other boxes and lines stay
    found = runner.invoke(app, ["detect", str(two_page_pdf), "--dpi", "50", "--threshold", "0.05", "--json"])
    first = json.loads(found.stdout.splitlines()[0])
    assert len(first["boxes"]) >= 1
    blocked = tmp_path / "blocked"
    (blocked / "letter-page0-sig0.png").mkdir(parents=True)
    partial = runner.invoke(app, ["detect", str(two_page_pdf), "--dpi", "50", "--threshold", "0.05", "--crops", str(blocked), "--json"])
    page0 = json.loads(partial.stdout.splitlines()[0])
    assert partial.exit_code == 2 and len(page0["boxes"]) == len(first["boxes"]) and "error" in page0["boxes"][0]
    assert all("crop" in box for box in page0["boxes"][1:])


def test_cli_clean_goes_on_past_an_output_it_cannot_write(tmp_path):
    from signver import synth

    source = tmp_path / "in"
    source.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(synth.genuine(3, 0)).save(source / name)
    out = tmp_path / "out"
    (out / "a.png").mkdir(parents=True)
    result = runner.invoke(app, ["clean", str(source / "a.png"), str(source / "b.png"), "--out", str(out)])
    assert result.exit_code == 2 and "cannot write" in result.stderr and (out / "b.png").is_file(), result.output
    assert result.stdout.splitlines() == [f"{source / 'b.png'}\t{out / 'b.png'}"]


def test_cli_detect_progress_counts_the_pages_of_a_file_given_twice(two_page_pdf, monkeypatch):
    from signver import cli

    bars, make = [], cli.progress_bar
    monkeypatch.setattr(cli, "progress_bar", lambda: bars.append(make()) or bars[-1])
    result = runner.invoke(app, ["detect", str(two_page_pdf), str(two_page_pdf), "--dpi", "50"])
    assert result.exit_code == 0, result.output
    task = bars[0].tasks[0]
    assert task.completed == task.total == 4


def test_cli_detect_bad_input_exits_2(tmp_path, two_page_pdf):
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    result = runner.invoke(app, ["detect", str(bad), str(two_page_pdf), "--dpi", "50"])
    assert result.exit_code == 2 and result.stderr.count("notes.txt") == 1  # named once
    assert f"{two_page_pdf}\t1\t" in result.stdout  # the good file is still processed
    assert runner.invoke(app, ["detect", str(tmp_path / "missing.png")]).exit_code == 2
    as_json = runner.invoke(app, ["detect", str(bad), str(two_page_pdf), "--dpi", "50", "--json"])
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert as_json.exit_code == 2 and records[0]["file"] == str(bad) and "error" in records[0] and len(records) == 3


def test_cli_detect_names_too_long_are_their_files_errors_and_the_run_goes_on(tmp_path, two_page_pdf):
    """A name the system cannot look up (too long) once stopped the whole run with exit 3."""
    too_long = tmp_path / ("a" * 300 + ".png")
    result = runner.invoke(app, ["detect", str(too_long), str(two_page_pdf), "--dpi", "50"])
    assert result.exit_code == 2 and f"{two_page_pdf}\t1\t" in result.stdout, result.output
    long_stem = tmp_path / ("b" * 250 + ".pdf")  # its name fits; "<stem>-page0.png" does not
    long_stem.write_bytes(two_page_pdf.read_bytes())
    annotated = runner.invoke(app, ["detect", str(long_stem), str(two_page_pdf), "--dpi", "50", "--annotate", str(tmp_path / "ann")])
    assert annotated.exit_code == 2 and "cannot write" in annotated.stderr, annotated.output
    assert sorted(p.name for p in (tmp_path / "ann").iterdir()) == ["letter-page0.png", "letter-page1.png"]


def test_cli_evaluate_detector(tmp_path):
    split = synth_pages.write_yolo_split(tmp_path / "split", 4, (480, 480), seed=3)
    for flags, name in (([], "signature-detector"), (["--baseline"], "classical baseline")):
        out = tmp_path / f"out{len(flags)}"
        result = runner.invoke(app, ["evaluate-detector", str(split), "--out", str(out), *flags])
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["model"].startswith(name) and metrics["n_images"] == 4
        assert {"map50", "map50_95", "precision", "recall", "f1", "score_threshold", "ms_per_page"} <= set(metrics)
        assert (out / "precision_recall.png").is_file()
    assert runner.invoke(app, ["evaluate-detector", str(tmp_path), "--out", str(tmp_path / "x")]).exit_code == 2
    inside = runner.invoke(app, ["evaluate-detector", str(split), "--out", str(split / "images")])
    assert inside.exit_code == 2 and "is inside" in inside.output and not (split / "images" / "metrics.json").exists()


def test_detection_timing_is_of_the_operating_point_and_boxes_of_the_full_search(tmp_path):
    from signver.evaluation.detection_report import run_detector

    split = synth_pages.write_yolo_split(tmp_path / "split", 3, (160, 160), seed=4)
    calls = {"find": 0, "timed": 0}

    def find(page):  # the search down to low scores: slow, many boxes
        calls["find"] += 1
        time.sleep(0.05)
        return np.array([[0, 0, 10, 10]], np.float32), np.array([0.02], np.float32)

    def timed(page):  # what a user runs: fast, no box
        calls["timed"] += 1
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)

    pages, ms = run_detector(split, find, timed=timed)
    assert [len(p.boxes) for p in pages] == [1, 1, 1] and ms < 40 and calls == {"find": 3, "timed": 4}
    pages, ms = run_detector(split, find)  # one search, timed
    assert ms >= 45 and calls["find"] == 3 + 4


@pytest.mark.data
def test_detection_dataset_reads_as_documented():
    root = shared_dataset("signature-detection")
    for split, images, boxes, empty in (("train", 1980, 2330, 180), ("valid", 420, 455, 44)):
        pages = read_split(root / split)
        assert (len(pages), sum(len(p.boxes) for p in pages), sum(not len(p.boxes) for p in pages)) == (images, boxes, empty)


@pytest.mark.data
def test_shipped_detector_reproduces_its_card_on_valid(tmp_path):
    from signver.evaluation.detection_report import evaluate_detector
    from signver.models import load_card

    valid = shared_dataset("signature-detection") / "valid"
    metrics = evaluate_detector(valid, tmp_path)
    card = load_card("signature-detector").details["valid"]
    for key in ("map50", "map50_95", "precision", "recall", "signature_free_pages_clean"):
        assert metrics[key] == pytest.approx(card[key], abs=0.01), key


def test_detection_never_imports_torch():
    import subprocess
    import sys

    code = ("import sys, signver; from signver import synth_pages; from signver.evaluation import detection_report; "
            "signver.detect(synth_pages.page(0).image); print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
