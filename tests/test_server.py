"""The HTTP API: every route on synthetic data, API keys, limits, bad inputs, offline docs."""

import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import cv2
import httpx
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from signver import synth  # noqa: E402
from signver.errors import InputError, ModelError  # noqa: E402
from signver.server import Settings, create_app  # noqa: E402
from signver.server.app import ServiceError, _Service  # noqa: E402

from .documents import StandInCleaner, StandInDetector, free_port, page_with_signatures, pdf, png, png_header_only, red_stamped  # noqa: E402

ALICE, BOB = 3, 5
KEY = "test-key-123"


@pytest.fixture(scope="module")
def document():
    return page_with_signatures([(ALICE, 9), (BOB, 9)])


def make_client(tmp_path, document, **settings) -> TestClient:
    page, boxes = document
    settings.setdefault("detector", StandInDetector(boxes))
    app = create_app(tmp_path / "gallery.sqlite", **settings)
    return TestClient(app, raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path, document):
    with make_client(tmp_path, document, cleaner=StandInCleaner(), clean=False) as c:
        yield c


def sig(writer: int, sample: int, name: str = "s.png"):
    return (name, png(synth.genuine(writer, sample)), "image/png")


def enrol(client, person_id="alice", writer=ALICE, headers=None, **data):
    files = [("images", sig(writer, s, f"{s}.png")) for s in range(4)]
    return client.post("/v1/people", data={"person_id": person_id, **data}, files=files, headers=headers or {})


def assert_error(response, status: int, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str) and body["type"]
    for word in words:
        assert word in body["error"], body
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


def test_gallery_errors_do_not_tell_clients_where_the_gallery_is(client, tmp_path):
    """A damaged gallery is the service's problem to report to its clients, not its file's path."""
    import sqlite3

    enrol(client)
    with sqlite3.connect(tmp_path / "gallery.sqlite") as db:
        db.execute("UPDATE refs SET vector = x'00' WHERE person_id = 'alice'")
    db.close()
    body = assert_error(client.post("/v1/people/alice/verify", files={"image": sig(ALICE, 9)}), 409, "the gallery is damaged: stored reference")
    assert str(tmp_path) not in body["error"]


@pytest.mark.parametrize("name", ["gallery", "g"])
def test_a_short_gallery_path_leaves_other_words_of_an_error_alone(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with TestClient(create_app(name), raise_server_exceptions=False) as c:
        body = assert_error(c.get("/v1/people/greg"), 404, "no person 'greg'")
    assert "the gallery file" not in body["error"] and str(tmp_path) not in body["error"]


def test_head_is_answered_as_get_and_405_lists_every_method(client):
    head = client.head("/v1/health")
    assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    assert client.head("/").status_code == 200
    refused = assert_error(client.put("/v1/people"), 405, "allowed: GET, HEAD, POST")
    assert refused and client.put("/v1/people").headers["allow"] == "GET, HEAD, POST"


def test_claims_answer_while_an_enrolment_waits_for_another_process(tmp_path, document):
    """An enrolment waiting for another process's write lock took a worker slot, so with one
    worker every claim and search waited for it too."""
    import sqlite3

    with make_client(tmp_path, document, workers=1) as c:
        assert enrol(c).status_code == 201
        holder = sqlite3.connect(tmp_path / "gallery.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        answers = []
        waiting = threading.Thread(target=lambda: answers.append(enrol(c, "bob", BOB).status_code))
        waiting.start()
        time.sleep(0.5)
        started = time.monotonic()
        claim = c.post("/v1/people/alice/verify", files={"image": sig(ALICE, 9)})
        assert claim.status_code == 200 and time.monotonic() - started < 10 and waiting.is_alive()
        holder.execute("ROLLBACK")
        holder.close()
        waiting.join(timeout=30)
        assert answers == [201]


def test_removals_waiting_for_another_process_leave_threads_for_reads(tmp_path, document, monkeypatch):
    """Removals waiting for another process's write lock run in the writes' own threads (at
    most `workers`): health checks and listings answer meanwhile, and each removal ends."""
    import sqlite3

    monkeypatch.setattr("signver.gallery.BUSY_TIMEOUT", 3)
    with make_client(tmp_path, document, workers=1) as c:
        assert enrol(c).status_code == 201
        holder = sqlite3.connect(tmp_path / "gallery.sqlite", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        answers = []
        removals = [threading.Thread(target=lambda: answers.append(c.delete("/v1/people/alice").status_code)) for _ in range(45)]
        for removal in removals:
            removal.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert c.get("/v1/health").status_code == 200 and c.get("/v1/people").status_code == 200
        assert time.monotonic() - started < 2.5
        holder.execute("ROLLBACK")
        holder.close()
        for removal in removals:
            removal.join(timeout=60)
        assert answers.count(200) == 1 and set(answers) <= {200, 404} and len(answers) == 45  # one removed, once the lock is free


def test_enrolling_a_scan_another_person_holds_is_noted(client):
    assert enrol(client).json()["note"] is None
    again = client.post("/v1/people", data={"person_id": "alicia"}, files=[("images", sig(ALICE, 2, "2.png"))])
    assert again.status_code == 201 and "'alicia' now holds the same scan as 'alice'" in again.json()["note"]


def test_health(client):
    enrol(client)
    health = client.get("/v1/health").json()
    assert health["status"] == "ok"
    assert health["models"]["extractor"]["loaded"] and health["models"]["detector"] == {"name": "stand-in-detector", "loaded": True}
    assert health["gallery"] == {"people": 1, "references": 4, "model": health["models"]["extractor"]["name"]}
    assert health["auth"] == {"writes": False, "reads": False}
    assert health["clean"] == {"signatures": False, "documents": False}  # the client's service is set not to clean


def test_health_says_what_a_request_that_does_not_ask_gets_cleaned(tmp_path, document):
    with make_client(tmp_path, document, cleaner=StandInCleaner(), clean=True) as c:
        assert c.get("/v1/health").json()["clean"] == {"signatures": True, "documents": True}


def test_verify_two_signatures(client):
    same = client.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)})
    assert same.status_code == 200, same.text
    result = same.json()
    assert result["verified"] and 0 <= result["distance"] <= result["threshold"] and 0.5 < result["confidence"] <= 1
    assert {"load", "embed", "total"} <= set(result["timings_ms"])
    other = client.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(BOB, 0)}, data={"threshold": "0.01"}).json()
    assert not other["verified"] and other["threshold"] == 0.01


