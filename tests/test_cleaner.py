"""The cleaner: the clutter generator, the shipped model, the switches, and a tiny training run."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import signver
from signver import overlays, synth
from signver.cleaner import Cleaner, for_embedding, get_cleaner
from signver.cli import app
from signver.errors import InputError
from signver.evaluation.cleaning import ink, ink_scores, psnr, restoration_scores, ssim
from signver.extractor import get_extractor

from .conftest import shared_dataset

runner = CliRunner()


@pytest.fixture(scope="module")
def cluttered():
    """A synthetic signature with printed text, a rule and a stamp drawn over it."""
    return overlays.clutter(synth.genuine(3, 0), 5, elements={"text": 1.0, "rule": 1.0, "stamp": 1.0}, degrade_image=False)


# -- the overlay generator -----------------------------------------------------------------


def test_clutter_adds_ink_and_keeps_the_target():
    signature = synth.genuine(7, 1)
    pair = overlays.clutter(signature, 3)
    assert pair.image.shape == pair.target.shape and pair.image.dtype == pair.target.dtype == np.uint8
    assert pair.elements
    clean = overlays.whiten(signature)
    # the target is the whitened signature itself, placed somewhere on white paper
    found = cv2.matchTemplate(pair.target, clean, cv2.TM_SQDIFF)
    assert found.min() == 0
    assert np.count_nonzero(ink(pair.image) & ~pair.ink) > 0.05 * np.count_nonzero(pair.ink)  # clutter was drawn


def test_clutter_is_deterministic_and_varied():
    signature = synth.genuine(2, 0)
    first, again = overlays.clutter(signature, 11), overlays.clutter(signature, 11)
    assert np.array_equal(first.image, again.image) and first.elements == again.elements
    kinds = {e for seed in range(30) for e in overlays.clutter(signature, seed).elements}
    assert kinds >= {"text", "rule", "stamp", "box", "speckle"}


def test_clutter_names_an_unknown_element():
    with pytest.raises(ValueError, match=r"\['stamps'\]"):
        overlays.clutter(synth.genuine(1, 0), 0, elements={"stamps": 1.0})


def test_clutter_is_the_same_in_every_process():
    """Font files of one name in two packages (fonts-liberation and fonts-liberation2) once took
    the order of a set, which Python's string hashing changes from process to process."""
    script = ("import hashlib, numpy as np; from signver import overlays, synth; "
              "print(hashlib.md5(b''.join(overlays.clutter(synth.genuine(s, 0), s, fonts=f).image.tobytes() "
              "for s in range(6) for f in ('train', 'test'))).hexdigest())")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1


def test_scan_damage_fades_the_ink_of_the_share_of_crops_it_is_told():
    grey = np.full((40, 120), 255, np.uint8)
    grey[15:25, 10:110] = 128  # grey ink, darkness 0.5
    nothing_else = 0.0  # strength 0: no paper tone, blur, noise, binarisation or JPEG, only the ink's fading
    faded = [overlays.degrade(grey, np.random.default_rng(seed), nothing_else)[20, 60] for seed in range(40)]
    assert all(pixel > 128 for pixel in faded)  # by default every crop's ink fades
    kept = [overlays.degrade(grey, np.random.default_rng(seed), nothing_else, fade_probability=0.5)[20, 60] for seed in range(40)]
    assert 10 <= sum(pixel == 128 for pixel in kept) <= 30 and any(pixel > 128 for pixel in kept)
    assert all(overlays.degrade(grey, np.random.default_rng(seed), nothing_else, fade_probability=0.0)[20, 60] == 128 for seed in range(5))
    used, expected = np.random.default_rng(9), np.random.default_rng(9)
    overlays.degrade(grey, used, nothing_else)  # every crop fades: the draws the benchmark's overlays were made with
    expected.random(), expected.normal(), expected.normal(), expected.uniform(0.75, 1.0), expected.random(6)
    assert used.random() == expected.random()


def test_fonts_held_out_are_not_trained_on():
    train, test = set(overlays.font_files("train")), set(overlays.font_files("test"))
    assert not train & test
    assert overlays._font(None, 14).getbbox("Sincerely")  # PIL's own font when a system has none
    with pytest.raises(ValueError):
        overlays.font_files("validation")


def test_clutter_survives_tiny_and_blank_crops():
    for shape in [(10, 12), (24, 60)]:
        pair = overlays.clutter(np.full(shape, 255, np.uint8), 1, strength=1.5)
        assert pair.image.shape == pair.target.shape


# -- measures ------------------------------------------------------------------------------


def test_restoration_measures():
    target = overlays.whiten(synth.genuine(1, 0))
    perfect = restoration_scores(target, target)
    assert perfect["psnr"] == 100 and perfect["ssim"] == pytest.approx(1) and perfect["ink_f"] == 1
    noisy = np.clip(target.astype(int) + np.random.default_rng(0).normal(0, 20, target.shape), 0, 255).astype(np.uint8)
    assert psnr(noisy, target) < 30 and ssim(noisy, target) < 0.9
    erased = np.full_like(target, 255)
    assert ink_scores(erased, target)["stroke_recall"] == 0


# -- the shipped cleaner -------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (40, 150), (301, 977), (900, 2600)])
def test_clean_keeps_size_and_type(shape):
    rng = np.random.default_rng(0)
    image = np.full(shape, 250, np.uint8)
    image[rng.random(shape) < 0.05] = 30
    out = signver.clean(image)
    assert out.shape == shape and out.dtype == np.uint8


@pytest.mark.parametrize("shape", [(1, 3_000_000), (3_000_000, 2)])
def test_a_sliver_is_refused_before_the_network_runs(shape):
    """A 1 x 40 million pixel image once took 7.7 GB: shrunk to the working area it is still
    one row, padded to 16 rows two million pixels long."""
    image = np.full(shape, 250, np.uint8)
    image.flat[::7] = 30
    with pytest.raises(InputError, match=re.escape(f"a {shape[1]} x {shape[0]} pixel image (width x height) is too thin to be a signature crop")):
        signver.clean(image)


