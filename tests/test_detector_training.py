"""Detector training on synthetic pages: targets, losses, augmentation that moves boxes with the
ink, and a tiny resumable run whose ONNX export computes what the torch network computes."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from signver import synth_pages  # noqa: E402
from signver.errors import InputError  # noqa: E402
from signver.detector import Detector  # noqa: E402
from signver.training.detector import AugmentedPages, load_page_set, train_detector, training_batches  # noqa: E402
from signver.training.detector_augment import augment_page, random_affine, turn  # noqa: E402
from signver.training.detector_loss import box_loss, focal_loss, giou  # noqa: E402
from signver.training.detector_network import build_detector, load_detector_weights  # noqa: E402
from signver.training.detector_targets import centre_targets  # noqa: E402


def test_targets_of_one_box():
    heat, box_target, weight = centre_targets(np.array([[40, 20, 104, 44]], np.float32), (128, 128), stride=4)
    assert heat.shape == (32, 32) and heat.max() == 1.0
    assert np.argwhere(heat == 1).tolist() == [[8, 18]]  # centre (72, 32) / 4
    assert box_target[:, 8, 18].tolist() == [40, 20, 104, 44]
    assert weight.sum() == pytest.approx(np.log(64 * 24), rel=1e-4)
    cells = np.argwhere(weight > 0)
    assert cells[:, 1].min() >= 40 / 4 and cells[:, 1].max() < 104 / 4  # regression stays inside the box
    empty = centre_targets(np.zeros((0, 4), np.float32), (128, 128), 4)
    assert all(t.sum() == 0 for t in empty)


def test_losses():
    target = np.zeros((1, 16, 16), np.float32)
    target[0, 5, 5] = 1.0
    target = torch.from_numpy(target)
    good = torch.full((1, 16, 16), -6.0)
    good[0, 5, 5] = 6.0
    assert focal_loss(good, target) < 0.01 < focal_loss(torch.zeros(1, 16, 16), target)
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    assert giou(a, a).item() == pytest.approx(1.0)
    assert giou(a, torch.tensor([[20.0, 0.0, 30.0, 10.0]])).item() == pytest.approx(-1 / 3)
    # distances that reproduce the box exactly cost nothing
    box_target = torch.zeros(1, 4, 4, 4)
    weight = torch.zeros(1, 4, 4)
    box_target[0, :, 1, 1], weight[0, 1, 1] = torch.tensor([2.0, 3.0, 10.0, 9.0]), 1.0
    distances = torch.ones(1, 4, 4, 4)
    distances[0, :, 1, 1] = torch.tensor([4.0, 3.0, 4.0, 3.0])  # cell centre (6, 6) at stride 4
    assert box_loss(distances, box_target, weight, stride=4).item() == pytest.approx(0.0, abs=1e-6)


def ink_box(image: np.ndarray) -> list[int]:
    ys, xs = np.nonzero(image < 128)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_turns_and_affine_move_boxes_with_the_ink():
    page = np.full((200, 300), 255, np.uint8)
    page[50:80, 100:220] = 0
    box = np.array([[100, 50, 220, 80]], np.float32)
    for quarters in (1, 2, 3):
        turned, boxes = turn(page, box, quarters)
        assert boxes[0].tolist() == ink_box(turned)
    assert np.array_equal(turn(page, box, 4)[0], page)
    for seed in range(20):
        moved, boxes = random_affine(page, box, (160, 160), np.random.default_rng(seed), 1.0)
        if len(boxes) and 0 < boxes[0, 0] and boxes[0, 2] < 160 and 0 < boxes[0, 1] and boxes[0, 3] < 160:
            count, labels, stats, _ = cv2.connectedComponentsWithStats((moved < 128).astype(np.uint8))
            inside = labels[int(boxes[0, [1, 3]].mean()), int(boxes[0, [0, 2]].mean())]
            x, y, w, h = stats[inside, :4]
            assert np.abs(np.array([x, y, x + w, y + h]) - boxes[0]).max() <= 2.0


def test_augment_page_gives_the_training_size():
    made = synth_pages.page(2, (300, 300), signatures=2)
    for seed in range(5):
        image, boxes = augment_page(made.image, made.boxes, (128, 128), np.random.default_rng(seed))
        assert image.shape == (128, 128) and image.dtype == np.uint8
        assert ((boxes >= 0) & (boxes <= 128)).all() and len(boxes) <= 2
        part, boxes = augment_page(made.image, made.boxes, (128, 128), np.random.default_rng(seed), window=96)
        assert part.shape == (96, 96) and ((boxes >= 0) & (boxes <= 96)).all()


def test_network_shapes():
    network = build_detector({"width": 16, "pretrained": False}).eval()
    logits, distances = network(torch.rand(2, 1, 96, 128))
    assert network.stride == 4 and logits.shape == (2, 1, 24, 32) and distances.shape == (2, 4, 24, 32)
    assert (distances > 0).all()


def test_training_examples_do_not_depend_on_the_workers_that_make_them(tmp_path):
    synth_pages.write_yolo_split(tmp_path / "train", 6, (192, 192), seed=3)
    examples = AugmentedPages(load_page_set(str(tmp_path / "train"), 160), 128, 96, 4, 1.0, seed=5)
    batches = {workers: list(training_batches(examples, 1, 2, workers)) for workers in (0, 2)}
    assert len(batches[0]) == 3 and batches[0][0][0].shape == (2, 96, 96) and batches[0][0][0].dtype == torch.uint8
    assert all(torch.equal(a, b) for one, two in zip(batches[0], batches[2]) for a, b in zip(one, two))
    assert not torch.equal(batches[0][0][0], list(training_batches(examples, 2, 2, 0))[0][0])  # another epoch, other examples


def test_tiny_training_run_end_to_end(tmp_path):
    synth_pages.write_yolo_split(tmp_path / "train", 8, (256, 256), seed=1)
    synth_pages.write_yolo_split(tmp_path / "valid", 4, (256, 256), seed=2)
    config = {
        "name": "tiny-detector", "description": "test", "seed": 0,
        "network": {"taps": [2, 4, 10], "width": 16, "frozen_blocks": 3},
        "input": {"size": 128}, "cache_size": 160, "window": 96,
        "data": {"train": str(tmp_path / "train"), "valid": str(tmp_path / "valid")},
        "batch": 4, "epochs": 2, "lr": 0.001, "warmup": 1,
        "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model"),
    }
    with pytest.raises(InputError, match="batch 9 is more than the 8 training pages"):  # it trained nothing, and exported that
        train_detector({**config, "batch": 9}, "tiny.yaml")
    with pytest.raises(InputError, match="init_from .* is not a file"):
        train_detector({**config, "init_from": str(tmp_path / "none.pt")}, "tiny.yaml")
    assert not (tmp_path / "model").exists()
    path = train_detector(config, "tiny.yaml")
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2] and all({"map50", "map50_95"} <= set(r["valid"]) for r in log)
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["kind"] == "detector" and 0 < card["threshold"] <= 1 and card["stride"] == 4
    assert card["training_command"] == "signver train detector --config tiny.yaml" and card["training"]["chosen_epoch"] in (1, 2)
    assert card["valid"]["n_images"] == 4
    # the exported file computes what the chosen checkpoint computes
    network = build_detector(config["network"])
    network.load_state_dict(torch.load(tmp_path / "run" / "best.pt", weights_only=False)["network"])
    valid = load_page_set(config["data"]["valid"], 128, tmp_path / "run" / "valid-128.npz")
    x = torch.from_numpy(valid.images).float().div(255.0)[:, None]
    with torch.no_grad():
        logits, distances = network.eval()(x)
    detector = Detector(str(path))
    heat_onnx, distances_onnx = detector.session.run(None, {"page": x.numpy()})
    assert np.abs(heat_onnx - torch.sigmoid(logits).numpy()).max() < 1e-4
    assert np.abs(distances_onnx - distances.numpy()).max() < 1e-2
    boxes, scores = detector.find(synth_pages.page(1, (256, 256)).image, min_score=0.0)
    assert boxes.shape[1] == 4 and len(boxes) == len(scores)
    # resuming a finished run trains no further
    train_detector(config, "tiny.yaml")
    assert len((tmp_path / "run" / "log.jsonl").read_text().splitlines()) == 2
    # a second stage starts from the weights the first one chose, even with fewer blocks frozen, and its card says so
    stage2 = {**config, "network": {**config["network"], "frozen_blocks": 1}, "init_from": str(tmp_path / "run" / "best.pt"), "epochs": 1, "lr": 0.0,
              "run_dir": str(tmp_path / "run2"), "out": str(tmp_path / "model2")}
    path2 = train_detector(stage2, "tiny-stage2.yaml")
    assert json.loads(path2.with_suffix(".json").read_text())["training"]["init_from"] == stage2["init_from"]
    stage2_network = build_detector(config["network"])
    load_detector_weights(stage2_network, torch.load(tmp_path / "run2" / "best.pt", weights_only=False)["network"])
    first = dict(network.state_dict())
    assert all(torch.equal(first[k], v) for k, v in stage2_network.state_dict().items() if "running" not in k and "num_batches" not in k)


def test_an_ensemble_of_detectors_trains_its_members_and_exports_their_average_as_one_file(tmp_path):
    synth_pages.write_yolo_split(tmp_path / "train", 6, (192, 192), seed=1)
    synth_pages.write_yolo_split(tmp_path / "valid", 3, (192, 192), seed=2)
    data = {"train": str(tmp_path / "train"), "valid": str(tmp_path / "valid")}
    member_paths = []
    for frozen in (1, 5):
        member = {"name": f"member-{frozen}", "description": "test", "seed": frozen, "network": {"taps": [2, 4, 10], "width": 16, "frozen_blocks": frozen},
                  "input": {"size": 128}, "data": data, "batch": 3, "epochs": 1, "lr": 0.001, "warmup": 1,
                  "run_dir": str(tmp_path / f"run-{frozen}"), "out": str(tmp_path / f"run-{frozen}")}
        member_paths.append(str(tmp_path / f"member-{frozen}.yaml"))
        Path(member_paths[-1]).write_text(yaml.safe_dump(member))
    config = {"name": "tiny-ensemble", "description": "test", "members": member_paths, "input": {"size": 128}, "data": data,
              "run_dir": str(tmp_path / "run"), "out": str(tmp_path / "model")}
    path = train_detector(config, "ensemble.yaml")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["network"] == {"members": [{"taps": [2, 4, 10], "width": 16, "frozen_blocks": f} for f in (1, 5)]} and card["stride"] == 4
    assert [m["config"] for m in card["training"]["members"]] == member_paths and card["valid"]["n_images"] == 3
    # the file computes the members' mean centre probability and the geometric mean of their side distances
    valid = load_page_set(data["valid"], 128)
    x = torch.from_numpy(valid.images).float().div(255.0)[:, None]
    heat, distances = [], []
    for frozen in (1, 5):
        network = build_detector({"taps": [2, 4, 10], "width": 16, "frozen_blocks": frozen})
        network.load_state_dict(torch.load(tmp_path / f"run-{frozen}" / "best.pt", weights_only=False)["network"])
        with torch.no_grad():
            logits, d = network.eval()(x)
        heat.append(torch.sigmoid(logits).numpy())
        distances.append(np.log(d.numpy()))
    heat_onnx, distances_onnx = Detector(str(path)).session.run(None, {"page": x.numpy()})
    assert np.abs(heat_onnx - np.mean(heat, axis=0)).max() < 1e-4
    assert np.abs(distances_onnx - np.exp(np.mean(distances, axis=0))).max() < 1e-2