def test_embed(client):
    result = client.post("/v1/embed", files={"image": sig(ALICE, 0)}).json()
    vector = np.array(result["embedding"])
    assert len(vector) == result["dimension"] and abs(np.linalg.norm(vector) - 1) < 1e-4


def test_detect_boxes_per_page(client, document):
    page, boxes = document
    found = client.post("/v1/detect", files={"document": ("doc.pdf", pdf(page, page, dpi=100), "application/pdf")}).json()
    assert found["count"] == 4 and [p["page"] for p in found["pages"]] == [0, 1]
    first = found["pages"][0]
    assert first["width"] == pytest.approx(2 * page.shape[1], abs=2) and len(first["boxes"]) == 2
    assert first["boxes"][0]["x0"] == pytest.approx(boxes[0][0] * first["width"], abs=0.5)
    assert "image" not in first
    shown = client.post("/v1/detect", files={"document": ("p.png", png(page))}, data={"previews": "true"}).json()
    assert shown["pages"][0]["image"].startswith("data:image/png;base64,")


def test_document_routes_read_pdf_pages_at_the_dpi_asked(client, document):
    """A PDF page too large at the service's 200 dpi is refused naming the dpi field, which the
    document routes take; a dpi under 50 is refused naming it."""
    page, _ = document
    big = pdf(np.full((100, 150), 255, np.uint8), dpi=3)  # 33 x 50 inches: 66 megapixels at 200 dpi
    assert_error(client.post("/v1/detect", files={"document": ("big.pdf", big, "application/pdf")}), 413, "dpi= in Python and in the service")
    smaller = client.post("/v1/detect", files={"document": ("big.pdf", big, "application/pdf")}, data={"dpi": "50"})
    assert smaller.status_code == 200 and smaller.json()["pages"][0]["width"] == pytest.approx(2500, abs=2)
    enrol(client)
    read = client.post("/v1/documents/verify", files={"document": ("page.pdf", pdf(page, dpi=100), "application/pdf")},
                       data={"person_id": "alice", "dpi": "100", "dropout": "red"})
    assert read.status_code == 200 and read.json()["pages"][0]["width"] == page.shape[1] and read.json()["signatures"][0]["decision"]["verified"]
    assert_error(client.post("/v1/documents/verify", files={"document": ("page.pdf", pdf(page), "application/pdf")}, data={"dpi": "10"}), 400, "dpi")
    boxes = client.post("/v1/detect", files={"document": ("p.png", png(page))}).json()["pages"][0]["boxes"]
    assert [b["note"] for b in boxes] == [None, None]  # upright boxes: nothing to say


def test_a_path_with_a_line_break_reaches_no_one(client):
    """Routes match "/v1/people/bob\n" as bob ("$" matches before a final line break): such a
    path is refused before routing, and bob stays."""
    enrol(client, "bob", BOB)
    for method, path in (("DELETE", "/v1/people/bob%0A"), ("GET", "/v1/people/bob%0A"), ("GET", "/v1/people/%0A"),
                         ("POST", "/v1/people/bob%0D/verify")):
        assert_error(client.request(method, path), 400, "control character")
    assert client.get("/v1/people/bob").status_code == 200