def test_clean_accepts_every_input_kind(tmp_path, cluttered):
    path = tmp_path / "crop.png"
    Image.fromarray(cluttered.image).save(path)
    expected = signver.clean(cluttered.image)
    for source in (path, str(path), path.read_bytes(), io.BytesIO(path.read_bytes()), Image.open(path),
                   np.dstack([cluttered.image] * 3)):
        assert np.array_equal(signver.clean(source), expected)


def test_clean_removes_clutter_and_keeps_strokes(cluttered):
    out = signver.clean(cluttered.image)
    before, after = ink_scores(cluttered.image, cluttered.target), ink_scores(out, cluttered.target)
    assert after["ink_precision"] > before["ink_precision"] + 0.2
    assert after["stroke_recall"] > 0.9


def test_clean_signatures_keep_their_strokes():
    cleaner = Cleaner()
    cleaner.untouched_below = 0.0  # every crop through the keep map, none returned as it came
    recall = []
    for writer in range(20, 30):
        signature = synth.genuine(writer, 0)
        scores = ink_scores(cleaner.clean(signature), overlays.whiten(signature))
        recall.append(scores["stroke_recall"])
        assert scores["ink_precision"] > 0.9
    assert np.mean(recall) > 0.95 and min(recall) > 0.85  # measured: mean 0.98, lowest 0.91


def test_the_shipped_cleaner_returns_clean_signatures_as_they_came():
    for writer in range(30, 36):
        signature = synth.genuine(writer, 0)
        assert np.array_equal(signver.clean(signature), signature)


def test_cleaner_refuses_other_models():
    with pytest.raises(signver.SignverError):
        Cleaner("lite0-ms-long")
    assert get_cleaner().card.kind == "cleaner"


