import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import signver
from signver import synth
from signver.cli import app
from signver.errors import BlankImageError, InputError
from signver.models import DEFAULT_EXTRACTOR
from signver.normalize import normalize

runner = CliRunner()


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pair")
    for name, image in (("a.png", synth.genuine(4, 0)), ("b.png", synth.genuine(4, 1))):
        Image.fromarray(image).save(folder / name)
    (folder / "empty.png").write_bytes(b"")
    return folder / "a.png", folder / "b.png", folder / "empty.png"


def test_embed_is_unit_length():
    one = signver.embed(synth.genuine(1, 0))
    many = signver.embed([synth.genuine(1, 0), synth.genuine(2, 0)])
    assert one.ndim == 1 and many.shape == (2, len(one))
    assert np.allclose(np.linalg.norm(many, axis=1), 1, atol=1e-5)
    assert np.allclose(one, many[0], atol=1e-5)


def test_embed_in_batches_keeps_order_and_errors():
    """Vectors come back in input order, equal to embedding each image alone, whatever the
    batching; a bad image in a later batch raises."""
    from signver.extractor import get_extractor

    extractor = get_extractor()
    images = [synth.genuine(writer, k) for writer in (1, 2, 3) for k in (0, 1)]
    batched = extractor.embed(images, batch_size=2)
    alone = np.stack([extractor.embed([image])[0] for image in images])
    assert np.allclose(batched, alone, atol=1e-5)
    done = []
    extractor.embed(images, batch_size=4, progress=done.append)
    assert done == [4, 2]
    with pytest.raises(BlankImageError, match="^image 5 of 5: blank image"):  # which of many arrays, as for files their names
        extractor.embed(images[:4] + [np.full((50, 80), 255, np.uint8)], batch_size=2)
    with pytest.raises(InputError, match="^image 2 of 2: not an image"):
        extractor.embed([images[0], b"not an image"])
    with pytest.raises(BlankImageError, match="^image 3 of 3: "):  # counted among embeddings too
        extractor.vectors([batched[0], images[0], np.full((50, 80), 255, np.uint8)])
    normalized = [normalize(image, extractor.card.input_size) for image in images]
    assert np.allclose(extractor.embed_normalized(normalized, batch_size=4), alone, atol=1e-5)  # batches of 4 and 2
    assert extractor.embed_normalized([]).shape == (0, extractor.dimension)


def test_worker_threads_give_the_same_vectors_and_raise_bad_input(monkeypatch):
    """Many images are shared out over worker threads (forced here, whatever the machine's cores):
    the vectors equal embedding each image alone, in order, and a bad image raises from a worker."""
    import signver.extractor as extractor_module
    from signver.extractor import get_extractor

    monkeypatch.setattr(extractor_module, "WORKERS", 2)
    extractor = get_extractor()
    images = [synth.genuine(writer, k) for writer in (1, 2, 3, 4) for k in (0, 1)]
    alone = np.stack([extractor.embed([image])[0] for image in images])
    assert np.allclose(extractor.embed(images, batch_size=8), alone, atol=1e-5)  # four network batches over two threads
    with pytest.raises(BlankImageError, match="^image 6 of 6: "):
        extractor.embed(images[:5] + [np.full((50, 80), 255, np.uint8)], batch_size=8)


def test_threads_loading_a_model_at_once_share_one_session():
    """The first calls from several threads (a service's workers, a caller's pool) make one
    extractor and one onnxruntime session between them, not one each."""
    import threading

    from signver.extractor import get_extractor
    from signver.models import inference_session, load_card

    get_extractor.cache_clear()
    inference_session.cache_clear()
    start, made = threading.Barrier(4), []

    def load():
        start.wait()
        extractor = get_extractor()
        made.append((extractor, inference_session(load_card(DEFAULT_EXTRACTOR).path)))

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 4 and len({id(extractor) for extractor, _ in made}) == 1
    assert len({id(session) for _, session in made}) == 1


def test_verify_result_and_precomputed_embeddings():
    a, b = synth.genuine(1, 0), synth.genuine(1, 1)
    result = signver.verify(a, b)
    assert result.verified == (result.distance <= result.threshold)
    assert result.model and result.timings_ms["total"] >= result.timings_ms["embed"]
    from_vectors = signver.verify(signver.embed(a), signver.embed(b))
    assert from_vectors.distance == pytest.approx(result.distance, abs=1e-5)
    assert signver.verify(a, b, threshold=2.0).verified and not signver.verify(a, b, threshold=0.0).verified