def test_an_upload_that_is_not_plainly_one_signature_gets_a_note_naming_it(client, document):
    """A page, a signature on its side or a file of several pages, sent as one signature, is
    read as one (its first page), with a note naming the upload, as the command line notes a file."""
    page, _ = document
    tall = ("tall.png", png(np.ascontiguousarray(np.rot90(synth.genuine(ALICE, 1)))), "image/png")
    pages = ("pages.pdf", pdf(synth.genuine(ALICE, 2), synth.genuine(ALICE, 3)), "application/pdf")
    refused = client.post("/v1/people", data={"person_id": "alice"}, files=[("images", sig(ALICE, 0)), ("images", pages)])
    assert_error(refused, 400, "field 'images[1]' (pages.pdf): of several pages", "nothing was enrolled", "any_shape=true")
    assert client.get("/v1/people/alice").status_code == 404
    enrolled = client.post("/v1/people", data={"person_id": "alice", "any_shape": "true"}, files=[("images", sig(ALICE, 0)), ("images", pages)]).json()
    assert enrolled["note"].startswith("field 'images[1]' (pages.pdf): of several pages or frames, only the first is read")
    claim = client.post("/v1/people/alice/verify", files={"image": tall}).json()
    assert claim["note"].startswith("field 'image' (tall.png): taller than wide, as a signature is not") and "/v1/documents/verify" in claim["note"]
    pair = client.post("/v1/verify", files={"a": ("page.png", png(page), "image/png"), "b": sig(ALICE, 1)}).json()
    assert pair["note"].startswith("field 'a' (page.png): taller than wide")
    assert client.post("/v1/identify", files={"image": pages}).json()["note"].startswith("field 'image' (pages.pdf): of several pages")
    assert client.post("/v1/people/alice/verify", files={"image": sig(ALICE, 4)}).json()["note"] is None  # one upright signature


def test_an_id_too_long_gets_one_message_at_any_length(client):
    for length in (300, 900, 5000):
        assert_error(client.post("/v1/people", data={"person_id": "x" * length}, files=[("images", sig(ALICE, 0))]), 400, "at most 200 characters")
        assert_error(client.get("/v1/people/" + "x" * length), 404, "no person")


def test_clean_returns_a_png(client):
    response = client.post("/v1/clean", files={"image": sig(ALICE, 0)})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    cleaned = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert cleaned.shape == synth.genuine(ALICE, 0).shape


def test_clean_without_a_cleaner_model_is_503(tmp_path, document, monkeypatch):
    def not_installed(model):
        raise ModelError("no model file")

    monkeypatch.setattr("signver.pipeline._load_cleaner", not_installed)
    with make_client(tmp_path, document) as c:
        assert_error(c.post("/v1/clean", files={"image": sig(ALICE, 0)}), 503, "cleaner")
        assert c.get("/v1/health").json()["models"]["cleaner"]["loaded"] is False
        assert c.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)}).status_code == 200  # default: no cleaning
        assert_error(c.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)}, data={"clean": "true"}), 503, "cleaner")
    with make_client(tmp_path / "set-to-clean", document, clean=True) as c:  # set to clean without a cleaner: health still answers
        health = c.get("/v1/health")
        assert health.status_code == 200 and health.json()["clean"] == {"signatures": True, "documents": True}
        assert_error(c.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)}), 503, "cleaner")


def test_gallery_routes(client):
    created = enrol(client, metadata='{"branch": "north"}')
    assert created.status_code == 201, created.text
    assert created.json() | {"enrolled_at": None} == {"person_id": "alice", "references": 4, "metadata": {"branch": "north"},
                                                      "enrolled_at": None, "added": 4, "note": None}
    assert enrol(client, "bob", BOB).status_code == 201
    listed = client.get("/v1/people").json()
    assert listed["count"] == 2 and [p["person_id"] for p in listed["people"]] == ["alice", "bob"]
    assert client.get("/v1/people/alice").json()["metadata"] == {"branch": "north"}

    claim = client.post("/v1/people/alice/verify", files={"image": sig(ALICE, 9)}).json()
    assert claim["verified"] and claim["person_id"] == "alice" and claim["person"]["references"] == 4
    assert len(claim["reference_distances"]) == 4
    assert not client.post("/v1/people/alice/verify", files={"image": sig(BOB, 9)}).json()["verified"]

    ranked = client.post("/v1/identify", files={"image": sig(BOB, 9)}, data={"k": "2"}).json()
    assert [c["person_id"] for c in ranked["candidates"]] == ["bob", "alice"] and ranked["candidates"][0]["verified"]

    removed = client.delete("/v1/people/bob")
    assert removed.status_code == 200 and removed.json()["removed"] and removed.json()["references"] == 4
    assert_error(client.get("/v1/people/bob"), 404, "bob")
    assert_error(client.delete("/v1/people/bob"), 404, "bob")
    assert_error(client.post("/v1/people/bob/verify", files={"image": sig(BOB, 9)}), 404, "bob")


def test_document_verification(client, document):
    page, _ = document
    enrol(client)
    enrol(client, "bob", BOB)
    result = client.post("/v1/documents/verify", files={"document": ("page.png", png(page))},
                         data={"person_id": "alice", "previews": "true"}).json()
    assert result["mode"] == "verify" and result["person"]["person_id"] == "alice" and result["verified"]  # hers is on it, beside bob's
    first, second = result["signatures"]
    assert first["decision"]["verified"] and not second["decision"]["verified"]
    assert first["box"]["x1"] > first["box"]["x0"] and first["page"] == 0 and first["score"] == pytest.approx(0.9)
    assert first["image"].startswith("data:image/png") and result["pages"][0]["image"].startswith("data:image/png")
    assert result["timings_ms"]["total"] > 0

    identified = client.post("/v1/documents/verify", files={"document": ("page.pdf", pdf(page), "application/pdf")}).json()
    assert identified["mode"] == "identify" and identified["verified"] is None
    assert [s["candidates"][0]["person_id"] for s in identified["signatures"]] == ["alice", "bob"]
    assert_error(client.post("/v1/documents/verify", files={"document": ("page.png", png(page))}, data={"person_id": "carol"}), 404, "carol")


