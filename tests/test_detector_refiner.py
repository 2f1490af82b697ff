"""The detector's box refiner: windows and their fractions, the crop it sees, mirrored training
examples, the ONNX export against torch, its use inside `Detector.find`, and a training run on
a small synthetic split."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from signver import synth_pages
from signver.cli import app
from signver.detector import Detector
from signver.detector_refiner import BoxRefiner, crop_window, from_window, to_window, windows_around
from signver.models import inference_session, load_card

torch = pytest.importorskip("torch")

from signver.training.detector_refiner import RefinerNetwork, augmented, export_onnx, jittered  # noqa: E402

SPEC = {"input": {"height": 64, "width": 128}, "expand": [1.6, 2.0], "pad": 8.0}


def test_window_is_centred_and_widened_and_fractions_round_trip():
    boxes = np.array([[100, 50, 300, 100], [0, 0, 4, 4]], np.float32)
    windows = windows_around(boxes, (1.6, 2.0), 8)
    assert windows[0].tolist() == pytest.approx([200 - 164, 75 - 54, 200 + 164, 75 + 54])
    assert windows[1].tolist() == pytest.approx([2 - 10.4, 2 - 12, 2 + 10.4, 2 + 12])  # tiny boxes count as 8 pixels
    fractions = to_window(boxes, windows)
    assert fractions[0].tolist() == pytest.approx([64 / 328, 29 / 108, 264 / 328, 79 / 108])
    assert from_window(fractions, windows) == pytest.approx(boxes, abs=1e-4)


def test_crop_window_reads_the_page_and_pads_with_paper():
    page = np.random.default_rng(0).integers(0, 255, (60, 80), dtype=np.uint8)
    assert np.array_equal(crop_window(page, np.array([10, 20, 42, 36], np.float32), (16, 32)), page[20:36, 10:42])
    outside = crop_window(page, np.array([-40, -20, 0, 0], np.float32), (20, 40))
    assert (outside == 255).all()


def test_mirrored_examples_keep_their_targets():
    box, truth = np.array([[0.2, 0.25, 0.7, 0.8]], np.float32), np.array([[0.15, 0.2, 0.6, 0.85]], np.float32)
    crops = np.full((64, 1, 8), 255, np.uint8)
    crops[:, 0, :3] = 0  # ink on the left
    rng = np.random.default_rng(1)
    x, t = augmented(crops, np.repeat(truth - box, 64, axis=0), rng)
    mirrored = x[:, 0, 0, 5:].mean(dim=1) < x[:, 0, 0, :3].mean(dim=1)  # ink moved to the right
    assert 0 < mirrored.sum() < 64
    mirror = lambda b: np.stack([1 - b[:, 2], b[:, 1], 1 - b[:, 0], b[:, 3]], axis=1)  # noqa: E731
    assert t[mirrored].numpy() == pytest.approx(np.repeat(mirror(truth) - mirror(box), int(mirrored.sum()), axis=0), abs=1e-6)
    assert t[~mirrored].numpy() == pytest.approx(np.repeat(truth - box, int((~mirrored).sum()), axis=0), abs=1e-6)


def test_jittered_boxes_spread_as_configured():
    truth = np.array([[100, 100, 300, 150]], np.float32)
    still = {"log_width": 0, "log_height": 0, "centre_x": 0, "centre_y": 0}
    assert np.array_equal(jittered(truth, 3, still, np.random.default_rng(0)), np.repeat(truth, 3, axis=0))
    boxes = jittered(truth, 4000, {**still, "log_height": 0.2, "centre_x": 0.1}, np.random.default_rng(0))
    assert np.log((boxes[:, 3] - boxes[:, 1]) / 50).std() == pytest.approx(0.2, rel=0.1)
    assert ((boxes[:, 0] + boxes[:, 2]) / 2 - 200).std() == pytest.approx(20, rel=0.1)
    assert np.allclose(boxes[:, 2] - boxes[:, 0], 200) and np.allclose((boxes[:, 1] + boxes[:, 3]) / 2, 125)


def export(network, tmp_path):
    path = tmp_path / "refiner.onnx"
    export_onnx(network.eval(), path, (64, 128))
    return path


def test_onnx_export_matches_torch(tmp_path):
    torch.manual_seed(0)
    network = RefinerNetwork((64, 128))
    x = torch.rand(3, 1, 64, 128)
    (ours,) = inference_session(export(network, tmp_path)).run(None, {"windows": x.numpy()})
    with torch.no_grad():
        assert np.abs(ours - network(x).numpy()).max() < 1e-4


def test_find_applies_the_cards_refiner(tmp_path):
    network = RefinerNetwork((64, 128))
    with torch.no_grad():
        network.head[-1].weight.zero_()
        network.head[-1].bias.copy_(torch.tensor([-0.01, 0.0, 0.01, 0.0]))  # every box 2 % of its window wider
    export(network, tmp_path)
    card = load_card("signature-detector")
    shutil.copyfile(card.path, tmp_path / "d.onnx")
    details = {k: v for k, v in card.details.items() if k != "refiner"}
    (tmp_path / "d.json").write_text(json.dumps({**details, "refiner": {**SPEC, "model": "refiner.onnx"}}))
    page = synth_pages.page(2, signatures=2).image
    plain = Detector(str(tmp_path / "d.onnx"))
    plain.refiner = None
    before, scores_before = plain.find(page, 0.05)
    after, scores_after = Detector(str(tmp_path / "d.onnx")).find(page, 0.05)
    assert len(before) >= 2 and np.array_equal(scores_before, scores_after)
    widened = 0.02 * (windows_around(before, (1.6, 2.0), 8)[:, 2] - windows_around(before, (1.6, 2.0), 8)[:, 0])
    h, w = page.shape
    assert after[:, 0] == pytest.approx(np.clip(before[:, 0] - widened / 2, 0, w), abs=0.01)
    assert after[:, 2] == pytest.approx(np.clip(before[:, 2] + widened / 2, 0, w), abs=0.01)
    assert after[:, [1, 3]] == pytest.approx(before[:, [1, 3]], abs=0.01)
    assert len(BoxRefiner({**SPEC, "model": "refiner.onnx"}, tmp_path)(page, np.zeros((0, 4), np.float32))) == 0


def test_mirror_and_passes(tmp_path):
    """A network that moves every box right by 2 % of its window: read from the mirrored window
    too, the two moves cancel; with two passes, the box moves twice."""
    network = RefinerNetwork((64, 128))
    with torch.no_grad():
        network.head[-1].weight.zero_()
        network.head[-1].bias.copy_(torch.tensor([0.02, 0.0, 0.02, 0.0]))
    export(network, tmp_path)
    page = np.full((400, 600), 255, np.uint8)
    boxes = np.array([[200, 150, 320, 210]], np.float32)
    once = BoxRefiner({**SPEC, "model": "refiner.onnx"}, tmp_path)(page, boxes)
    step = 0.02 * (windows_around(boxes, (1.6, 2.0), 8)[0, 2] - windows_around(boxes, (1.6, 2.0), 8)[0, 0])
    assert once[0] == pytest.approx(boxes[0] + [step, 0, step, 0], abs=0.01)
    mirrored = BoxRefiner({**SPEC, "model": "refiner.onnx", "mirror": True}, tmp_path)(page, boxes)
    assert mirrored == pytest.approx(boxes, abs=0.01)
    twice = BoxRefiner({**SPEC, "model": "refiner.onnx", "passes": 2}, tmp_path)(page, boxes)
    assert twice[0] == pytest.approx(boxes[0] + [2 * step, 0, 2 * step, 0], abs=0.01)


def test_train_refiner_on_synthetic_pages(tmp_path):
    train = synth_pages.write_yolo_split(tmp_path / "train", 6, (640, 640), seed=3)
    valid = synth_pages.write_yolo_split(tmp_path / "valid", 3, (640, 640), seed=4)
    config = {"detector": "signature-detector", "data": {"train": str(train), "valid": str(valid)}, **SPEC, "jitters": 2,
              "jitter": {"log_width": 0.2, "log_height": 0.2, "centre_x": 0.05, "centre_y": 0.05},
              "epochs": 2, "batch": 4, "lr": 0.001, "warmup": 2, "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model")}
    (tmp_path / "r.yaml").write_text(json.dumps(config))  # JSON is YAML
    result = CliRunner().invoke(app, ["train", "detector-refiner", "--config", str(tmp_path / "r.yaml")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "model" / "signature-detector.onnx"
    assert path.read_bytes() == load_card("signature-detector").path.read_bytes()  # the network is copied unchanged
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["refiner"]["model"] == "signature-detector-refiner.onnx"
    assert (tmp_path / "model" / card["refiner"]["model"]).read_bytes() == (tmp_path / "run" / card["refiner"]["model"]).read_bytes()  # the new one
    assert card["refiner"]["training"]["epochs"] == 2 and card["refiner"]["training"]["found_boxes"] > 0
    assert card["refiner"]["training_command"] == f"signver train detector-refiner --config {tmp_path / 'r.yaml'}"
    assert card["valid"]["n_images"] == 3 and 0 < card["threshold"] <= 1 and "valid_without_refiner" in card
    assert [json.loads(line)["epoch"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert Detector(str(path)).refiner is not None