def test_verify_rejects_bad_inputs():
    with pytest.raises(InputError, match="must be a finite float vector of length"):
        signver.verify(np.zeros(3, np.float32), synth.genuine(1, 0))
    with pytest.raises(BlankImageError):
        signver.verify(np.full((50, 80), 255, np.uint8), synth.genuine(1, 0))
    row = signver.embed(synth.genuine(1, 0))[None]  # as a batch of one comes out: once "values must lie in [0, 1]"
    with pytest.raises(InputError, match=r"a 1-D vector of length \d+, not an array of shape \(1, \d+\)"):
        signver.verify(row, synth.genuine(1, 1))
    for threshold in ("abc", [0.3], True, -1.0):
        with pytest.raises(InputError, match="non-negative number"):
            signver.verify(synth.genuine(1, 0), synth.genuine(1, 1), threshold=threshold)


@pytest.mark.parametrize("model", [5, 0.5])
def test_a_model_that_is_not_a_name_or_path_is_an_input_error(model):
    with pytest.raises(InputError, match="a model is named by a string or a path"):
        signver.verify(synth.genuine(1, 0), synth.genuine(1, 1), model=model)


def test_cli_file_names_are_text_not_markup(pair_files, tmp_path):
    """rich reads "[/b]" as a closing tag: an error naming such a file crashed the whole run."""
    a, b, _ = pair_files
    (tmp_path / "c[b]x[").mkdir()
    for name in ("c[b]x[/b].png", "[red]x.png"):  # the first is b].png in the folder c[b]x[
        (tmp_path / name).write_bytes(b"not an image")
        result = runner.invoke(app, ["verify", str(a), str(tmp_path / name), str(b)])
        assert result.exit_code == 2 and f"{tmp_path / name}; supported formats" in result.stderr and "Traceback" not in result.output, result.output
        assert f"{b}: verified" in result.stdout  # the run went on
    too_long = tmp_path / ("x" * 300 + ".png")  # the system refuses the name itself: that file's error, not the run's
    result = runner.invoke(app, ["verify", str(a), str(too_long), str(b)])
    assert result.exit_code == 2 and "File name too long" in result.stderr and f"{b}: verified" in result.stdout, result.output