def test_bad_inputs_are_4xx_json_naming_the_problem(client, document):
    enrol(client)
    assert_error(client.post("/v1/verify", files={"a": ("a.png", b""), "b": sig(ALICE, 1)}), 400, "empty", "'a'")
    assert_error(client.post("/v1/verify", files={"a": sig(ALICE, 0), "b": ("b.png", b"hello, I am text")}), 415, "not an image", "'b'")
    assert_error(client.post("/v1/verify", files={"a": sig(ALICE, 0), "b": ("b.png", b"PK\x03\x04zipzip")}), 415, "ZIP")
    assert_error(client.post("/v1/embed", files={"image": ("bomb.png", png_header_only(100_000, 100_000))}), 413, "pixels")
    assert_error(client.post("/v1/embed", files={"image": ("cut.png", png(synth.genuine(ALICE, 0))[:200])}), 400, "corrupt")
    assert_error(client.post("/v1/embed", files={"image": ("white.png", png(np.full((50, 80), 255, np.uint8)))}), 422, "blank")
    white = ("white.png", png(np.full((50, 80), 255, np.uint8)), "image/png")
    assert_error(client.post("/v1/verify", files={"a": sig(ALICE, 0), "b": white}), 422, "field 'b' (white.png): blank")  # which of two
    nan = io.BytesIO()
    Image.fromarray(np.where(synth.genuine(ALICE, 0) > 0, np.float32(np.nan), np.float32(0))).save(nan, format="TIFF")
    assert_error(client.post("/v1/people", data={"person_id": "bob"}, files=[("images", sig(BOB, 0, "ok.png")), ("images", ("nan.tif", nan.getvalue()))]),
                 400, "field 'images[1]' (nan.tif): the image holds pixels that are not numbers")
    twice = [("document", ("a.png", png(synth.genuine(ALICE, 0)), "image/png")), ("document", ("b.png", png(synth.genuine(BOB, 0)), "image/png"))]
    for route in ("/v1/detect", "/v1/documents/verify"):  # FastAPI alone would keep b.png and drop a.png
        assert_error(client.post(route, files=twice), 400, "field 'document' was sent 2 times")
    assert_error(client.post("/v1/verify", files=[("a", sig(ALICE, 0)), ("b", sig(ALICE, 1)), ("b", sig(BOB, 1))]), 400, "'b' was sent 2 times")
    assert_error(client.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)}, data={"threshold": ["0.1", "1.9"]}), 400,
                 "'threshold' was sent 2 times")
    people_before = client.get("/v1/people").json()
    assert_error(client.post("/v1/people", data={"person_id": ["alice", "bob"]}, files=[("images", sig(BOB, 0))]), 400,
                 "'person_id' was sent 2 times")  # FastAPI alone enrolled "bob"
    assert client.get("/v1/people").json() == people_before
    for blank in ("", " "):  # not a request to identify, which leaves the field out
        assert_error(client.post("/v1/documents/verify", files=twice[:1], data={"person_id": blank}), 400, "'person_id' is empty")
        assert_error(client.post("/v1/people", data={"person_id": blank}, files=[("images", sig(BOB, 0))]), 400,
                     "'person_id' is empty")  # an empty field was "missing" here, a blank one another message
    assert_error(client.post("/v1/verify", files={"b": sig(ALICE, 1)}, data={"a": "text"}), 422,
                 "field 'a': must be a file upload")  # "Value error, Expected UploadFile, received: <class 'str'>"
    blank_second = [("images", sig(BOB, 0, "ok.png")), ("images", ("white.png", png(np.full((50, 80), 255, np.uint8)), "image/png"))]
    assert_error(client.post("/v1/people", data={"person_id": "bob"}, files=blank_second), 422, "field 'images[1]' (white.png): blank")
    missing = assert_error(client.post("/v1/verify", files={"a": sig(ALICE, 0)}), 422, "missing field 'b'")
    assert missing["fields"] == [{"field": "b", "problem": "missing"}]
    assert_error(client.post("/v1/verify", data={"clean": "false"}), 422, "'a'", "'b'")
    # what FastAPI alone drops without a word: a field the route does not take, a query parameter
    assert_error(client.post("/v1/verify", data={"x": "1"}), 400, "field 'x' is not taken by POST /v1/verify", "a, b, clean, dropout, threshold")
    assert_error(client.post("/v1/people/alice/verify", files={"image": sig(ALICE, 0)}, data={"threshold": "0.01"}), 400,
                 "field 'threshold' is not taken", "clean, dropout, image")
    assert_error(client.post("/v1/identify?k=1", files={"image": sig(ALICE, 0)}), 400, "query parameter 'k'", "form fields")
    assert_error(client.get("/v1/people?limit=1"), 400, "query parameter 'limit'")
    assert_error(client.post("/v1/identify", files={"image": sig(ALICE, 0)}, data={"k": "0"}), 422, "'k'")
    assert_error(client.post("/v1/identify", files={"image": sig(ALICE, 0)}, data={"k": "many"}), 422, "'k'")
    assert_error(client.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)}, data={"threshold": "nan"}), 422, "'threshold': must be a number, not NaN")
    assert_error(enrol(client, metadata="{not json"), 400, "metadata")
    assert_error(enrol(client, metadata="[1, 2]"), 400, "metadata")
    assert_error(enrol(client, metadata="[" * 5000), 400, "metadata")
    assert_error(enrol(client, metadata='{"a": ' + "9" * 5000 + "}"), 400, "metadata")
    assert_error(enrol(client, metadata='{"a": ' * 300 + "1" + "}" * 300), 400, "nested more than 32")  # JSON reads it; the reply could not be written
    assert_error(client.post("/v1/people", data={"person_id": "x"}), 422, "'images'")
    assert_error(client.post("/v1/people", data={"person_id": "x\x01y"}, files=[("images", sig(ALICE, 0))]), 400, "person id")
    assert_error(client.post("/v1/verify", content=b"{}", headers={"content-type": "application/json"}), 422, "'a'")
    assert_error(client.post("/v1/verify", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"}), 422, "'a'")
    assert_error(client.get("/v1/nowhere"), 404, "/v1/nowhere")
    assert_error(client.put("/v1/verify"), 405)
    pdf_page = pdf(np.full((100, 100), 255, np.uint8), dpi=1)  # a 100-inch page: too many pixels at 200 dpi
    assert_error(client.post("/v1/detect", files={"document": ("big.pdf", pdf_page)}), 413, "pixels")


def test_request_body_limit(tmp_path, document):
    with make_client(tmp_path, document, max_upload_bytes=50_000) as c:
        big = ("big.png", os.urandom(60_000), "image/png")
        assert_error(c.post("/v1/embed", files={"image": big}), 413, "50000")
        streamed = iter([b"--x\r\n" + b"y" * 30_000, b"y" * 30_000])  # chunked: no Content-Length to go by
        assert_error(c.post("/v1/embed", content=streamed, headers={"content-type": "multipart/form-data; boundary=x"}), 413, "50000")
        assert c.post("/v1/embed", files={"image": sig(ALICE, 0)}).status_code == 200


def test_no_stack_trace_in_500(tmp_path, document):
    page, boxes = document
    broken = StandInDetector(boxes, fail=RuntimeError("secret internals at /srv/x.py line 3"))
    with make_client(tmp_path, document, detector=broken) as c:
        response = c.post("/v1/detect", files={"document": ("p.png", png(page))})
        body = assert_error(response, 500)
        assert body == {"error": "internal error", "type": "InternalError"} and "secret" not in response.text


def test_timeout_is_503(tmp_path, document):
    page, boxes = document
    with make_client(tmp_path, document, detector=StandInDetector(boxes, delay_s=3), timeout_s=0.5) as c:
        started = time.monotonic()
        assert_error(c.post("/v1/detect", files={"document": ("p.png", png(page))}), 503, "0.5 s")
        assert time.monotonic() - started < 2.5


def test_person_ids_with_a_slash_can_be_read_checked_and_removed(client):
    assert enrol(client, "branch/7/alice").status_code == 201
    assert client.get("/v1/people/branch%2F7%2Falice").json()["references"] == 4
    assert client.get("/v1/people/").json()["count"] == 1
    assert client.post("/v1/people/branch%2F7%2Falice/verify", files={"image": sig(ALICE, 9)}).json()["verified"]
    assert client.delete("/v1/people/branch%2F7%2Falice").json()["removed"]
    assert_error(client.get("/v1/people/branch%2F7%2Falice"), 404, "branch/7/alice")


def test_enrolling_a_reference_again_is_409_and_stores_nothing(client):
    assert enrol(client).status_code == 201
    again = client.post("/v1/people", data={"person_id": "alice"}, files=[("images", sig(ALICE, 5, "new.png")), ("images", sig(ALICE, 0, "0.png"))])
    assert_error(again, 409, "0.png", "same signature", "nothing was enrolled")
    assert client.get("/v1/people/alice").json()["references"] == 4


def test_metadata_that_is_not_strict_json_is_400(client):
    assert_error(enrol(client, metadata='{"score": NaN}'), 400, "strict JSON")
    assert client.get("/v1/people").json()["count"] == 0


def test_enrolment_answered_503_stores_nothing(tmp_path, document, monkeypatch):
    """The embedding of a timed-out enrolment finishes in the background; it must not then be
    written, or a client's retry would enrol the references twice."""
    from signver.pipeline import Pipeline

    embedded = threading.Event()
    real = Pipeline.enrollment_vectors

    def slow_then_done(self, *args, **kwargs):
        time.sleep(0.3)
        try:
            return real(self, *args, **kwargs)
        finally:
            embedded.set()

    monkeypatch.setattr(Pipeline, "enrollment_vectors", slow_then_done)
    with make_client(tmp_path, document, timeout_s=0.1) as c:
        assert_error(enrol(c), 503, "limit")
        assert embedded.wait(30)
        time.sleep(0.2)  # a write, were one coming, follows the embedding at once
        assert c.get("/v1/people").json()["count"] == 0


def test_api_key_guards_writes(tmp_path, document):
    with make_client(tmp_path, document, api_key=KEY) as c:
        assert c.get("/v1/health").json()["auth"] == {"writes": True, "reads": False}
        assert_error(enrol(c), 401, "X-API-Key")
        assert_error(enrol(c, headers={"X-API-Key": "wrong"}), 401, "wrong")
        assert_error(enrol(c, nickname="x"), 401, "X-API-Key")  # the key before the fields: no field names for a caller without it
        assert enrol(c, headers={"X-API-Key": KEY}).status_code == 201
        assert_error(c.delete("/v1/people/alice"), 401)
        # reads are open unless protect_reads
        assert c.get("/v1/people").status_code == 200
        assert c.post("/v1/people/alice/verify", files={"image": sig(ALICE, 9)}).status_code == 200
        assert c.delete("/v1/people/alice", headers={"X-API-Key": KEY}).status_code == 200
    with make_client(tmp_path, document, api_key=KEY, protect_reads=True) as c:
        assert c.get("/v1/health").status_code == 200
        assert_error(c.get("/v1/people"), 401)
        assert_error(c.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)}), 401)
        assert c.get("/v1/people", headers={"X-API-Key": KEY}).status_code == 200


