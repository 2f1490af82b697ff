"""The gallery commands and folder mode: one line per result, CSV / JSON lines, exit codes."""

import csv
import io
import json
import os
import sqlite3

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from signver import synth
from signver.cli import app

runner = CliRunner()


@pytest.fixture
def files(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNVER_GALLERY", str(tmp_path / "g.sqlite"))
    for writer in (3, 5):
        (tmp_path / f"w{writer}").mkdir()
        for sample in range(4):
            Image.fromarray(synth.genuine(writer, sample)).save(tmp_path / f"w{writer}" / f"{sample}.png")
        Image.fromarray(synth.genuine(writer, 9)).save(tmp_path / f"q{writer}.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    return tmp_path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_enroll_check_identify_remove(files):
    enrolled = invoke("enroll", "alice", files / "w3", "--metadata", '{"branch": "north"}')
    assert enrolled.exit_code == 0 and "4 references" in enrolled.stdout
    assert invoke("enroll", "bob", files / "w5").exit_code == 0

    accepted = invoke("check", "alice", files / "q3.png")
    assert accepted.exit_code == 0 and "verified as alice" in accepted.stdout and "confidence" in accepted.stdout
    rejected = invoke("check", "alice", files / "q5.png")
    assert rejected.exit_code == 1 and "not verified" in rejected.stdout

    ranked = invoke("identify", files / "q5.png", "-k", "2", "--format", "jsonl")
    rows = [json.loads(line) for line in ranked.stdout.splitlines()]
    assert ranked.exit_code == 0 and [r["person_id"] for r in rows] == ["bob", "alice"] and rows[0]["verified"]
    assert rows[0]["log10_lr"] > rows[1]["log10_lr"] and rows[0]["model"] and rows[0]["fusion"] == "scaled"
    assert invoke("identify", files / "q5.png", "-k", "2", "--json").stdout == ranked.stdout  # --json as on verify
    claim = json.loads(invoke("check", "alice", files / "q3.png", "--json").stdout)
    assert claim["verified"] and claim["model"] == rows[0]["model"]

    listed = invoke("gallery", "list", "--json")
    people = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(p["person_id"], p["references"]) for p in people] == [("alice", 4), ("bob", 4)]
    assert people[0]["metadata"] == {"branch": "north"}

    assert invoke("gallery", "remove", "bob", "carol").exit_code == 2  # all or nothing
    twice = invoke("gallery", "remove", "bob", "bob")  # an id given twice is removed once
    assert twice.exit_code == 0 and twice.stdout.count("removed bob") == 1
    missing = invoke("check", "bob", files / "q5.png")
    assert missing.exit_code == 2 and "no person 'bob'" in missing.stderr


def test_folder_mode_csv_keeps_going_past_bad_files(files):
    invoke("enroll", "alice", files / "w3")
    result = invoke("check", "alice", files / "q3.png", files / "bad.png", files / "w3", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["questioned"].split("/")[-1] for r in rows] == ["q3.png", "bad.png", "0.png", "1.png", "2.png", "3.png"]
    assert rows[1]["error"] and "not an image" in rows[1]["error"] and rows[0]["verified"] == "True"
    assert result.exit_code == 2 and "bad.png" in result.stderr


def test_folder_mode_says_what_it_left_out(files):
    (files / "w3" / "scan.jfif").write_bytes((files / "w3" / "0.png").read_bytes())  # read when named, left out of a folder
    (files / "w3" / "notes").write_text("")
    (files / "w3" / "gone.png").symlink_to(files / "nowhere.png")
    result = invoke("verify", files / "q3.png", files / "w3", "--json")
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 4
    assert "━" not in result.stderr and "verifying" not in result.stderr  # stderr is no terminal here: no progress bar in logs
    assert "3 file(s) left out, not named as images or PDFs or not readable files (gone.png, notes, scan.jfif)" in result.stderr
    assert invoke("verify", files / "q3.png", files / "w3" / "scan.jfif").exit_code == 0


def test_verify_many_against_one_reference(files):
    result = invoke("verify", files / "w3" / "0.png", files / "q3.png", files / "q5.png", "--format", "jsonl")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(r["verified"] == (r["distance"] <= r["threshold"]) and 0 <= r["confidence"] <= 1 for r in rows)
    assert result.exit_code == (0 if all(r["verified"] for r in rows) else 1)
    same, other = (r["distance"] for r in rows)
    assert same < other  # the writer's own signature is the closer one
    # synthetic writers sit near real models' thresholds, so the exit status is checked at a threshold between the two
    between = invoke("verify", files / "w3" / "0.png", files / "q3.png", files / "q5.png", "--format", "jsonl", "--threshold", (same + other) / 2)
    assert [json.loads(line)["verified"] for line in between.stdout.splitlines()] == [True, False] and between.exit_code == 1


def test_bad_usage_exits_2(files):
    for metadata in ("{oops", "[" * 5000, '{"a": ' + "9" * 5000 + "}"):  # not JSON, nested too deep, a number too long
        bad = invoke("enroll", "alice", files / "w3", "--metadata", metadata)
        assert bad.exit_code == 2 and "--metadata is not valid JSON" in bad.stderr
    empty = files / "empty"
    empty.mkdir()
    nothing = invoke("enroll", "alice", empty)
    assert nothing.exit_code == 2 and "holds no image" in nothing.stderr
    assert invoke("identify", files / "q3.png", "--format", "xml").exit_code == 2
    assert invoke("identify", files / "q3.png", "-k", "0").exit_code == 2
    invoke("enroll", "alice", files / "w3")
    invoke("gallery", "remove", "alice")
    emptied = invoke("identify", files / "q3.png")  # no one to find is not "matched no one"
    assert emptied.exit_code == 2 and "is empty: enrol someone first" in emptied.stderr


def test_reading_a_missing_gallery_is_an_error_and_creates_nothing(files):
    missing = files / "typo" / "g.sqlite"
    for args in (("gallery", "list"), ("gallery", "remove", "alice"), ("check", "alice", files / "q3.png"),
                 ("identify", files / "q3.png")):
        result = invoke(*args, "--gallery", missing)
        assert result.exit_code == 2 and "no gallery at" in result.stderr, args
    assert not missing.parent.exists()


def test_a_damaged_gallery_is_an_error_not_a_traceback(files):
    """Damage found after the file opened (the people table's page) is still one clear line."""
    gallery = files / "g.sqlite"
    assert invoke("enroll", "alice", files / "w3").exit_code == 0
    with sqlite3.connect(gallery) as db:
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'people'").fetchone()[0]
    db.close()
    data = bytearray(gallery.read_bytes())
    size = int.from_bytes(data[16:18], "big")
    data[(root - 1) * size : root * size] = b"\xa5" * size
    gallery.write_bytes(bytes(data))
    result = invoke("gallery", "list")
    assert result.exit_code == 2 and "damaged" in result.stderr, result.output


def test_a_busy_gallery_is_not_called_damaged(files, monkeypatch):
    assert invoke("enroll", "alice", files / "w3").exit_code == 0
    holder = sqlite3.connect(files / "g.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: _real_connect(*a, **{**k, "timeout": 0.1}))
    try:
        result = invoke("gallery", "remove", "alice")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 2 and "busy" in result.stderr and "damaged" not in result.stderr, result.stderr
    assert "alice" in invoke("gallery", "list").stdout


_real_connect = sqlite3.connect


def test_enrolling_the_same_file_again_exits_2_and_keeps_the_gallery(files):
    assert invoke("enroll", "alice", files / "w3").exit_code == 0
    for args in ((files / "w3" / "0.png",), (files / "q3.png", files / "q3.png"), (files / "w3", files / "w3" / "1.png")):
        result = invoke("enroll", "alice", *args)
        assert result.exit_code == 2 and "same signature" in result.stderr and "nothing was enrolled" in result.stderr, result.output
    assert "alice\t4 references" in invoke("gallery", "list").stdout


def test_a_gallery_name_too_long_is_bad_input(files):
    result = invoke("gallery", "list", "--gallery", files / ("a" * 300 + ".sqlite"))
    assert result.exit_code == 2 and "cannot use gallery path" in result.stderr and "too long" in result.stderr, result.output


def test_a_gallery_folder_that_cannot_be_made_exits_2_not_a_traceback(files):
    result = invoke("enroll", "alice", files / "w3", "--gallery", files / "bad.png" / "sub" / "g.sqlite")
    assert result.exit_code == 2 and "cannot make the folder for gallery" in result.stderr, result.output


def test_file_names_that_are_not_utf8_print(files):
    r"""A name made of bytes no encoding reads (possible on Linux) is printed with the byte's
    escape, \xff, so two such names stay two names."""
    odd = files / "odd"
    odd.mkdir()
    for byte in (b"\xff", b"\xfe"):
        (odd / os.fsdecode(b"q" + byte + b".png")).write_bytes((files / "q3.png").read_bytes())
    invoke("enroll", "alice", files / "w3")
    for args in (("verify", files / "q3.png", odd), ("check", "alice", odd), ("identify", odd)):
        text, lines = invoke(*args), invoke(*args, "--format", "jsonl")
        assert text.exit_code in (0, 1) and "q\\xff.png" in text.stdout and "q\\xfe.png" in text.stdout, (args, text.output)
        named = {json.loads(line)["questioned"].rsplit("/", 1)[-1] for line in lines.stdout.splitlines()}
        assert lines.exit_code == text.exit_code and named == {"q\\xfe.png", "q\\xff.png"}
    elsewhere = invoke("enroll", "bob", files / "w5", "--gallery", odd / os.fsdecode(b"g\xff.sqlite"))  # named with the escape too
    assert elsewhere.exit_code == 0 and "g\\xff.sqlite" in elsewhere.stdout
    (odd / os.fsdecode(b"r\xff.png")).write_bytes(b"not an image")  # its error names it too
    for args in (("verify", files / "q3.png", odd), ("check", "alice", odd)):
        table = invoke(*args, "--format", "csv")
        rows = list(csv.DictReader(io.StringIO(table.stdout)))
        assert table.exit_code == 2 and rows[0]["questioned"].endswith("q\\xfe.png") and "r\\xff.png" in rows[2]["error"]
        assert table.stderr.count("r\\xff.png") == 1


def test_names_with_tabs_and_line_breaks_keep_one_line_per_result(files):
    """Text lines are tab-separated: a tab, line break or escape code in a name is written as its
    escape there and on stderr, and kept as it is in JSON records, which quote it."""
    odd = files / "breaks"
    odd.mkdir()
    (odd / "a\tb\nc\x1b[2J.png").write_bytes((files / "q3.png").read_bytes())
    (odd / "bad\nname.png").write_bytes(b"not an image")
    invoke("enroll", "alice", files / "w3")
    for args in (("verify", files / "q3.png", odd), ("check", "alice", odd), ("identify", "-k", "1", odd)):
        text, lines = invoke(*args), invoke(*args, "--json")
        assert text.exit_code == 2 and len(text.stdout.splitlines()) == 1 and "a\\tb\\nc\\x1b[2J.png" in text.stdout, (args, text.output)
        assert "\x1b" not in text.stdout and "\x1b" not in text.stderr
        assert len(text.stderr.splitlines()) == 1 and "bad\\nname.png" in text.stderr
        assert json.loads(lines.stdout.splitlines()[0])["questioned"].endswith("a\tb\nc\x1b[2J.png")


def signed_pages(files):
    """In `files`: page.png, a synthetic page whose one signature the shipped detector finds,
    crop.png, that signature cut out, and blank-page.png, a page with none; the page and the box."""
    from signver import synth_pages

    made = synth_pages.page(0, signatures=1)
    x0, y0, x1, y1 = made.boxes[0].astype(int)
    Image.fromarray(made.image[y0:y1, x0:x1]).save(files / "crop.png")
    Image.fromarray(made.image).save(files / "page.png")
    Image.fromarray(synth_pages.page(0, signatures=0).image).save(files / "blank-page.png")
    return made, (x0, y0, x1, y1)


def test_check_document_finds_and_checks_each_signature_on_a_page(files):
    """`check` reads a file as one signature; with --document it finds the signatures on a page
    or PDF first (a whole cheque read as one signature was rejected as its true writer's)."""
    from signver import synth_pages

    made, (x0, y0, x1, y1) = signed_pages(files)
    assert invoke("enroll", "alice", files / "crop.png").exit_code == 0
    assert invoke("enroll", "bob", files / "w5").exit_code == 0

    mine = invoke("check", "alice", files / "page.png", "--document", "--format", "jsonl")
    rows = [json.loads(line) for line in mine.stdout.splitlines()]
    assert mine.exit_code == 0 and len(rows) == 1 and rows[0]["verified"] and rows[0]["page"] == 0, mine.output
    assert abs(rows[0]["box"][0] - x0) < 0.2 * (x1 - x0) and rows[0]["detector_score"] > 0 and rows[0]["turned"] == 0
    Image.fromarray(np.ascontiguousarray(np.rot90(made.image))).save(files / "turned-page.png")  # scanned turned a quarter
    turned = invoke("check", "alice", files / "turned-page.png", "--document", "--format", "jsonl")
    rows = [json.loads(line) for line in turned.stdout.splitlines()]
    assert turned.exit_code == 0 and len(rows) == 1 and rows[0]["verified"] and rows[0]["turned"] == 90, turned.output
    assert "read turned a quarter clockwise" in rows[0]["note"]
    notes = [json.loads(invoke("detect", files / name, "--json").stdout)["boxes"][0]["note"] for name in ("page.png", "turned-page.png")]
    assert notes[0] is None and notes[1] == "the box is taller than wide: a signature turned sideways (the page scanned turned?)"
    not_bob = invoke("check", "bob", files / "page.png", "--document")
    assert not_bob.exit_code == 1 and "page.png page 0 at (" in not_bob.stdout and "not verified as bob" in not_bob.stdout
    Image.fromarray(synth_pages.page(2, signatures=2).image).save(files / "two-signers.png")  # the shipped detector finds both
    both = invoke("check", "alice", files / "two-signers.png", "--document")
    lines = both.stdout.splitlines()
    assert both.exit_code == 1 and len(lines) == 3 and lines[-1].endswith("two-signers.png: 0 of 2 signatures verified as alice"), lines
    signers = synth_pages.page(2, signatures=2)
    cx0, cy0, cx1, cy1 = signers.boxes[0].astype(int)
    Image.fromarray(signers.image[cy0:cy1, cx0:cx1]).save(files / "carol.png")
    assert invoke("enroll", "carol", files / "carol.png").exit_code == 0
    carol = invoke("check", "carol", files / "two-signers.png", "--document", "--format", "jsonl")
    rows = [json.loads(line) for line in carol.stdout.splitlines()]  # a contract signed by carol and another: hers is on it
    assert carol.exit_code == 0 and [r["verified"] for r in rows].count(True) == 1 and len(rows) == 2, carol.output
    nothing = invoke("check", "alice", files / "blank-page.png", files / "bad.png", "--document", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(nothing.stdout)))
    assert nothing.exit_code == 2 and table[0]["note"] == "no signature found" and table[0]["verified"] == "False" and table[1]["error"]


def test_a_sideways_or_many_page_reference_is_refused_unless_asked_for(files):
    """A sideways reference widens the person's references until others' signatures pass as
    theirs (a helper's finding): enrol refuses it, enrolling nothing, unless --any-shape."""
    Image.fromarray(np.ascontiguousarray(np.rot90(synth.genuine(3, 5)))).save(files / "sideways.png")
    refused = invoke("enroll", "alice", files / "w3", files / "sideways.png")
    assert refused.exit_code == 2 and "sideways.png is taller than wide" in refused.output and "nothing was enrolled" in refused.output
    assert not (files / "g.sqlite").exists()  # refused before the gallery is made
    kept = invoke("enroll", "alice", files / "w3", files / "sideways.png", "--any-shape")
    assert kept.exit_code == 0 and "enrolled alice: 5 added" in kept.stdout and "enrolled as it is (--any-shape)" in kept.output


def test_identify_document_hints_at_a_coloured_stamp_where_no_one_matches(files):
    """On a colour page with a red stamp, a signature that matches no one gets the hint of
    --dropout red, as plain identify and check --document give it."""
    import cv2

    made, _ = signed_pages(files)
    assert invoke("enroll", "bob", files / "w5").exit_code == 0  # not the page's writer
    page = np.dstack([made.image] * 3)
    cv2.circle(page, (500, 520), 40, (200, 30, 40), 6)  # away from the signature, 0.4 % of the page
    Image.fromarray(page).save(files / "stamped-page.png")
    found = invoke("identify", files / "stamped-page.png", "--document", "-k", "1", "--format", "jsonl")
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert found.exit_code == 1 and rows and rows[0]["rank"] == 1 and not rows[0]["verified"], found.output
    assert "the scan holds red marks" in rows[0]["note"] and "--dropout red" in rows[0]["note"]


def test_check_and_identify_document_read_as_many_pages_as_detect(files):
    """A document of more pages than the service takes (20) is read whole on the command line,
    as `detect` reads it (up to 100 pages), and the error past that names the limit."""
    from .documents import pdf

    made, _ = signed_pages(files)
    assert invoke("enroll", "alice", files / "crop.png").exit_code == 0
    (files / "long.pdf").write_bytes(pdf(*[np.full((200, 300), 255, np.uint8)] * 24, made.image, dpi=50))
    checked = invoke("check", "alice", files / "long.pdf", "--document", "--dpi", "50", "--format", "jsonl")
    rows = [json.loads(line) for line in checked.stdout.splitlines()]
    assert checked.exit_code == 0 and [r["page"] for r in rows] == [24] and rows[0]["verified"], checked.output
    found = invoke("identify", files / "long.pdf", "--document", "--dpi", "50", "-k", "1", "--format", "jsonl")
    assert found.exit_code == 0 and json.loads(found.stdout.splitlines()[0])["person_id"] == "alice", found.output
    (files / "longer.pdf").write_bytes(pdf(*[np.full((50, 50), 255, np.uint8)] * 101, dpi=50))
    refused = invoke("check", "alice", files / "longer.pdf", "--document", "--dpi", "50")
    assert refused.exit_code == 2 and "more than 100 pages" in refused.output


def test_dropout_reads_red_stamped_scans_as_the_plain_ones(files):
    """With --dropout red, enrol, check, identify and check --document read a scan with a red
    stamp over the signature as the plain scan; read as grey the stamp is ink."""
    from signver import synth_pages

    from .documents import red_stamped

    stamped = files / "stamped"
    stamped.mkdir()
    for sample in range(4):
        Image.fromarray(red_stamped(synth.genuine(3, sample))).save(stamped / f"{sample}.png")
    Image.fromarray(red_stamped(synth.genuine(3, 9))).save(files / "q3-stamped.png")
    made = synth_pages.page(0, signatures=1)
    x0, y0, x1, y1 = made.boxes[0].astype(int)
    Image.fromarray(made.image[y0:y1, x0:x1]).save(files / "crop.png")
    Image.fromarray(red_stamped(made.image)).save(files / "page-stamped.png")

    assert invoke("enroll", "alice", stamped, "--dropout", "red").exit_code == 0
    assert invoke("enroll", "bob", files / "w5").exit_code == 0
    assert invoke("enroll", "carol", files / "crop.png").exit_code == 0
    plain = json.loads(invoke("check", "alice", files / "q3.png", "--json").stdout)
    dropped = json.loads(invoke("check", "alice", files / "q3-stamped.png", "--json", "--dropout", "red").stdout)
    grey = json.loads(invoke("check", "alice", files / "q3-stamped.png", "--json").stdout)
    assert dropped["distance"] == pytest.approx(plain["distance"], abs=1e-4) and dropped["verified"]
    assert grey["distance"] > plain["distance"] + 0.05
    ranked = invoke("identify", files / "q3-stamped.png", "-k", "1", "--json", "--dropout", "red")
    assert json.loads(ranked.stdout)["person_id"] == "alice"
    page = invoke("check", "carol", files / "page-stamped.png", "--document", "--json", "--dropout", "red")
    assert page.exit_code == 0 and [json.loads(line)["verified"] for line in page.stdout.splitlines()] == [True], page.output
    wrong = invoke("check", "alice", files / "q3.png", "--dropout", "purple")
    assert wrong.exit_code == 2 and "red, green, blue" in wrong.output


def test_enroll_cleans_references_when_asked(files):
    """`enroll --clean` stores the cleaned reference: a check of the same crop, cleaned, is at
    distance 0; enrolled without cleaning it is not."""
    from signver import overlays

    Image.fromarray(overlays.clutter(synth.genuine(3, 0), 5).image).save(files / "form-crop.png")
    assert invoke("enroll", "alice", files / "form-crop.png", "--clean").exit_code == 0
    assert invoke("enroll", "bob", files / "form-crop.png", "--no-clean").exit_code == 0
    cleaned = json.loads(invoke("check", "alice", files / "form-crop.png", "--clean", "--json").stdout)
    as_is = json.loads(invoke("check", "bob", files / "form-crop.png", "--clean", "--json").stdout)
    assert cleaned["distance"] == pytest.approx(0, abs=1e-4) and as_is["distance"] > 0.01


def test_check_and_identify_note_a_copy_of_a_reference(files):
    assert invoke("enroll", "alice", files / "w3").exit_code == 0
    again = invoke("enroll", "alicia", files / "w3" / "1.png")  # a scan alice holds, under another id
    assert again.exit_code == 0 and "note: 'alicia' now holds the same scan as 'alice'" in again.stderr
    assert invoke("gallery", "remove", "alicia").exit_code == 0
    claim = json.loads(invoke("check", "alice", files / "w3" / "0.png", "--json").stdout)
    assert claim["verified"] and "the same scan as one of alice's references" in claim["note"]
    assert json.loads(invoke("check", "alice", files / "q3.png", "--json").stdout)["note"] is None
    table = list(csv.DictReader(io.StringIO(invoke("identify", files / "w3" / "0.png", "--format", "csv").stdout)))
    assert "same scan" in table[0]["note"]
    assert "note: the same scan" in invoke("check", "alice", files / "w3" / "0.png").stdout


def test_check_document_reads_a_large_pdf_page_at_a_lower_dpi(files):
    """A page too large at 200 dpi (a photo saved as a low-resolution PDF) is refused naming the
    dpi; `--dpi` reads it smaller. Without --document, --dpi has nothing to read."""
    from signver import synth_pages

    from .documents import pdf

    (files / "big.pdf").write_bytes(pdf(synth_pages.page(0, signatures=1).image, dpi=15))  # 640 pixels: 43 inches a side
    assert invoke("enroll", "alice", files / "w3").exit_code == 0
    refused = invoke("check", "alice", files / "big.pdf", "--document")
    assert refused.exit_code == 2 and "rendered at 200 dpi: a lower dpi" in refused.output
    read = invoke("check", "alice", files / "big.pdf", "--document", "--dpi", "50", "--json")
    assert read.exit_code in (0, 1) and all("error" not in json.loads(line) for line in read.stdout.splitlines()), read.output
    alone = invoke("check", "alice", files / "q3.png", "--dpi", "50")
    assert alone.exit_code == 2 and "give --document too" in alone.output


def test_identify_document_searches_for_each_signature_on_a_page(files):
    from signver import synth_pages

    made, (x0, y0, x1, y1) = signed_pages(files)
    assert invoke("enroll", "alice", files / "crop.png").exit_code == 0
    assert invoke("enroll", "bob", files / "w5").exit_code == 0

    found = invoke("identify", files / "page.png", "--document", "-k", "2", "--format", "jsonl")
    rows = [json.loads(line) for line in found.stdout.splitlines()]
    assert found.exit_code == 0 and [(r["rank"], r["person_id"]) for r in rows] == [(1, "alice"), (2, "bob")], found.output
    assert rows[0]["verified"] and rows[0]["page"] == 0 and abs(rows[0]["box"][0] - x0) < 0.2 * (x1 - x0)
    text = invoke("identify", files / "page.png", "--document", "-k", "1").stdout
    assert "page.png page 0 at (" in text and "\t1\talice\tmatch\tdistance" in text and "(threshold" in text
    from .documents import pdf

    (files / "two-pages.pdf").write_bytes(pdf(synth_pages.page(0, signatures=0).image, made.image, dpi=200))
    pages = [json.loads(line) for line in invoke("identify", files / "two-pages.pdf", "--document", "-k", "1", "--json").stdout.splitlines()]
    assert [(r["page"], r["person_id"], r["verified"]) for r in pages] == [(1, "alice", True)]
    nothing = invoke("identify", files / "blank-page.png", files / "bad.png", "--document", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(nothing.stdout)))
    assert nothing.exit_code == 2 and table[0]["note"] == "no signature found" and table[1]["error"]


def test_a_signature_not_verified_under_coloured_marks_gets_a_hint_of_dropout(files):
    """A red stamp over a signature reads as ink: where the claim fails, a note names the colour
    and --dropout; with --dropout given, or on a grey scan, there is none."""
    from .documents import red_stamped

    Image.fromarray(red_stamped(synth.genuine(3, 9))).save(files / "q3-stamped.png")
    assert invoke("enroll", "alice", files / "w3").exit_code == 0
    stamped = json.loads(invoke("check", "alice", files / "q3-stamped.png", "--json", "--threshold", "0.01").stdout)
    assert not stamped["verified"] and "holds red marks" in stamped["note"] and "--dropout red" in stamped["note"]
    assert json.loads(invoke("check", "alice", files / "q3.png", "--json", "--threshold", "0.01").stdout)["note"] is None
    dropped = json.loads(invoke("check", "alice", files / "q3-stamped.png", "--json", "--threshold", "0.01", "--dropout", "red").stdout)
    assert dropped["note"] is None
    assert "holds red marks" in invoke("verify", files / "w3" / "0.png", files / "q3-stamped.png", "--threshold", "0.01").stdout