def test_embedding_never_gets_a_blank_crop():
    page = np.full((60, 200), 255, np.uint8)
    cv2.putText(page, "PRINTED TEXT ONLY", (5, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, 0, 2)
    prepared = for_embedding(page)
    assert np.count_nonzero(prepared < 128) > 20  # cleaned, or the crop itself if nothing was left


# -- the switches --------------------------------------------------------------------------


def test_clean_switch_in_the_api(cluttered):
    reference = synth.genuine(3, 1)
    on, off = signver.verify(reference, cluttered.image, clean=True), signver.verify(reference, cluttered.image, clean=False)
    assert on.distance != pytest.approx(off.distance, abs=1e-6)
    extractor = get_extractor()
    assert np.allclose(signver.embed(cluttered.image, clean=False), extractor.embed([cluttered.image], clean=False)[0])
    assert np.allclose(signver.embed(cluttered.image, clean=True), extractor.embed([signver.clean(cluttered.image)], clean=False)[0], atol=1e-5)
    assert on.distance < off.distance  # the clutter, once removed, no longer pulls the pair apart


def test_clean_switch_in_the_gallery(tmp_path, cluttered):
    from signver.gallery import Gallery

    with Gallery(tmp_path / "g.sqlite") as gallery:
        gallery.enroll("ann", [synth.genuine(3, k) for k in range(1, 4)])
        on = gallery.verify_claim("ann", cluttered.image, clean=True)
        off = gallery.verify_claim("ann", cluttered.image, clean=False)
        assert on.distance < off.distance
        assert gallery.identify(cluttered.image, 1, clean=True)[0].distance == pytest.approx(on.distance, abs=1e-5)


def test_cli_switches(tmp_path, cluttered):
    reference, questioned = tmp_path / "ref.png", tmp_path / "q.png"
    Image.fromarray(synth.genuine(3, 1)).save(reference)
    Image.fromarray(cluttered.image).save(questioned)
    distances = {}
    for flag in ("--clean", "--no-clean"):
        result = runner.invoke(app, ["verify", str(reference), str(questioned), "--json", "--threshold", "2", flag])
        assert result.exit_code == 0, result.output
        distances[flag] = float(result.output.split('"distance": ')[1].split(",")[0])
    assert distances["--clean"] < distances["--no-clean"]
    gallery = tmp_path / "g.sqlite"
    assert runner.invoke(app, ["enroll", "ann", str(reference), "--gallery", str(gallery)]).exit_code == 0
    for command in (["check", "ann"], ["identify"]):
        for flag in ("--clean", "--no-clean"):
            result = runner.invoke(app, [*command, str(questioned), "--gallery", str(gallery), flag])
            assert result.exit_code in (0, 1), result.output


def test_evaluate_records_the_switch(tmp_path, synthetic_dataset):
    from signver.evaluation import evaluate

    metrics = evaluate(synthetic_dataset, tmp_path / "off", "p1", test_writers="1,2,3", clean=False)
    assert metrics["cleaned"] is False
    result = runner.invoke(app, ["evaluate", str(synthetic_dataset), "--test-writers", "1,2", "--out", str(tmp_path / "on"), "--clean"])
    assert result.exit_code == 0, result.output
    assert '"cleaned": true' in (tmp_path / "on" / "metrics.json").read_text()


def test_cli_clean_writes_files_and_bad_input_exits_2(tmp_path, cluttered):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(cluttered.image).save(folder / "a.png")
    Image.fromarray(synth.genuine(1, 0)).save(folder / "b.jpg")
    out = tmp_path / "out"
    result = runner.invoke(app, ["clean", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert cv2.imread(str(out / "a.png"), cv2.IMREAD_GRAYSCALE).shape == cluttered.image.shape
    assert len([line for line in result.output.splitlines() if "\t" in line]) == 2  # one line per file
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    result = runner.invoke(app, ["clean", str(bad), str(folder / "a.png"), "--out", str(tmp_path / "out2")])
    assert result.exit_code == 2 and (tmp_path / "out2" / "a.png").is_file()
    assert runner.invoke(app, ["clean", str(tmp_path / "missing.png"), "--out", str(out)]).exit_code == 2
    assert runner.invoke(app, ["clean", str(bad), "--out", str(out), "--model", "no-such-model"]).exit_code == 2


def test_cli_clean_never_overwrites_its_inputs(tmp_path, cluttered):
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(cluttered.image).save(folder / "a.png")
    before = (folder / "a.png").read_bytes()
    result = runner.invoke(app, ["clean", str(folder), "--out", str(folder)])
    assert result.exit_code == 2 and "never go into an input's folder" in result.output
    assert (folder / "a.png").read_bytes() == before
    (tmp_path / "a-file").write_text("x")
    assert runner.invoke(app, ["clean", str(folder), "--out", str(tmp_path / "a-file")]).exit_code == 2
    links = tmp_path / "links"
    links.mkdir()
    (links / "a.png").symlink_to(folder / "a.png")
    assert runner.invoke(app, ["clean", str(links), "--out", str(links)]).exit_code == 2
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.png").symlink_to(folder / "a.png")  # an output name that leads to an original
    assert runner.invoke(app, ["clean", str(folder / "a.png"), "--out", str(out)]).exit_code == 2
    assert (folder / "a.png").read_bytes() == before


def test_cli_clean_takes_any_file_name(tmp_path):
    """A name that is not valid UTF-8 (as from an old archive) is read, written and printed."""
    odd = Path(os.fsdecode(bytes(tmp_path / "odd") + b"_\xff.png"))
    Image.fromarray(synth.genuine(1, 0)).save(odd)
    result = runner.invoke(app, ["clean", str(odd), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == [odd.stem + ".png"]


def test_cleaning_never_imports_torch():
    code = "import sys, signver; from signver import synth; signver.clean(synth.genuine(1, 0)); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


# -- training ------------------------------------------------------------------------------


def tiny_config(tmp_path: Path, **changes) -> dict:
    """A training config small enough to run in a test: procedural signatures, a few steps."""
    return {"name": "tiny-cleaner", "description": "test", "data": [], "network": {"channels": [4, 8, 8, 16]},
            "patch": {"height": 32, "width": 64}, "batch": 2, "steps": 2, "eval_every": 1, "validation_pairs": 2,
            "lr": 0.001, "workers": 0, "max_pixels": 4096, "out": str(tmp_path / "models"), "run_dir": str(tmp_path / "run"), **changes}


def torch_and_onnx_outputs(cleaner: Cleaner, checkpoint: Path, network_config: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the run's chosen torch network computes on `x`, and what its exported ONNX does."""
    import torch
    from signver.training.cleaner import InkProbability, build_cleaner_network

    network = build_cleaner_network(network_config)
    network.load_state_dict(torch.load(checkpoint, weights_only=False)["network"])
    with torch.no_grad():
        expected = InkProbability(network.eval())(torch.from_numpy(x)).numpy()
    (got,) = cleaner.session.run(None, {cleaner.input_name: x})
    return expected, got


def test_tiny_training_run_resumes_and_exports_what_torch_computes(tmp_path):
    torch = pytest.importorskip("torch")
    from signver.training.cleaner import ink_of, make_pair, train_cleaner

    config = tiny_config(tmp_path)
    dirty, target = make_pair(synth.genuine(1, 0), np.random.default_rng(0), config)
    assert dirty.shape == target.shape and dirty.size <= 4096 * 1.01 and target.dtype == np.uint8 and ink_of(target).any()
    train_cleaner(config, "tiny.yaml")
    path = train_cleaner({**config, "steps": 3}, "tiny.yaml")  # resumes from step 2
    log = (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in log] == [1, 2, 3]
    cleaner = Cleaner(str(path))
    assert cleaner.card.kind == "cleaner" and cleaner.card.details["training_command"] == "signver train cleaner --config tiny.yaml"
    assert cleaner.card.details["trained_on"]["element_probabilities"] == {}  # signver.overlays' own mix
    x = np.random.default_rng(1).random((1, 1, 48, 80)).astype(np.float32)
    expected, got = torch_and_onnx_outputs(cleaner, tmp_path / "run" / "best.pt", config["network"], x)
    assert np.allclose(got, expected, atol=1e-4)
    assert cleaner.clean(dirty).shape == dirty.shape
    # a new run can start from another run's chosen network (fine-tuning) and says so in its card
    tuned = train_cleaner({**config, "name": "tuned", "init": str(tmp_path / "run" / "best.pt"), "run_dir": str(tmp_path / "tuned"),
                           "steps": 1}, "tuned.yaml")
    assert Cleaner(str(tuned)).card.details["trained_on"]["init"] == str(tmp_path / "run" / "best.pt")
    with pytest.raises(signver.SignverError, match="missing.pt is not a file here; train the run"):
        train_cleaner({**config, "init": str(tmp_path / "missing.pt"), "run_dir": str(tmp_path / "other")}, "tuned.yaml")
    first = torch.load(tmp_path / "tuned" / "best.pt", weights_only=False)["network"]
    chosen = torch.load(tmp_path / "run" / "best.pt", weights_only=False)["network"]
    assert any(not torch.equal(first[k], v) for k, v in chosen.items())  # trained on from there


def test_a_cleaner_on_the_imagenet_encoder_trains_with_near_clutter_dearer_and_exports_what_torch_computes(tmp_path):
    pytest.importorskip("torch")
    from signver.training.cleaner import train_cleaner

    network = {"kind": "lite0", "width": 8, "frozen_blocks": 5, "pretrained": False}
    path = train_cleaner(tiny_config(tmp_path, network=network, loss={"near_clutter": 4.0}), "tiny.yaml")
    cleaner = Cleaner(str(path))
    assert cleaner.card.details["network"]["kind"] == "lite0" and cleaner.card.details["training"]["loss"] == {"near_clutter": 4.0}
    x = np.random.default_rng(2).random((1, 1, 48, 80)).astype(np.float32)
    expected, got = torch_and_onnx_outputs(cleaner, tmp_path / "run" / "best.pt", network, x)
    assert got.shape == (1, 1, 48, 80) and np.allclose(got, expected, atol=1e-4)
    crop = synth.genuine(4, 0)[:61, :97]  # sides that are not multiples of 16
    assert cleaner.clean(crop).shape == crop.shape


@pytest.mark.parametrize("network, message", [({"kind": "vit"}, "network.kind"), ({"kind": "lite0", "channels": [4, 8]}, "do not apply"),
                                              ({"kind": "lite0", "frozen_blocks": -1}, "frozen_blocks"),
                                              ({"kind": "lite0", "frozen_blocks": 12}, "frozen_blocks")])
def test_training_refuses_a_network_it_cannot_build(network, message):
    pytest.importorskip("torch")
    from signver.training.cleaner import build_cleaner_network

    with pytest.raises(signver.SignverError, match=message):
        build_cleaner_network({**network, "pretrained": False})


def test_the_imagenet_encoder_keeps_its_frozen_weights_while_the_rest_learns():
    torch = pytest.importorskip("torch")
    from signver.training.cleaner_lite0 import Lite0Cleaner

    network = Lite0Cleaner(8, 5, pretrained=False)
    frozen = {k: v.clone() for k, v in network.frozen.state_dict().items()}
    head = network.head.weight.clone()
    network.train()
    optimizer = torch.optim.AdamW([p for p in network.parameters() if p.requires_grad], 0.01)
    network(torch.rand(2, 1, 32, 64)).mean().backward()
    optimizer.step()
    assert all(torch.equal(v, network.frozen.state_dict()[k]) for k, v in frozen.items())  # batch-norm statistics too
    assert not torch.equal(head, network.head.weight)


def test_a_lite0_cleaner_run_can_start_from_one_that_froze_other_blocks(tmp_path):
    pytest.importorskip("torch")
    from signver.training.cleaner import train_cleaner

    network = {"kind": "lite0", "width": 8, "frozen_blocks": 5, "pretrained": False}
    train_cleaner(tiny_config(tmp_path, network=network, steps=1), "tiny.yaml")
    tuned = train_cleaner(tiny_config(tmp_path, network={**network, "frozen_blocks": 2}, steps=1, name="tuned",
                                      init=str(tmp_path / "run" / "best.pt"), run_dir=str(tmp_path / "tuned")), "tuned.yaml")
    assert Cleaner(str(tuned)).card.details["network"]["frozen_blocks"] == 2


def test_a_run_with_a_crop_wide_tone_term_can_start_from_a_runs_checkpoint_without_one(tmp_path):
    pytest.importorskip("torch")
    from signver.training.cleaner import train_cleaner

    network = {"kind": "lite0", "width": 8, "frozen_blocks": 5, "pretrained": False, "tone": True}
    train_cleaner(tiny_config(tmp_path, network=network, steps=1), "tiny.yaml")
    widened = train_cleaner(tiny_config(tmp_path, network={**network, "tone_context": True}, steps=1, name="widened",
                                        init=str(tmp_path / "run" / "best.pt"), run_dir=str(tmp_path / "widened")), "widened.yaml")
    assert Cleaner(str(widened)).card.details["network"]["tone_context"] is True


def test_a_tone_head_learns_the_clean_inks_darkness_and_the_cleaner_draws_with_it(tmp_path):
    pytest.importorskip("torch")
    from signver.training.cleaner import train_cleaner

    config = tiny_config(tmp_path, name="tiny-plain", steps=1, run_dir=str(tmp_path / "plain"))
    train_cleaner(config, "plain.yaml")
    toned = {**config, "name": "tiny-tone", "network": {"channels": [4, 8, 8, 16], "tone": True}, "steps": 2,
             "run_dir": str(tmp_path / "tone"), "init": str(tmp_path / "plain" / "best.pt")}  # the tone head starts new
    cleaner = Cleaner(str(train_cleaner(toned, "tone.yaml")))
    assert "channel 2" in cleaner.card.details["output"] and "tone_error" in cleaner.card.details["validation"]
    x = np.random.default_rng(1).random((1, 1, 48, 80)).astype(np.float32)
    expected, got = torch_and_onnx_outputs(cleaner, tmp_path / "tone" / "best.pt", toned["network"], x)
    assert got.shape == (1, 2, 48, 80) and np.allclose(got, expected, atol=1e-4)
    gray = (255 * (1 - x[0, 0])).astype(np.uint8)  # small enough to be cleaned at its own size
    probability, tone, small, scale = cleaner._working_maps(gray)
    assert scale == 1 and small is gray and np.allclose(tone, got[0, 1], atol=1e-4)  # with no margin the ink is drawn in this tone
    drawn = (255 - cleaner.keep_map(probability) * 255 * np.clip(tone, 0, 1) + 0.5).astype(np.uint8)
    assert np.abs(cleaner.clean(gray).astype(int) - drawn).max() <= 1  # kept ink is drawn in the restored tone, not the input's
    big = cv2.resize(gray, (400, 240), interpolation=cv2.INTER_LINEAR)  # shrunk to work on: the correction is resized back
    assert cleaner.clean(big).shape == big.shape
    cleaner.tone_margin = 1.0  # no correction is that large: the ink keeps the crop's own tone
    plain = (255 - cleaner.keep_map(probability) * (255 - gray.astype(np.float32)) + 0.5).astype(np.uint8)
    assert np.abs(cleaner.clean(gray).astype(int) - plain).max() <= 1
    with pytest.raises(signver.SignverError, match="different network"):
        train_cleaner({**toned, "network": {"channels": [4, 8, 16, 16]}, "run_dir": str(tmp_path / "other")}, "other.yaml")


def test_a_lite0_cleaner_with_a_tone_head_fine_tunes_from_a_shipped_onnx_file(tmp_path):
    torch = pytest.importorskip("torch")
    from signver.training.cleaner import InkProbability, build_cleaner_network, train_cleaner
    from signver.training.onnx_init import fold_batch_norms

    network = {"kind": "lite0", "width": 8, "frozen_blocks": 3, "pretrained": False}
    base = Cleaner(str(train_cleaner(tiny_config(tmp_path, network=network, steps=1, name="base"), "base.yaml")))
    toned = {**network, "tone": True}
    config = tiny_config(tmp_path, network=toned, steps=2, name="toned", init=str(base.card.path), run_dir=str(tmp_path / "toned"))
    cleaner = Cleaner(str(train_cleaner(config, "toned.yaml")))
    x = np.random.default_rng(3).random((1, 1, 32, 64)).astype(np.float32)
    (got,) = cleaner.session.run(None, {cleaner.input_name: x})
    assert got.shape == (1, 2, 32, 64) and cleaner.card.details["trained_on"]["init"] == str(base.card.path)
    train_cleaner({**config, "steps": 3}, "toned.yaml")  # resumes its own folded checkpoint
    steps = [json.loads(line)["step"] for line in (tmp_path / "toned" / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]
    context = {**toned, "tone_context": True}  # a crop-wide term added to a file that has the tone head
    widened = train_cleaner({**config, "network": context, "init": str(cleaner.card.path), "name": "context",
                             "run_dir": str(tmp_path / "context")}, "context.yaml")
    run = fold_batch_norms(build_cleaner_network(context))  # the run went on from the file, batch norms folded
    run.load_state_dict(torch.load(tmp_path / "context" / "best.pt", weights_only=False)["network"])
    assert run.tone_context.weight.abs().sum() > 0  # it starts at zero and learns
    with torch.no_grad():
        expected = InkProbability(run.eval())(torch.from_numpy(x)).numpy()
    widened = Cleaner(str(widened))
    (got,) = widened.session.run(None, {widened.input_name: x})
    assert got.shape == (1, 2, 32, 64) and np.allclose(got, expected, atol=1e-4)
    again = train_cleaner({**config, "network": context, "init": str(widened.card.path), "name": "again", "steps": 1,
                           "run_dir": str(tmp_path / "again")}, "again.yaml")  # the file's crop-wide term (a Gemm) is taken too
    assert Cleaner(str(again)).card.details["trained_on"]["init"] == str(widened.card.path)
    with pytest.raises(signver.SignverError, match="tone_context needs network.tone"):
        train_cleaner({**config, "network": {**network, "tone_context": True}, "run_dir": str(tmp_path / "bad")}, "bad.yaml")
    with pytest.raises(signver.SignverError, match="different network"):
        train_cleaner({**config, "network": {**toned, "width": 16}, "run_dir": str(tmp_path / "other")}, "other.yaml")
    with pytest.raises(signver.SignverError, match="missing.onnx is not a file here; name a shipped cleaner's .onnx file"):
        train_cleaner({**config, "init": str(tmp_path / "missing.onnx"), "run_dir": str(tmp_path / "missing")}, "missing.yaml")


def test_paper_under_the_ink_is_divided_out_and_white_paper_changes_nothing():
    from signver.cleaner import ink_darkness, paper_level

    h, w = 96, 240
    u, v = (np.arange(w) + 0.5)[None, :] / w, (np.arange(h) + 0.5)[:, None] / h
    level = 200 + 30 * u - 20 * v  # grey, unevenly lit paper
    ink = np.zeros((h, w), bool)
    ink[40:50, 30:200] = True
    crop = np.where(ink, 0.5 * level, level).astype(np.uint8)  # ink half as bright as the paper under it
    paper = paper_level(crop, ink.astype(np.float32))
    a, b, c = paper.a, paper.b, paper.c
    assert abs(a - 200) < 2 and abs(b - 30) < 3 and abs(c + 20) < 3
    darkness = ink_darkness(crop, paper)
    assert np.abs(darkness[ink] - 0.5).max() < 0.02 and darkness[~ink].max() < 0.02
    thin = np.where(ink[36:52], 90, 180).astype(np.uint8)  # one row of cells: nothing says how the light changes downwards
    one_side = crop.copy()
    covered = np.ones((h, w), np.float32)
    covered[:, :16] = 0  # paper shows only at the left edge: the plane must not run off across the crop
    for image, keep in ((thin, ink[36:52].astype(np.float32)), (one_side, np.maximum(covered, ink))):
        darkness = ink_darkness(image, paper_level(image, keep))
        strokes = keep > 0.5 if image is thin else ink
        expected = 0.5 if image is thin else 1 - one_side[ink] / level[ink]
        # one side of paper cannot show the light's slope across the crop (about 0.06 unknowable here), but nothing runs off
        assert np.abs(darkness[strokes] - expected).max() < (0.03 if image is thin else 0.1)
    white = np.where(ink, 128, 255).astype(np.uint8)
    assert paper_level(white, ink.astype(np.float32)) is None
    assert paper_level(crop, np.ones((h, w), np.float32)) is None  # no paper shows
    assert np.array_equal(ink_darkness(white, None), 1 - white.astype(np.float32) / 255)


def test_the_cleaner_measures_kept_ink_against_the_paper_when_its_card_asks():
    cleaner = Cleaner("cleaner-lite0-latin-int8")  # no tone output: the kept ink's darkness is the crop's own
    assert not cleaner.paper and Cleaner().paper  # the default's card asks
    signature = overlays.whiten(synth.genuine(6, 0))
    plain = cleaner.clean(signature)
    cleaner.paper = True
    assert np.array_equal(cleaner.clean(signature), plain)  # white paper: nothing to divide out
    on_grey = (signature.astype(np.float32) * 0.8).astype(np.uint8)  # the same scan on paper at 80 % brightness
    relative = cleaner.clean(on_grey)
    cleaner.paper = False
    absolute = cleaner.clean(on_grey)
    strokes = ink(plain)
    assert np.abs(relative[strokes].astype(int) - plain[strokes]).mean() < 4  # the ink's own darkness, as on white paper
    assert (plain[strokes].astype(int) - absolute[strokes]).mean() > 8  # without: the paper's grey darkens every stroke
    cleaner.paper = True
    big = cv2.resize(on_grey, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)  # shrunk to work on, the plane drawn at full size
    big_plain = cv2.resize(plain, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    big_strokes = ink(big_plain) & (cleaner.clean(big) < 250)
    assert np.abs(cleaner.clean(big)[big_strokes].astype(int) - big_plain[big_strokes]).mean() < 6


def test_saturated_ink_is_told_from_grey_ink_by_its_pixels():
    from signver.cleaner import ink_darkness, saturated_ink

    grey = overlays.whiten(synth.genuine(4, 0))
    level = cv2.threshold(grey, 0, 255, cv2.THRESH_OTSU)[0]
    bitonal = np.where(grey > level, 255, 0).astype(np.uint8)
    compressed = cv2.imdecode(cv2.imencode(".jpg", bitonal, [cv2.IMWRITE_JPEG_QUALITY, 20])[1], cv2.IMREAD_GRAYSCALE)
    light = (255 - 0.5 * (255 - grey.astype(np.float32))).astype(np.uint8)  # the same pen, half as dark
    everything = np.ones(grey.shape, np.float32)
    found = {name: saturated_ink(ink_darkness(image, None), everything)
             for name, image in (("bitonal", bitonal), ("jpeg", compressed), ("light", light))}
    assert found == {"bitonal": True, "jpeg": True, "light": False}
    assert not saturated_ink(ink_darkness(bitonal, None), np.zeros(grey.shape, np.float32))  # nothing kept
    assert not saturated_ink(ink_darkness(np.full((20, 20), 255, np.uint8), None), np.ones((20, 20), np.float32))


def test_a_card_can_correct_saturated_ink_by_one_gain_and_leaves_grey_ink_to_the_shift():
    from signver.cleaner import ink_darkness, paper_level, tone_gain

    shift, gain = Cleaner("cleaner-lite0-tone-int8"), Cleaner("cleaner-lite0-tone-int8")  # its card: the shift for every crop
    gain.tone_gain_mode = "saturated"
    black = overlays.whiten(synth.genuine(5, 1))  # the synthetic pen is black
    grey = (255 - 0.5 * (255 - black.astype(np.float32))).astype(np.uint8)
    bitonal = np.where(black > cv2.threshold(black, 0, 255, cv2.THRESH_OTSU)[0], 255, 0).astype(np.uint8)
    assert np.array_equal(gain.clean(grey), shift.clean(grey))  # grey ink keeps the per-pixel shift, byte for byte

    def scaled_by_one_gain(image):
        """The crop's own ink darkness times the gain, drawn through the keep map at full size."""
        probability, tone, small, scale = gain._working_maps(image)
        keep = gain.keep_map(probability)
        paper = paper_level(small, keep)
        g = tone_gain(tone, ink_darkness(small, paper), keep)
        keep_full = cv2.resize(keep, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR) if scale < 1 else keep
        assert g != 1.0 and tone_gain(tone, ink_darkness(small, None), np.zeros_like(keep)) == 1.0  # nothing kept, nothing to scale
        return scale, (255 - keep_full * 255 * np.clip(ink_darkness(image, paper) * g, 0, 1) + 0.5).astype(np.uint8)

    scale, expected = scaled_by_one_gain(bitonal)
    assert scale == 1 and np.array_equal(gain.clean(bitonal), expected) and not np.array_equal(expected, shift.clean(bitonal))
    big = cv2.resize(bitonal, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST)  # worked on shrunk: keep map resized back
    scale, expected_big = scaled_by_one_gain(big)
    assert scale < 1 and np.array_equal(gain.clean(big), expected_big)
    every_crop = Cleaner("cleaner-lite0-tone-int8")
    every_crop.tone_gain_mode = "all"
    assert np.array_equal(every_crop.clean(bitonal), expected) and not np.array_equal(every_crop.clean(grey), shift.clean(grey))
    dark = np.full((4, 4), 0.21, np.float32)
    assert tone_gain(np.full((4, 4), 0.9, np.float32), dark, np.ones((4, 4), np.float32)) == 4.0  # held within TONE_GAIN_RANGE
    rim = dark.copy()
    rim[:, :2] = 0.01  # paper beside the strokes, kept by the keep map: its predicted darkness must not count
    predicted = np.where(rim > 0.1, 0.3, 0.08).astype(np.float32)
    assert tone_gain(predicted, rim, np.ones((4, 4), np.float32)) == pytest.approx(0.3 / 0.21)


def test_the_ink_a_keep_map_drops_is_measured_against_the_ink_it_keeps():
    from signver.cleaner import INK_FLOOR, dropped_ink_share

    darkness = np.array([[0.5, 0.5], [0.1, 0.4]], np.float32)  # 0.1 is below INK_FLOOR: paper, never counted
    assert dropped_ink_share(darkness, np.array([[1, 0], [0, 0.25]], np.float32)) == pytest.approx((0.5 + 0.3) / (0.5 + 0.1))
    assert dropped_ink_share(darkness, np.array([[1, 1], [0, 1]], np.float32)) == 0.0
    assert dropped_ink_share(darkness, np.zeros((2, 2), np.float32)) == np.inf  # ink, none of it kept
    assert dropped_ink_share(np.full((2, 2), 0.1, np.float32), np.zeros((2, 2), np.float32)) == np.inf  # nothing kept at all
    for dtype in (np.float32, np.float64):  # ink starts exactly at INK_FLOOR, in the darkness's own precision
        at, below = dtype(INK_FLOOR), np.nextafter(dtype(INK_FLOOR), dtype(0))
        darkness = np.array([[at, below], [0.5, 0.5]], dtype)
        assert dropped_ink_share(darkness, np.array([[0, 0], [1, 1]], np.float32)) == pytest.approx(float(at) / 1.0)


def test_a_card_can_leave_a_crop_with_nothing_to_remove_as_it_came(cluttered):
    plain, untouched = Cleaner(), Cleaner()
    plain.untouched_below, untouched.untouched_below = 0.0, 0.05
    for writer in range(20, 25):  # clean synthetic signatures: only paper is dropped
        signature = synth.genuine(writer, 0)
        assert np.array_equal(untouched.clean(signature), signature)
        assert not np.array_equal(plain.clean(signature), signature)
    assert np.array_equal(untouched.clean(cluttered.image), plain.clean(cluttered.image))  # print, a rule and a stamp to drop
    for paper in (np.full((40, 60), 210, np.uint8), np.full((40, 60), 255, np.uint8)):  # nothing kept: white, as without the gate
        assert np.array_equal(untouched.clean(paper), plain.clean(paper)) and (untouched.clean(paper) == 255).all()
    big = cv2.resize(overlays.whiten(synth.genuine(21, 0)), None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(untouched.clean(big), big)  # worked on shrunk, still nothing to remove
    ruled = big.copy()
    ruled[-15:-12, :] = 120  # a 1-px rule drawn 3 times larger: faint once shrunk to work on, still counted
    untouched.untouched_below = 0.02
    cleaned = untouched.clean(ruled)
    assert np.array_equal(cleaned, plain.clean(ruled)) and (cleaned[-14] > 200).mean() > 0.9


def test_kept_strokes_count_their_rim_for_the_gate_and_the_paper_even_where_the_output_leaves_it(cluttered):
    from signver.cleaner import widened

    grown, tight, rimless = Cleaner(), Cleaner(), Cleaner()
    for cleaner, grow, rim in ((grown, 1, 1), (tight, 0, 1), (rimless, 0, 0)):
        cleaner.grow, cleaner.rim, cleaner.untouched_below = grow, rim, 0.02
    dot = np.zeros((5, 5), np.float32)
    dot[2, 2] = 0.7
    assert np.array_equal(widened(dot, 1) > 0, np.pad(np.ones((3, 3), bool), 1)) and widened(dot, 0) is dot
    for writer in range(20, 24):  # clean signatures with soft edges, as a scanner blurs them
        signature = cv2.GaussianBlur(synth.genuine(writer, 0), (0, 0), 1.2)
        assert np.array_equal(tight.clean(signature), signature)
        assert not np.array_equal(rimless.clean(signature), signature)  # its edges counted as ink dropped
    kept_grown, kept_tight = (cleaner.clean(cluttered.image) for cleaner in (grown, tight))
    assert np.array_equal(kept_tight, rimless.clean(cluttered.image))  # white paper: the rim changes nothing else
    assert (kept_tight < 250).sum() < (kept_grown < 250).sum()  # less kept beside the strokes
    assert ink_scores(kept_tight, cluttered.target)["stroke_recall"] > 0.9
    tight.untouched_below = rimless.untouched_below = 0.0  # both clean; only the paper they measure differs
    grey = (0.8 * cv2.GaussianBlur(synth.genuine(20, 0), (0, 0), 1.2)).astype(np.uint8)  # soft strokes on grey paper
    assert tight.paper and not np.array_equal(tight.clean(grey), rimless.clean(grey))


@pytest.mark.parametrize("key, value, message", [
    ("tone_gain", "sometimes", "mask.tone_gain must be one of none, saturated, all, not 'sometimes'"),
    ("untouched_below", -0.1, "mask.untouched_below must be a share of at least 0, not -0.1"),
    ("rim", -1, "mask.rim must be a number of pixels of at least 0, not -1")])
def test_a_card_with_a_bad_mask_setting_is_refused(tmp_path, key, value, message):
    default = Cleaner().card
    card = json.loads(default.path.with_suffix(".json").read_text())
    card["mask"][key] = value
    (tmp_path / "odd.json").write_text(json.dumps({**card, "name": "odd"}))
    (tmp_path / "odd.onnx").write_bytes(default.path.read_bytes())
    with pytest.raises(signver.SignverError, match=message):
        Cleaner(str(tmp_path / "odd.json"))


def test_clutter_touching_the_signature_can_be_made_dearer_in_the_loss():
    import torch

    from signver.training.cleaner import HALO_PIXELS, NEAR_PIXELS, ink_loss, near_clutter_weights

    target = torch.zeros(1, 1, 40, 40)
    target[0, 0, 20, 5:30] = 1  # a stroke
    dirty = target.clone()
    dirty[0, 0, 10:31, 15] = 0.8  # a rule crossing it
    dirty[0, 0, 2, 38] = 0.9  # a speck far from it
    dirty[0, 0, 22, 0:3] = 0.2  # grey paper beside it
    weights = near_clutter_weights(dirty, target, 4.0)
    crossing = [row for row in range(10, 31) if HALO_PIXELS < abs(row - 20) <= NEAR_PIXELS]  # beyond the stroke's own halo
    assert (weights[0, 0, crossing, 15] == 4).all() and int((weights == 4).sum()) == len(crossing)
    assert weights[0, 0, 20, 15] == 1 and weights[0, 0, 2, 38] == 1 and (weights[0, 0, 22, 0:3] == 1).all()
    assert weights[0, 0, 21, 15] == 1  # the rule right beside the stroke: its halo, as a clean scan's blur would make it
    logits = torch.full((1, 1, 40, 40), 2.0)  # says ink everywhere: the crossing rule now costs more
    assert ink_loss(logits, target, weights=weights) > ink_loss(logits, target)
    assert ink_loss(logits, target, weights=torch.ones_like(target)) == pytest.approx(float(ink_loss(logits, target)))


def test_training_refuses_a_negative_clutter_weight_before_loading_data(tmp_path):
    pytest.importorskip("torch")
    from signver.training.cleaner import train_cleaner

    with pytest.raises(signver.SignverError, match="loss.near_clutter must be a weight of at least 0, not -1.0"):
        train_cleaner(tiny_config(tmp_path, loss={"near_clutter": -1}), "tiny.yaml")
    assert not (tmp_path / "run").exists()


def test_training_refuses_a_machine_with_too_few_fonts(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from signver.training.cleaner import train_cleaner

    monkeypatch.setattr(overlays, "font_files", lambda subset="train": ())
    with pytest.raises(signver.SignverError, match="needs at least 96 fonts.*has 0.*fonts-dejavu"):
        train_cleaner({"name": "wants-fonts", "min_fonts": 96, "run_dir": str(tmp_path / "run")}, "fonts.yaml")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_training_pairs_take_the_configs_clutter_mix(monkeypatch):
    pytest.importorskip("torch")
    from signver.training.cleaner import make_pair

    drawn, real = [], overlays.clutter
    monkeypatch.setattr(overlays, "clutter", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    only_stamps = {name: 0.0 for name in overlays._ELEMENT_P} | {"stamp": 1.0}
    for seed in range(4):
        make_pair(synth.genuine(1, 0), np.random.default_rng(seed), {"max_pixels": 4096, "clean_fraction": 0.0, "elements": only_stamps})
    assert len(drawn) == 4 and all(set(pair.elements) == {"stamp"} for pair in drawn)


def test_training_pairs_take_the_configs_share_of_faded_ink(monkeypatch):
    pytest.importorskip("torch")
    from signver.training.cleaner import make_pair

    asked = []
    monkeypatch.setattr(overlays, "degrade", lambda image, rng, strength=1.0, fade_probability=1.0: asked.append(fade_probability) or image)
    for clean_fraction in (1.0, 0.0):  # clean crops (damaged 60 % of the time), then cluttered ones
        for seed in range(4):
            make_pair(synth.genuine(1, 0), np.random.default_rng(seed), {"max_pixels": 4096, "clean_fraction": clean_fraction,
                                                                         "fade_probability": 0.3})
        assert asked and set(asked) == {0.3}
        asked.clear()
    make_pair(synth.genuine(1, 0), np.random.default_rng(0), {"max_pixels": 4096, "clean_fraction": 0.0})
    assert asked == [1.0]  # the default: every crop's ink fades


def test_data_sources_can_be_drawn_more_often_than_their_count(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import signver.training.cleaner as training

    small = synth.write_dataset(tmp_path / "small", n_writers=2, n_genuine=3, n_forged=1, seed=1)  # 8 images
    large = synth.write_dataset(tmp_path / "large", n_writers=4, n_genuine=3, n_forged=1, seed=2)  # 16 images
    assert training.sampling_weights([{"path": str(small)}, {"path": str(large)}], 24) is None  # by count, as before
    weights = training.sampling_weights([{"path": str(small), "weight": 4}, {"path": str(large)}], 24)
    assert np.isclose(weights[:8].sum(), 2 / 3) and np.isclose(weights[8:].sum(), 1 / 3) and np.isclose(weights.sum(), 1)
    with pytest.raises(signver.SignverError, match="delete .*train.npz"):
        training.sampling_weights([{"path": str(small), "weight": 4}, {"path": str(large)}], 23, tmp_path / "run" / "train.npz")
    for weight in (-1, "3", None):
        with pytest.raises(signver.SignverError, match="the weight of .*small"):
            training.sampling_weights([{"path": str(small), "weight": weight}, {"path": str(large)}], 24)
    with pytest.raises(signver.SignverError, match="nothing to draw"):
        training.sampling_weights([{"path": str(small), "weight": 0}, {"path": str(large), "weight": 0}], 24)
    # a source weighted 0 is never drawn
    sources = [{"path": str(small), "weight": 0}, {"path": str(large)}]
    images = training.load_clean_signatures(sources, "train")
    index, drawn, make_pair = {id(image): i for i, image in enumerate(images)}, [], training.make_pair
    monkeypatch.setattr(training, "make_pair", lambda signature, *a, **k: drawn.append(index[id(signature)]) or make_pair(signature, *a, **k))
    settings = {"patch": {"height": 16, "width": 16}, "batch": 1, "synthetic_fraction": 0.0, "clean_fraction": 1.0, "max_pixels": 4096}
    batches = iter(training.PairStream(images, settings, 0, training.sampling_weights(sources, len(images))))
    for _ in range(30):
        next(batches)
    assert len(drawn) == 30 and min(drawn) >= 8
    monkeypatch.undo()
    config = tiny_config(tmp_path, data=[{"path": str(small), "weight": 3}, {"path": str(large)}], steps=1)
    card = Cleaner(str(training.train_cleaner(config, "weighted.yaml"))).card.details
    assert card["trained_on"]["signatures"][0]["weight"] == 3
    with pytest.raises(signver.SignverError, match="the weight of"):  # refused before any image is read
        training.train_cleaner(tiny_config(tmp_path, data=[{"path": str(tmp_path / "absent"), "weight": "3"}], run_dir=str(tmp_path / "bad")), "bad.yaml")


def test_flourish_strokes_sweep_under_the_signature_from_its_ink():
    from signver.training.cleaner import add_hand_stroke

    for seed in range(6):
        signature = overlays.whiten(synth.genuine(30 + seed, 0))
        ink = signature < 128
        stroked = add_hand_stroke(signature, np.random.default_rng(seed), flourish=1.0)
        added = (stroked < 128) & ~ink
        ys, xs = np.nonzero(ink)
        added_ys, added_xs = np.nonzero(added)
        assert added_xs.max() - added_xs.min() >= 0.5 * (xs.max() - xs.min())  # a long sweep...
        assert added_ys.max() > (ys.min() + ys.max()) / 2  # ...through the lower part of the ink or under it...
        touching = cv2.dilate(added.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ink
        assert touching.any()  # ...drawn out of it
        assert np.all(stroked <= overlays.whiten(signature))  # ink is only added
    plain = add_hand_stroke(synth.genuine(30, 0), np.random.default_rng(0))
    assert np.array_equal(plain, add_hand_stroke(synth.genuine(30, 0), np.random.default_rng(0), flourish=0.0))


# -- real data (skipped when ../shared/data is absent) ------------------------------------


@pytest.mark.data
def test_clean_real_signatures_keep_their_strokes():
    from signver.datasets import read_dataset

    dataset = read_dataset(shared_dataset("cedar"))
    for writer in ("2", "7"):  # test writers: measured, never trained on
        for signature in dataset.genuine(writer)[:2]:
            image = signver.load_image(signature.path)
            assert ink_scores(signver.clean(image), overlays.whiten(image))["stroke_recall"] > 0.95


@pytest.mark.data
def test_clean_real_document_crops():
    folder = shared_dataset("signature-detection") / "valid"
    label = next(p for p in sorted((folder / "labels").glob("*.txt")) if p.read_text().strip())
    page = signver.load_image(next((folder / "images").glob(label.stem + ".*")))
    _, cx, cy, w, h = map(float, label.read_text().split()[:5])
    H, W = page.shape
    crop = page[int((cy - h / 2) * H) : int((cy + h / 2) * H) + 1, int((cx - w / 2) * W) : int((cx + w / 2) * W) + 1]
    out = signver.clean(crop)
    assert out.shape == crop.shape and np.count_nonzero(out < 128) > 0