def test_cors_off_by_default_and_security_headers(tmp_path, document):
    origin = {"Origin": "http://elsewhere.test"}
    with make_client(tmp_path, document) as c:
        response = c.get("/v1/health", headers=origin)
        assert "access-control-allow-origin" not in response.headers
        assert response.headers["x-content-type-options"] == "nosniff" and "frame-ancestors 'none'" in response.headers["content-security-policy"]
        preflight = c.options("/v1/verify", headers={**origin, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in preflight.headers
    with make_client(tmp_path, document, cors_origins=("http://elsewhere.test",)) as c:
        assert c.get("/v1/health", headers=origin).headers["access-control-allow-origin"] == "http://elsewhere.test"


def test_openapi_docs_are_served_locally(client):
    schema = client.get("/openapi.json").json()
    routes = {(method.upper(), path) for path, ops in schema["paths"].items() for method in ops}
    assert routes >= {("GET", "/v1/health"), ("POST", "/v1/verify"), ("POST", "/v1/embed"), ("POST", "/v1/detect"),
                      ("POST", "/v1/clean"), ("POST", "/v1/people"), ("GET", "/v1/people"), ("GET", "/v1/people/{person_id}"),
                      ("DELETE", "/v1/people/{person_id}"), ("POST", "/v1/people/{person_id}/verify"),
                      ("POST", "/v1/identify"), ("POST", "/v1/documents/verify")}
    docs = client.get("/docs")
    assert docs.status_code == 200
    urls = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert urls and all(u.startswith("/") for u in urls), urls  # nothing from another host
    for url in urls:
        assert client.get(url).status_code == 200, url
    page = client.get("/")
    assert page.status_code == 200 and "<h1>signver</h1>" in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200


def test_openapi_schema_names_the_errors_and_the_key_only_where_needed(tmp_path, document):
    with make_client(tmp_path, document) as c:
        schema = c.get("/openapi.json").json()
        identify = schema["paths"]["/v1/identify"]["post"]
        assert {"400", "404", "413", "415", "422", "503"} <= set(identify["responses"])
        assert identify["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
        assert set(schema["components"]["schemas"]["ErrorBody"]["properties"]) == {"error", "type", "fields"}
        assert all("security" not in op and "401" not in op["responses"] for ops in schema["paths"].values() for op in ops.values())
    with make_client(tmp_path, document, api_key="k") as c:
        schema = c.get("/openapi.json").json()
        paths = schema["paths"]
        assert "security" in paths["/v1/people"]["post"] and "401" in paths["/v1/people"]["post"]["responses"]
        assert "security" not in paths["/v1/identify"]["post"] and "401" not in paths["/v1/identify"]["post"]["responses"]
        assert "Writes need the `X-API-Key` header" in schema["info"]["description"]
    with make_client(tmp_path, document, api_key="k", protect_reads=True) as c:
        schema = c.get("/openapi.json").json()
        assert "security" in schema["paths"]["/v1/identify"]["post"] and "401" in schema["paths"]["/v1/clean"]["post"]["responses"]
        assert "Every /v1 route but /v1/health needs" in schema["info"]["description"]


def test_work_over_time_keeps_its_worker_slot(tmp_path):
    """A request answered 503 leaves its thread running (threads cannot be killed): the next
    request must wait for that thread rather than run beside it, past the `workers` limit."""
    service = _Service(Settings(workers=1, timeout_s=0.3), pipeline=None)
    spans = {}

    def work(name, seconds):
        began = time.monotonic()
        time.sleep(seconds)
        spans[name] = (began, time.monotonic())
        return name

    async def both():
        with pytest.raises(ServiceError, match="longer than"):
            await service.compute(work, "slow", 0.8)
        return await service.compute(work, "next", 0.0)

    with pytest.raises(ServiceError):  # "next" waits for "slow" past its own limit, and never runs
        anyio.run(both)
    time.sleep(0.8)
    assert "slow" in spans and "next" not in spans
    service = _Service(Settings(workers=1, timeout_s=2.0), pipeline=None)
    assert anyio.run(service.compute, work, "alone", 0.0) == "alone"


def test_settings_from_environment(tmp_path):
    settings = Settings.from_env({"SIGNVER_API_KEY": "k", "SIGNVER_MAX_UPLOAD_MB": "2", "SIGNVER_CORS_ORIGINS": "http://a, http://b",
                                  "SIGNVER_PROTECT_READS": "yes", "SIGNVER_TIMEOUT_S": "5"}, timeout_s=7)
    assert settings.api_key == "k" and settings.max_upload_bytes == 2 * 1024 * 1024 and settings.protect_reads
    assert settings.cors_origins == ("http://a", "http://b") and settings.timeout_s == 7
    with pytest.raises(Exception, match="SIGNVER_WORKERS"):
        Settings.from_env({"SIGNVER_WORKERS": "lots"})
    with pytest.raises(InputError, match="SIGNVER_MAX_UPLOAD_MB"):
        Settings.from_env({"SIGNVER_MAX_UPLOAD_MB": "inf"})
    assert not settings.spin_wait and Settings.from_env({"SIGNVER_SPIN_WAIT": "1"}).spin_wait
    for bad in ({"timeout_s": float("nan")}, {"timeout_s": 0}, {"timeout_s": float("inf")}, {"body_timeout_s": -1}, {"max_pages": 0}, {"max_pixels": -5}):
        with pytest.raises(InputError, match="positive numbers"):
            create_app(tmp_path / "g.sqlite", **bad)
    # limits that could not hold: a read past 2**63 bytes overflows, Pillow refuses images past its own bound
    for bad, words in (({"max_upload_bytes": 9 * 10**18}, r"max_upload_bytes \(SIGNVER_MAX_UPLOAD_MB\) must be at most"),
                       ({"max_pixels": 200_000_000}, r"max_pixels \(SIGNVER_MAX_PIXELS\) must be at most .*decompression bombs")):
        with pytest.raises(InputError, match=words):
            create_app(tmp_path / "refused" / "g.sqlite", **bad)
    assert not (tmp_path / "refused").exists()  # refused before the gallery is made
    for key in ("pässwörd", "two\nlines", " padded "):  # a header cannot carry them the same way from every client
        with pytest.raises(InputError, match="printable ASCII"):
            create_app(tmp_path / "g.sqlite", api_key=key)
    assert Settings.from_env({"SIGNVER_DROPOUT": "Red"}).dropout == "red"
    with pytest.raises(InputError, match="SIGNVER_DROPOUT='pink' is not valid: dropout must be one of red, green, blue"):
        Settings.from_env({"SIGNVER_DROPOUT": "pink"})
    with pytest.raises(InputError, match="dropout must be one of"):
        create_app(tmp_path / "dropout.sqlite", dropout="pink")
    assert not (tmp_path / "dropout.sqlite").exists()  # refused before the gallery is made


def test_a_service_with_dropout_reads_red_stamped_uploads_as_the_plain_ones(tmp_path, document):
    stamped = ("s.png", png(red_stamped(synth.genuine(ALICE, 1))), "image/png")
    with make_client(tmp_path, document, dropout="red") as dropping:
        assert dropping.get("/v1/health").json()["dropout"] == "red"
        plain = dropping.post("/v1/verify", files={"a": sig(ALICE, 0), "b": sig(ALICE, 1)}).json()
        dropped = dropping.post("/v1/verify", files={"a": sig(ALICE, 0), "b": stamped}).json()
        assert dropped["distance"] == pytest.approx(plain["distance"], abs=1e-5)
    with make_client(tmp_path, document) as grey:
        assert grey.get("/v1/health").json()["dropout"] is None
        assert grey.post("/v1/verify", files={"a": sig(ALICE, 0), "b": stamped}).json()["distance"] > plain["distance"] + 0.05
        asked = grey.post("/v1/verify", files={"a": sig(ALICE, 0), "b": stamped}, data={"dropout": "red"}).json()  # one request asks
        assert asked["distance"] == pytest.approx(plain["distance"], abs=1e-5)
        assert_error(grey.post("/v1/verify", files={"a": sig(ALICE, 0), "b": stamped}, data={"dropout": "pink"}), 422, "dropout", "red")
    with make_client(tmp_path, document, dropout="red") as dropping:  # a request may read as grey where the service would not
        assert dropping.post("/v1/verify", files={"a": sig(ALICE, 0), "b": stamped}, data={"dropout": "none"}).json()["distance"] > plain["distance"] + 0.05


@pytest.mark.parametrize("route", ["/v1/embed", "/v1/clean", "/v1/identify", "/v1/detect", "/v1/documents/verify", "/v1/people",
                                   "/v1/people/alice/verify"])
def test_every_route_that_reads_an_upload_reads_it_without_the_colour_asked(client, document, route):
    """A red-stamped upload with dropout=red gets the answer the plain upload gets."""
    enrol(client)
    page, _ = document
    plain = page if route in ("/v1/detect", "/v1/documents/verify") else synth.genuine(ALICE, 1)
    field = {"/v1/detect": "document", "/v1/documents/verify": "document", "/v1/people": "images"}.get(route, "image")
    extra = {"/v1/people": {"person_id": "bob"}, "/v1/detect": {"previews": "true"}, "/v1/documents/verify": {"person_id": "alice"}}.get(route, {})

    def answer(image, **data):
        response = client.post(route, files={field: ("s.png", png(image), "image/png")}, data={**extra, **data})
        assert response.status_code in (200, 201, 409), response.text
        return response.content if route == "/v1/clean" else _without_timings(response.json())

    dropped = answer(red_stamped(plain), dropout="red")
    if route == "/v1/people":  # bob was enrolled from the stamped upload: the plain one is the same signature
        assert dropped["references"] == 1 and "same signature" in answer(plain)["error"]
    else:
        assert dropped == answer(plain) != answer(red_stamped(plain))
    assert_error(client.post(route, files={field: ("s.png", png(plain), "image/png")}, data={**extra, "dropout": "violet"}), 422, "dropout")


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in ("timings_ms", "enrolled_at")}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return round(value, 4) if isinstance(value, float) else value


def test_the_service_stops_onnxruntime_threads_spinning(tmp_path):
    """Concurrent requests would starve each other; a caller in its own process keeps spinning."""
    from signver import models

    key = "session.intra_op.allow_spinning"
    models.set_spin_wait(True)  # as a fresh process starts (earlier tests made services)
    spinning = models.inference_session(models.load_card(models.DEFAULT_EXTRACTOR).path)
    assert spinning.get_session_options().get_session_config_entry(key) == "1"
    try:
        create_app(tmp_path / "g.sqlite", api_key=None, detector=None)
        quiet = models.inference_session(models.load_card(models.DEFAULT_EXTRACTOR).path)
        assert quiet.get_session_options().get_session_config_entry(key) == "0"
    finally:
        models.set_spin_wait(True)
    assert models.inference_session(models.load_card(models.DEFAULT_EXTRACTOR).path).get_session_options().get_session_config_entry(key) == "1"


@pytest.mark.parametrize("port", [0, 70000, "8000", True])
def test_serve_refuses_a_port_that_is_not_one(port):
    from signver.server import serve

    with pytest.raises(InputError, match="port must be a whole number from 1 to 65535"):
        serve(port=port)


def test_serve_on_a_port_in_use_is_one_clear_error(tmp_path, capsys):
    import socket

    from signver.server import serve

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InputError, match=f"cannot listen on 127.0.0.1:{port}: .*choose another with --port"):
            serve(port=port, gallery_path=tmp_path / "g.sqlite")
    assert "signver service on" not in capsys.readouterr().out  # no banner for a service that never started


def test_serve_says_who_needs_the_key_and_whether_the_gallery_is_new(tmp_path, monkeypatch, capsys):
    import uvicorn

    from signver.gallery import Gallery
    from signver.server import serve

    monkeypatch.setattr(uvicorn.Server, "run", lambda server, sockets=None: None)  # the banner is printed before the server would start
    with Gallery(tmp_path / "old.sqlite") as g:
        g.enroll("alice", [synth.genuine(ALICE, s) for s in range(2)])
    monkeypatch.setenv("SIGNVER_PROTECT_READS", "1")
    serve(port=8123, gallery_path=tmp_path / "old.sqlite", api_key="k")
    assert "old.sqlite: 1 people; reads and writes need the X-API-Key header" in capsys.readouterr().out
    monkeypatch.setenv("SIGNVER_PROTECT_READS", "0")
    serve(port=8123, gallery_path=tmp_path / "old.sqlite", api_key="k")
    assert "1 people; writes need the X-API-Key header" in capsys.readouterr().out
    monkeypatch.setenv("SIGNVER_PROTECT_READS", "1")
    with pytest.raises(InputError, match="needs an API key"):  # reads would be open while the setting says protected
        serve(port=8123, gallery_path=tmp_path / "old.sqlite")


def test_signver_serve_prints_the_url_and_answers(tmp_path):
    port = free_port()
    command = [str(Path(sys.executable).parent / "signver"), "serve", "--port", str(port), "--gallery", str(tmp_path / "g.sqlite")]
    env = {**os.environ, "SIGNVER_API_KEY": ""}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        first, second = process.stdout.readline(), process.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in first
        assert "a new, empty gallery" in second and "reads and writes are open" in second, second
        deadline = time.monotonic() + 30
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None, process.stderr.read()
                time.sleep(0.2)
        assert health["status"] == "ok" and health["gallery"]["people"] == 0
    finally:
        process.terminate()
        process.wait(timeout=10)