def test_cli_exit_codes_for_output_that_cannot_be_written():
    signver_command = str(Path(sys.executable).parent / "signver")
    with open("/dev/full", "w") as full:
        result = subprocess.run([signver_command, "models"], stdout=full, stderr=subprocess.PIPE, text=True)
    assert result.returncode == 3 and "could not finish: No space left on device" in result.stderr and "Traceback" not in result.stderr
    closed = subprocess.Popen([signver_command, "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    closed.stdout.close()  # the reader is gone before the first line (| head, a killed consumer)
    assert closed.wait(timeout=60) == 141 and closed.stderr.read() == ""
    version = subprocess.run([signver_command, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.strip() == f"signver {signver.__version__}"
    assert "Exit codes: 0 done" in subprocess.run([signver_command, "--help"], capture_output=True, text=True).stdout


def test_api_refuses_what_it_would_misread(tmp_path):
    """Each was taken the wrong way, or failed as a TypeError, OverflowError or ValueError."""
    from signver.gallery import Gallery
    from signver.images import load_image
    from signver.pipeline import Pipeline

    image = synth.genuine(3, 0)
    with pytest.raises(InputError, match="clean must be True, False or None, got 'false'"):  # "false" is true in Python
        signver.verify(image, image, clean="false")
    with pytest.raises(InputError, match="a threshold must be a finite, non-negative number"):
        signver.verify(image, image, threshold=10**400)  # compares below infinity, overflows float()
    with pytest.raises(InputError, match="dpi must be a number"):
        signver.detect(image, dpi=10**400)
    with pytest.raises(InputError, match="max_pages must be a whole number of at least 1"):
        Pipeline(max_pages=0)
    with pytest.raises(InputError, match="max_pixels must be a whole number"):
        load_image(image, max_pixels=-1)
    assert load_image(image, page=np.int64(0)).shape == image.shape
    (tmp_path / "x.png").write_bytes(b"x")
    closed = open(tmp_path / "x.png", "rb")
    closed.close()
    with pytest.raises(InputError, match="cannot read file object .*closed file"):
        signver.verify(closed, image)
    with Gallery(tmp_path / "g.sqlite") as g:
        for one in (image, Image.fromarray(image), np.dstack([image] * 3), g.extractor.vectors([image])[0]):
            with pytest.raises(InputError, match="takes a list of images, not one .*: wrap it as \\[image\\]"):
                g.enroll("P-1", one)
        assert g.enroll("P-1", g.extractor.vectors([image, synth.genuine(3, 1)])).references == 2  # rows of embeddings


@pytest.mark.parametrize("command", [["train", "baseline", "--config", "configs/baseline-effnet-lite0.yaml"],
                                     ["train", "detector", "--config", "configs/detector-lite0-gpu.yaml"]])
def test_cli_training_without_the_train_extra_says_how_to_install_it(command):
    """A base install has no torch: one line naming the extra and exit 2, not a trace and exit 3."""
    script = "import sys; sys.modules['torch'] = None; from signver.cli import app; app(sys.argv[1:])"
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "pip install 'signver[train]'" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_reads_an_image_from_standard_input_named_dash(pair_files):
    """`-` is standard input, for the reference and for a questioned signature."""
    reference, questioned = pair_files[0], pair_files[1]
    signver_command = str(Path(sys.executable).parent / "signver")
    for args, piped in ((["-", questioned], reference), ([reference, "-", "--json"], questioned)):
        with open(piped, "rb") as stdin:
            done = subprocess.run([signver_command, "verify", *map(str, args)], stdin=stdin, capture_output=True, text=True, timeout=120)
        assert done.returncode in (0, 1) and "distance" in done.stdout, done.stderr
    alone = runner.invoke(app, ["verify", str(reference), str(questioned)])
    assert f"{json.loads(done.stdout)['distance']:.4f}" in alone.stdout


def test_cli_verify_exit_codes(pair_files):
    a, b, _ = pair_files
    accepted = runner.invoke(app, ["verify", str(a), str(b), "--threshold", "2", "--json"])
    assert accepted.exit_code == 0
    result = json.loads(accepted.stdout)
    assert result["verified"] is True and 0 <= result["distance"] <= 2
    assert all(round(v, 3) == v for v in result["timings_ms"].values())
    rejected = runner.invoke(app, ["verify", str(a), str(b), "--threshold", "0"])
    assert rejected.exit_code == 1 and "not verified" in rejected.stdout


def test_cli_refuses_a_large_image_without_pillows_warning(pair_files, tmp_path):
    """Over Pillow's warning size (about 89M pixels) but under its error: our limit answers,
    and nothing else is printed (a subprocess: pytest would catch the warning itself)."""
    from tests.test_images import _png_header_only

    large = tmp_path / "large.png"
    large.write_bytes(_png_header_only(12000, 12000))
    run = subprocess.run([sys.executable, "-c", "from signver.cli import app; app()", "verify", str(pair_files[0]), str(large)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "12000x12000" in run.stderr
    assert "Warning" not in run.stderr and "decompression bomb" not in run.stderr, run.stderr


def test_cli_verify_refuses_json_with_another_format(pair_files):
    a, b, _ = pair_files
    result = runner.invoke(app, ["verify", str(a), str(b), "--json", "--format", "csv"])
    assert result.exit_code == 2 and "--format csv" in result.output and result.stdout.count("{") == 0


def test_cli_bad_input_exits_2_with_a_message(pair_files):
    a, _, empty = pair_files
    result = runner.invoke(app, ["verify", str(a), str(empty)])
    assert result.exit_code == 2 and "empty" in result.stderr.lower() and result.stderr.count(empty.name) == 1
    missing = runner.invoke(app, ["verify", str(a), str(a.parent / "missing.png")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr.lower()
    blank = a.parent / "white.png"
    cv2.imwrite(str(blank), np.full((50, 80), 255, np.uint8))
    for args in ([a, blank], [blank, a]):  # a blank questioned or reference file is named, once
        result = runner.invoke(app, ["verify", *map(str, args)])
        assert result.exit_code == 2 and result.stderr.count(f"{blank}: blank image") == 1 and str(blank) + ": " + str(blank) not in result.stderr


@pytest.mark.parametrize("args, words", [
    (["verify", "{a}", "{b}", "--model", "signature-detector"], "not a signature extractor"),
    (["verify", "{a}", "{b}", "--model", "cleaner-unet-flourish"], "not a signature extractor"),
    (["detect", "{a}", "--model", "effnet-lite0-imagenet"], "not a signature detector"),
    (["verify", "{a}", "{b}", "--threshold", "-1"], "non-negative number"),
    (["verify", "{a}", "{b}", "--threshold", "nan"], "non-negative number"),
    (["detect", "{a}", "--threshold", "1.5"], "from 0 to 1"),
    (["detect", "{a}", "--dpi", "inf"], "at least 50"),
    (["detect", "{a}", "--dpi", "1"], "at least 50"),
    (["serve", "--port", "70000"], "65535"),
    (["detect", "{a}", "--crops", "{a}"], "is a file"),
    (["evaluate", "{data}", "--test-writers", "all", "--out", "{a}"], "is a file"),
    (["evaluate", "{data}", "--test-writers", "all", "--protocol", "p3", "--out", "{tmp}"], "unknown protocol"),
    (["evaluate", "{data}", "--test-writers", "all", "--protocol", "p2", "--fusion", "bogus", "--out", "{tmp}"], "unknown fusion"),
    (["evaluate", "{data}", "--test-writers", "all", "--fusion", "median", "--out", "{tmp}"], "apply to --protocol p2 only"),
    (["evaluate", "{data}", "--test-writers", "all", "--references", "4", "--out", "{tmp}"], "apply to --protocol p2 only"),
    (["evaluate-detector", "{tmp}", "--out", "{a}"], "is a file"),
    (["evaluate", "{data}", "--test-writers", "all", "--out", "{a}/sub"], "cannot make --out folder"),
    (["evaluate-detector", "{tmp}", "--out", "{a}/sub"], "cannot make --out folder"),
    (["inspect", "{data}", "--out", "{a}/sub"], "cannot make --out folder"),
    (["inspect", "{data}", "--out", "{a}"], "is a file"),
    (["inspect", "{data}", "--out", "{tmp}", "--max-writers", "0"], "at least 1"),
    (["inspect", "{data}", "--out", "{tmp}", "--split", "cedar", "--test-writers", "1"], "not both"),  # the split alone was used
    (["evaluate-detector", "{tmp}", "--out", "{tmp}", "--baseline", "--model", "nosuch"], "not both"),  # --model dropped in silence
    (["demo", "--writers", "0"], "from 1 to 1000"),
    (["demo", "--writers", "100000000"], "from 1 to 1000"),
    (["verify", "-", "-"], "can be read only once"),
    (["verify", "{a}", "-", "-"], "can be read only once"),
    (["verify", "{a}", "{b}", "--model", "effnet-lite0-imagenet", "--threshold", "inf"], "finite, non-negative"),
    (["identify", "{a}", "-k", "0"], "k must be a whole number of at least 1"),
])
def test_cli_bad_options_exit_2_with_a_message(pair_files, synthetic_dataset, tmp_path, args, words):
    a, b, _ = pair_files
    names = {"a": a, "b": b, "data": synthetic_dataset, "tmp": tmp_path / "out"}
    result = runner.invoke(app, [arg.format(**names) for arg in args])
    assert result.exit_code == 2 and words in result.stderr, result.stdout + result.stderr


def test_cli_evaluate_writes_metrics(synthetic_dataset, tmp_path):
    result = runner.invoke(app, ["evaluate", str(synthetic_dataset), "--protocol", "p1", "--test-writers", "all", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["n_writers"] == 8
    assert "eer_skilled" in result.stdout and "eer_skilled 95 % interval" in result.stdout


def test_cli_evaluate_on_one_writer_gives_no_interval_and_says_n_a(synthetic_dataset, tmp_path):
    """Drawn again, one writer is always itself: its interval had zero width, as if certain."""
    result = runner.invoke(app, ["evaluate", str(synthetic_dataset), "--test-writers", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "metrics.json").read_text())["intervals_95"] == {}
    assert "95 % interval " not in result.stdout and "n/a (one writer" in result.stdout
    assert "far_random_at_threshold                n/a" in result.stdout and "nan" not in result.stdout


def test_cli_evaluate_says_when_a_split_is_only_partly_there(synthetic_dataset, tmp_path):
    """Writers 1-8 hold three of CEDAR's eleven test writers: the figures are theirs, and the
    output says so rather than passing them off as the split's."""
    result = runner.invoke(app, ["evaluate", str(synthetic_dataset), "--split", "cedar", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["test_writers"] == ["2", "7", "8"] and metrics["split_writers_missing"] == ["9", "15", "16", "18", "35", "41", "44", "48"]
    assert "8 of the test writers of split 'cedar' are not in" in result.stderr and "for the 3 found, not for the split" in result.stderr
    at_threshold = 1 - (metrics["frr_at_threshold"] + metrics["far_skilled_at_threshold"]) / 2
    assert metrics["balanced_accuracy_skilled_at_threshold"] == pytest.approx(at_threshold)
    assert metrics["balanced_accuracy_skilled"] >= at_threshold  # the best over every threshold on this data
    shown = runner.invoke(app, ["inspect", str(synthetic_dataset), "--split", "cedar", "--out", str(tmp_path / "inspect")])
    assert shown.exit_code == 0 and "8 of the test writers of split 'cedar' are not in" in shown.stderr and "plots are of the writers found" in shown.stderr
    assert "at its best threshold on this data" in result.stdout


def test_cli_refuses_another_datasets_split_and_warns_of_a_whole_one(synthetic_dataset, tmp_path):
    """Files named as CEDAR's scored with Bengali's split would be other people (writer 7 of one
    is not writer 7 of the other): refused. Scored with no split, the training writers count
    too: said (helpers' findings)."""
    import shutil

    cedar = tmp_path / "cedar-copy"
    for writer in ("2", "7", "8"):
        for kind, prefix in (("genuine", "original"), ("forged", "forgeries")):
            (cedar / writer / kind).mkdir(parents=True)
            for k, image in enumerate(sorted((synthetic_dataset / writer / kind).iterdir())[:3], 1):
                shutil.copy(image, cedar / writer / kind / f"{prefix}_{writer}_{k}.png")
    refused = runner.invoke(app, ["evaluate", str(cedar), "--split", "bhsig260-bengali", "--out", str(tmp_path / "no")])
    assert refused.exit_code == 2 and "holds cedar's files" in refused.output and not (tmp_path / "no" / "metrics.json").exists()
    whole = runner.invoke(app, ["inspect", str(cedar), "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0 and "cedar's training writers too; --split cedar scores its test writers only" in whole.stderr
    assert "already holds" not in whole.stderr
    again = runner.invoke(app, ["inspect", str(cedar), "--out", str(tmp_path / "whole")])
    assert again.exit_code == 0 and "already holds 2 file(s)" in again.stderr  # the first run's plots are replaced: said
    assert "warning" not in runner.invoke(app, ["inspect", str(cedar), "--test-writers", "all", "--out", str(tmp_path / "all")]).stderr


def test_metrics_json_is_strict_where_a_rate_cannot_be_computed(tmp_path):
    """With no skilled forgeries there is no skilled FAR: null, not NaN (which JSON.parse rejects)."""
    data = synth.write_dataset(tmp_path / "no-forgeries", n_writers=4, n_genuine=4, n_forged=0, seed=3)
    result = runner.invoke(app, ["evaluate", str(data), "--protocol", "p1", "--test-writers", "all", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output

    def refuse(constant):
        raise ValueError(f"{constant} in metrics.json")

    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text(), parse_constant=refuse)
    assert metrics["far_skilled_at_threshold"] is None


def test_cli_evaluate_bad_dataset(tmp_path, synthetic_dataset):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "none"), "--out", str(tmp_path)])
    assert result.exit_code == 2 and "not found" in result.stderr
    for command in ("evaluate", "inspect"):
        empty = runner.invoke(app, [command, str(synthetic_dataset), "--test-writers", ",", "--out", str(tmp_path / command)])
        assert empty.exit_code == 2 and "no test writers in ','" in empty.stderr, empty.output
    for command, name in (("evaluate", "metrics.json"), ("inspect", "tsne.png")):  # found only at the end, after the other outputs
        (tmp_path / f"blocked-{command}" / name).mkdir(parents=True)
        blocked = runner.invoke(app, [command, str(synthetic_dataset), "--test-writers", "all", "--out", str(tmp_path / f"blocked-{command}")])
        assert blocked.exit_code == 2 and f"holds a folder named {name}" in blocked.stderr, blocked.output
        assert [p.name for p in (tmp_path / f"blocked-{command}").iterdir()] == [name]
    for command in ("evaluate", "inspect"):
        inside = runner.invoke(app, [command, str(synthetic_dataset), "--test-writers", "all", "--out", str(synthetic_dataset / "1" / "genuine")])
        assert inside.exit_code == 2 and "is inside" in inside.stderr and not (synthetic_dataset / "1" / "genuine" / "distances.png").exists()


def test_cli_models_and_demo():
    listed = runner.invoke(app, ["models"])
    assert listed.exit_code == 0 and "effnet-lite0-imagenet" in listed.stdout
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in listed.stdout.splitlines()}
    assert rows[DEFAULT_EXTRACTOR] == "extractor (default)" and rows["effnet-lite0-imagenet"] == "extractor"
    demo = runner.invoke(app, ["demo", "--writers", "1"])
    assert demo.exit_code == 0
    lines = demo.stdout.strip().splitlines()
    assert len(lines) == 3 and all("verified" in line and "distance" in line for line in lines)
    assert "not scanned" in demo.stderr and "docs/benchmarks.md" in demo.stderr


def test_inference_never_imports_torch():
    import subprocess
    import sys

    code = "import sys, signver, numpy as np; from signver import synth; signver.verify(synth.genuine(1, 0), synth.genuine(1, 1)); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("text, problem", [
    ("", "must be a YAML mapping"), ("- a\n- b\n", "not list"), ("name: [unclosed\n", "not valid YAML"),
    ("name: x\nsteps: many\n", "steps must be a whole number of at least 1, not 'many'"),
    ("name: x\nsteps: 0\n", "steps must be a whole number of at least 1, not 0"),
    ("name: x\nbatch: {writers: -5, genuine: 4}\n", "batch: writers must be a whole number of at least 1, not -5"),
    ("name: x\nlr: -0.1\n", "lr must be a number of at least 0"),
    ("name: x\nworkers: -1\n", "workers must be a number of at least 0"),
    ("name: x\ndata: 7\n", "data must be a list of datasets"),
])
@pytest.mark.parametrize("kind", ["extractor", "cleaner", "detector"])
def test_train_rejects_a_bad_config_clearly(tmp_path, kind, text, problem):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    result = runner.invoke(app, ["train", kind, "--config", str(config)])
    assert result.exit_code == 2 and problem in result.output and "Traceback" not in result.output
    missing = runner.invoke(app, ["train", kind, "--config", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "cannot read config" in missing.output


@pytest.mark.parametrize("kind, setting", [("extractor", "input"), ("cleaner", "name"), ("detector", "input"), ("spatial-heads", "base")])
def test_train_names_a_missing_setting(tmp_path, kind, setting):
    config = tmp_path / "thin.yaml"
    named = "name: x\nout: o\ndescription: d\n"
    config.write_text({"extractor": named, "cleaner": "steps: 10\n", "detector": named, "spatial-heads": named}[kind])
    result = runner.invoke(app, ["train", kind, "--config", str(config)])
    assert result.exit_code == 2 and f"has no setting '{setting}'" in result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("kind", ["baseline", "extractor", "spatial-heads", "cleaner", "detector"])
def test_train_checks_up_front_what_a_run_reads_at_its_end(tmp_path, kind):
    """A run exports its ONNX file and then writes the card: a setting missing there, or an out
    that is a file, used to leave a new model beside the old card, after all the training."""
    config = tmp_path / "c.yaml"
    config.write_text("name: x\nout: o\n")
    result = runner.invoke(app, ["train", kind, "--config", str(config)])
    assert result.exit_code == 2 and "has no setting 'description'" in result.output and "Traceback" not in result.output, result.output
    (tmp_path / "afile").write_text("")
    config.write_text(f"name: x\ndescription: d\nout: {tmp_path / 'afile'}\n")
    result = runner.invoke(app, ["train", kind, "--config", str(config)])
    assert result.exit_code == 2 and "is a file; give a folder" in result.output, result.output


@pytest.mark.parametrize("text, problem", [
    (b"\xff\xfename: x\n", "is not UTF-8 text"),
    (b"name: x\nmask: {low: abc, high: 0.7}\n", "low must be a number of at least 0, not 'abc'"),  # read again from the card, where it crashed the cleaner
    (b"name: x\nnms_iou: abc\n", "nms_iou must be a number of at least 0"),
    (b"name: x\nblocks: 0\n", "blocks must be a whole number of at least 1"),
    (b"name: x\nrun_dri: r\n", "unknown setting 'run_dri'; did you mean 'run_dir'?"),  # the run went to runs/<name> instead
    (b"name: x\nwieght_decay: 0.5\n", "did you mean 'weight_decay'?"),
    (b"name: x\nlearning_rate: 0.5\n", "unknown setting 'learning_rate'"),  # beside lr, ignored in silence
    (b"name: x\nbatch_size: 64\n", "'batch'"),
    (b"name: x\ninput: 32\n", "input must give a height and a width in pixels"),
    # inside a part: a misspelt split trained on the test writers, a misspelt step count ran the default (a helper's findings)
    (b"name: x\ndata: [{path: d, holdout: [1], splt: cedar}]\n", "data [0] has no setting 'splt'; did you mean 'split'?"),
    (b"name: x\nspatial: {taps: [8], stepz: 3}\n", "spatial has no setting 'stepz'; did you mean 'steps'?"),
    (b"name: x\nglobal: {taps: [8], batch: {writers: 4, genuine: 2, forgeries: 1}}\n", "global.batch has no setting 'forgeries'"),
    (b"name: x\nthreshold_data: [{path: d, split: cedar, holdout: [1]}]\n", "threshold_data [0] has no setting 'holdout'; it takes path, split"),
    (b"name: x\ndescription: d\nout: /proc/signver-models\n", "out /proc/signver-models cannot be written here"),  # found only after the training
])
def test_train_refuses_settings_that_would_fail_late(tmp_path, text, problem):
    config = tmp_path / "c.yaml"
    config.write_bytes(text)
    result = runner.invoke(app, ["train", "cleaner", "--config", str(config)])
    assert result.exit_code == 2 and problem in result.output and "Traceback" not in result.output, result.output


def test_train_baseline_checks_its_data_before_touching_the_model(tmp_path):
    out = tmp_path / "models"
    out.mkdir()
    (out / "base.onnx").write_bytes(b"old model")
    (out / "base.json").write_text('{"threshold": 0.5}')
    config = tmp_path / "c.yaml"
    config.write_text(f"name: base\ndescription: d\nout: {out}\ninput: {{height: 32, width: 64}}\nthreshold_data: [{{path: {tmp_path / 'gone'}}}]\n")
    result = runner.invoke(app, ["train", "baseline", "--config", str(config)])
    assert result.exit_code == 2 and "not found" in result.output, result.output
    assert (out / "base.onnx").read_bytes() == b"old model" and (out / "base.json").read_text() == '{"threshold": 0.5}'
    data = synth.write_dataset(tmp_path / "data", n_writers=4, n_genuine=3, n_forged=2, seed=5)
    for source, problem in ((f"{{path: {data}}}", "has no setting 'split'"), (f"{{path: {data}, split: ceddar}}", "unknown split 'ceddar'")):
        config.write_text(f"name: base\ndescription: d\nout: {out}\ninput: {{height: 32, width: 64}}\nblocks: 2\nthreshold_data: [{source}]\n")
        result = runner.invoke(app, ["train", "baseline", "--config", str(config)])
        assert result.exit_code == 2 and problem in result.output, result.output  # had written a card with no threshold first
        assert (out / "base.onnx").read_bytes() == b"old model" and (out / "base.json").read_text() == '{"threshold": 0.5}'
    config.write_text(f"name: base\ndescription: d\nout: {out}\ninput: {{height: 32, width: 64}}\nblocks: 2\nthreshold_data: [{{path: {data}, split: cedar}}]\n")
    made = runner.invoke(app, ["train", "baseline", "--config", str(config)])
    assert made.exit_code == 0, made.output
    assert json.loads((out / "base.json").read_text())["threshold"] > 0 and sorted(p.name for p in out.iterdir()) == ["base.json", "base.onnx"]


def test_every_shipped_config_passes_the_checks(tmp_path):
    from pathlib import Path

    from signver.training.config import KNOWN_SETTINGS, read_config

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) > 40
    for config in configs:
        assert read_config(config)  # a mapping, its counts and rates in range
        assert set(read_config(config)) <= KNOWN_SETTINGS, config.name  # so that a misspelling of any of them is caught
    own_process = tmp_path / "workers0.yaml"
    own_process.write_text("name: x\nworkers: 0\n")  # data loaded in the training process, as the detector's default
    assert read_config(own_process)["workers"] == 0


def test_dropout_in_the_library_and_the_verify_clean_and_detect_commands(tmp_path):
    """`dropout` reads a scan with a red stamp over the signature as the plain scan, in the
    library's calls and the commands that read files; read as grey the stamp is ink."""
    from signver import synth_pages

    from .documents import red_stamped

    plain, reference = synth.genuine(4, 1), synth.genuine(4, 0)
    stamped = red_stamped(plain)
    assert np.allclose(signver.embed(stamped, dropout="red"), signver.embed(plain), atol=1e-5)
    same = signver.verify(reference, plain).distance
    assert signver.verify(reference, stamped, dropout="red").distance == pytest.approx(same, abs=1e-5)
    assert signver.verify(reference, stamped).distance > same + 0.05
    assert np.array_equal(signver.clean(stamped, dropout="red"), signver.clean(plain))
    page = synth_pages.page(0, signatures=1).image
    assert signver.detect(red_stamped(page), dropout="red") == signver.detect(page)

    Image.fromarray(reference).save(tmp_path / "ref.png")
    Image.fromarray(stamped).save(tmp_path / "stamped.png")
    Image.fromarray(red_stamped(page)).save(tmp_path / "page.png")
    result = runner.invoke(app, ["verify", str(tmp_path / "ref.png"), str(tmp_path / "stamped.png"), "--json", "--dropout", "red"])
    assert json.loads(result.stdout)["distance"] == pytest.approx(same, abs=1e-4)
    cleaned = runner.invoke(app, ["clean", str(tmp_path / "stamped.png"), "--out", str(tmp_path / "out"), "--dropout", "red"])
    assert cleaned.exit_code == 0 and np.array_equal(np.asarray(Image.open(tmp_path / "out" / "stamped.png")), signver.clean(plain))
    found = runner.invoke(app, ["detect", str(tmp_path / "page.png"), "--json", "--dropout", "red"])
    assert [b["score"] for b in json.loads(found.stdout)["boxes"]] == pytest.approx([b.score for b in signver.detect(page)], abs=1e-3)
    with pytest.raises(InputError, match="dropout must be one of"):
        signver.verify(reference, plain, dropout="cyan")


def test_a_copy_of_the_reference_a_tall_image_and_a_document_are_noted(tmp_path):
    """The decision alone does not say that the questioned scan is the reference saved again
    (no evidence of a new signing), that a file taller than wide is a page or a sideways
    signature, or that only a document's first page was read: a note says so, in the library's
    result and each output format."""
    reference = synth.genuine(4, 0)
    assert "the same scan as the reference" in signver.verify(reference, reference).note
    assert signver.verify(reference, synth.genuine(4, 1)).note is None
    Image.fromarray(reference).save(tmp_path / "ref.png")
    cv2.imwrite(str(tmp_path / "resaved.jpg"), reference, [cv2.IMWRITE_JPEG_QUALITY, 90])
    Image.fromarray(np.rot90(synth.genuine(4, 1)).copy()).save(tmp_path / "sideways.png")
    Image.fromarray(synth.genuine(4, 1)).save(tmp_path / "other.png")
    text = runner.invoke(app, ["verify", str(tmp_path / "ref.png"), str(tmp_path / "resaved.jpg"), str(tmp_path / "sideways.png"),
                               str(tmp_path / "other.png")]).stdout.splitlines()
    assert "note: the same scan as the reference" in text[0] and "note: taller than wide" in text[1] and "note" not in text[2]
    rows = [json.loads(line) for line in runner.invoke(app, ["verify", str(tmp_path / "ref.png"), str(tmp_path / "sideways.png"),
                                                              str(tmp_path / "other.png"), "--json"]).stdout.splitlines()]
    assert rows[0]["note"].startswith("taller than wide") and rows[1]["note"] is None
    from signver.images import first_page

    assert first_page(tmp_path / "sideways.png") == (150, 375, False) and first_page(tmp_path / "missing.png") is None
    pages = [Image.fromarray(synth.genuine(4, s)) for s in (1, 2)]
    pages[0].save(tmp_path / "two.tif", save_all=True, append_images=pages[1:])
    pages[0].save(tmp_path / "two.pdf", save_all=True, append_images=pages[1:])
    for name in ("two.tif", "two.pdf"):
        assert first_page(tmp_path / name)[2]
        out = runner.invoke(app, ["verify", str(tmp_path / "ref.png"), str(tmp_path / name)]).stdout
        assert "note: of several pages or frames, only the first is read" in out and "taller" not in out


def test_notes_never_stop_a_result_and_read_no_file_twice(tmp_path):
    """The notes' look at a file is left out where it cannot be made cheaply and safely: a
    damaged later TIFF page, a named pipe (readable once), and still says what it can: the
    frames of an animation, a PDF whose header follows a byte-order mark."""
    import os
    import threading

    from signver.images import first_page

    pages = [Image.fromarray(synth.genuine(4, s)) for s in (1, 2)]
    pages[0].save(tmp_path / "two.tif", save_all=True, append_images=pages[1:])
    data = bytearray((tmp_path / "two.tif").read_bytes())
    first = int.from_bytes(data[4:8], "little")
    entries = int.from_bytes(data[first : first + 2], "little")
    second = int.from_bytes(data[first + 2 + 12 * entries : first + 6 + 12 * entries], "little")
    data[second : second + 2] = b"\x00\x00"  # the second page's directory holds no entries: Pillow raises TypeError there
    (tmp_path / "damaged.tif").write_bytes(bytes(data))
    Image.fromarray(synth.genuine(4, 0)).save(tmp_path / "ref.png")
    out = runner.invoke(app, ["verify", str(tmp_path / "ref.png"), str(tmp_path / "damaged.tif"), str(tmp_path / "ref.png")])
    assert out.exit_code == 0 and out.stdout.count("\n") == 2, out.output
    pages[0].save(tmp_path / "anim.gif", save_all=True, append_images=pages[1:])
    assert first_page(tmp_path / "anim.gif")[2]
    pages[0].save(tmp_path / "two.pdf", save_all=True, append_images=pages[1:])
    (tmp_path / "bom.pdf").write_bytes(b"\xef\xbb\xbf" + (tmp_path / "two.pdf").read_bytes())
    assert first_page(tmp_path / "bom.pdf")[2]
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes((tmp_path / "ref.png").read_bytes()), daemon=True)
    writer.start()
    assert first_page(fifo) is None  # not opened: the one read is the load's
    out = runner.invoke(app, ["verify", str(tmp_path / "ref.png"), str(fifo), "--json"])
    writer.join(timeout=10)
    assert out.exit_code == 0 and json.loads(out.stdout)["distance"] == 0, out.output
