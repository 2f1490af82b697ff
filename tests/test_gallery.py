"""The gallery: enrolment, claims, 1:N search, persistence, a real kill -9, concurrent readers."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from signver import synth
from signver.errors import DuplicateReferenceError, GalleryBusyError, GalleryError, InputError, PersonNotFoundError
from signver.extractor import get_extractor
from signver.gallery import Gallery
from signver.index import VectorIndex
from signver.matcher import SPREAD_EXPONENT, reference_spread


@pytest.fixture(scope="module")
def people():
    """Four synthetic writers: 4 references and 1 questioned genuine each, and a forgery."""
    return {f"writer-{w}": ([synth.genuine(w, s) for s in range(4)], synth.genuine(w, 9), synth.forgery(w, 0)) for w in (3, 5, 8, 13)}


@pytest.fixture
def gallery(tmp_path, people):
    with Gallery(tmp_path / "g.sqlite") as g:
        for person, (references, _, _) in people.items():
            g.enroll(person, references, metadata={"branch": "test"})
        yield g


def test_enroll_list_get_remove(gallery, people):
    assert [p.person_id for p in gallery.list()] == sorted(people)
    person = gallery.get("writer-3")
    assert person.references == 4 and person.metadata == {"branch": "test"}
    gallery.enroll("writer-3", [synth.genuine(3, 5)])  # adds to the existing person
    assert gallery.get("writer-3").references == 5 and gallery.get("writer-3").metadata == {"branch": "test"}
    removed = gallery.remove("writer-3")
    assert removed.person_id == "writer-3" and len(gallery) == 3
    with pytest.raises(PersonNotFoundError, match="writer-3"):
        gallery.get("writer-3")
    with pytest.raises(PersonNotFoundError):
        gallery.remove("writer-3")
    assert gallery.integrity() == {"sqlite": "ok", "references": 12, "indexed": 12, "people": 3, "orphaned_references": 0}


def test_claims_accept_genuine_and_reject_others(gallery, people):
    for person, (_, questioned, _) in people.items():
        claim = gallery.verify_claim(person, questioned)
        assert claim.verified and claim.distance <= claim.threshold
        assert len(claim.reference_distances) == 4
        rule = gallery.extractor.card.claim_rule("scaled", 4)  # the threshold and confidence fitted for K = 4
        assert claim.threshold == rule.threshold and claim.confidence == pytest.approx(rule.calibration.probability(claim.distance))
        spread = reference_spread(gallery.references(person))  # the references' mean distance to each other
        assert claim.fusion == "scaled" and claim.distance == pytest.approx(min(claim.reference_distances) / spread**SPREAD_EXPONENT, rel=1e-4)
    impostor = people["writer-5"][1]
    assert not gallery.verify_claim("writer-3", impostor).verified
    with pytest.raises(PersonNotFoundError):
        gallery.verify_claim("nobody", impostor)


def test_identify_ranks_the_writer_first(gallery, people):
    for person, (_, questioned, _) in people.items():
        ranked = gallery.identify(questioned, k=3)
        assert ranked[0].person_id == person
        assert len(ranked) == 3 and [r.log10_lr for r in ranked] == sorted((r.log10_lr for r in ranked), reverse=True)
    with pytest.raises(InputError, match="k must be"):
        gallery.identify(people["writer-3"][1], k=0)
    with pytest.raises(InputError, match="a person id is a string"):
        gallery.get(["writer-3"])
    with pytest.raises(InputError, match="source names must be strings"):
        gallery.enroll("writer-3", [people["writer-3"][1]], sources=[None])
    with pytest.raises(InputError, match="a list of names, one per image, not one str"):
        gallery.enroll("writer-3", people["writer-3"][:2], sources="ab")  # once stored as "a" and "b"
    with pytest.raises(InputError, match="non-negative number"):
        Gallery(gallery.path, threshold="0.5")
    for bad in ({"fusion": "bogus"}, {"threshold": -1}, {"index": "x"}):  # refused before any folder is made
        with pytest.raises(InputError):
            Gallery(gallery.path.parent / "new" / "deeper" / "g.sqlite", **bad)
        assert not (gallery.path.parent / "new").exists()


def test_identify_ranks_the_writer_first_among_people_with_fewer_references(tmp_path):
    """A fused distance over three references and a plain distance to one are on different
    scales: ranked by distance, a stranger with one reference came before the writer."""
    with Gallery(tmp_path / "mixed.sqlite") as g:
        for w in range(3, 7):
            g.enroll(f"three-{w}", [synth.genuine(w, s) for s in range(3)])
            g.enroll(f"one-{w}", [synth.genuine(w + 10, 0)])
        for w in range(3, 7):
            ranked = g.identify(synth.genuine(w, 5), k=2)
            assert ranked[0].person_id == f"three-{w}", [(r.person_id, r.distance, r.log10_lr) for r in ranked]
            assert ranked[0].distance > ranked[1].distance  # the order distance alone would have reversed
            assert ranked[0] == replace(g.verify_claim(f"three-{w}", synth.genuine(w, 5)), timings_ms=ranked[0].timings_ms)


def test_identify_gives_the_same_best_answer_whatever_k(tmp_path):
    """Nine strangers with one reference each lie nearer than the writer's three references:
    asked for one candidate, the search must still score the writer, whose claim is far likelier."""
    with Gallery(tmp_path / "k.sqlite") as g:
        basis = np.eye(g.extractor.dimension, dtype=np.float32)

        def at(distance, axis):  # a unit vector `distance` away from basis[0]
            c = 1 - distance**2 / 2
            return (c * basis[0] + np.sqrt(1 - c * c) * basis[axis]).astype(np.float32)

        g.enroll("writer", [at(0.40, 1), at(0.40, 2), at(0.40, 3)])
        for i in range(9):
            g.enroll(f"stranger-{i}", [at(0.30, 10 + i)])
        best = [g.identify(basis[0], k=k)[0] for k in (1, 2, 5, 10)]
        assert [b.person_id for b in best] == ["writer"] * 4 and best[0].verified


def test_identify_ranks_accepted_claims_first():
    """The log-likelihood ratio at each rule's threshold differs a little with the number of
    references, so by ratio alone an accepted claim could follow a rejected one."""
    from signver.gallery import ClaimResult, most_likely_first

    def claim(person, verified, lr):
        return ClaimResult(verified=verified, distance=0.5, threshold=0.6, model="m", confidence=None, log10_lr=lr,
                           timings_ms={}, person_id=person)

    ranked = most_likely_first([claim("rejected", False, 0.20), claim("accepted", True, 0.10), claim("weak", False, -1.0)])
    assert [r.person_id for r in ranked] == ["accepted", "rejected", "weak"]


def test_identify_finds_k_people_when_one_owns_all_the_nearest_references(tmp_path, people, monkeypatch):
    monkeypatch.setattr("signver.gallery.IN_CHUNK", 3)  # SQL lookups in several parts, as for a large gallery
    with Gallery(tmp_path / "many.sqlite") as g:
        g.enroll("prolific", [synth.genuine(3, s) for s in range(20)])
        g.enroll("writer-5", people["writer-5"][0])
        ranked = g.identify(people["writer-3"][1], k=np.int64(2))
        assert [r.person_id for r in ranked] == ["prolific", "writer-5"]
        assert [len(r.reference_distances) for r in ranked] == [20, 4]
        assert [r.person_id for r in g.identify(people["writer-3"][1], k=np.uint8(200))] == ["prolific", "writer-5"]


def test_empty_gallery_identifies_no_one(tmp_path, people):
    with Gallery(tmp_path / "empty.sqlite") as g:
        assert g.identify(people["writer-3"][1]) == [] and g.list() == []


def test_precomputed_embeddings_are_accepted(gallery, people):
    vector = gallery.extractor.vectors([people["writer-8"][1]])[0]
    assert gallery.verify_claim("writer-8", vector).distance == pytest.approx(gallery.verify_claim("writer-8", people["writer-8"][1]).distance, abs=1e-5)
    with pytest.raises(InputError, match="length"):
        gallery.verify_claim("writer-8", np.ones(3, np.float32))


def test_bad_enrolments_change_nothing(gallery):
    before = gallery.integrity()
    with pytest.raises(InputError, match="non-empty"):
        gallery.enroll("", [synth.genuine(1, 0)])
    for odd, named in (("mallory\u2028bob", "LINE SEPARATOR"), ("a\u0085b", "U\\+0085"), ("evil\u202etxt", "RIGHT-TO-LEFT OVERRIDE"), ("x\x01y", "U\\+0001"),
                       ("bob\u200b", "ZERO WIDTH SPACE"), ("bob\u200d", "ZERO WIDTH JOINER"), ("\ufeffbob", "ZERO WIDTH NO-BREAK SPACE"),
                       ("bo\u034fb", "COMBINING GRAPHEME JOINER"), ("bob\ufe0f", "VARIATION SELECTOR-16"), ("\u3164", "HANGUL FILLER"),
                       ("\u0418\u0432\u0430\u043d\u200d", "ZERO WIDTH JOINER"), ("x^\u200dy", "ZERO WIDTH JOINER"),
                       ("bob\U000e0100", "VARIATION SELECTOR-17"), ("bob\u180b", "MONGOLIAN FREE VARIATION SELECTOR ONE"),
                       ("Jos\u00e9\u200c", "ZERO WIDTH NON-JOINER"), ("alice\u2800", "BRAILLE PATTERN BLANK"),
                       ("a\u17b4b", "KHMER VOWEL INHERENT AQ")):
        with pytest.raises(InputError, match=f"must not hold .*{named}"):
            gallery.enroll(odd, [synth.genuine(1, 0)])
    for padded in (" bob", "bob ", "\u00a0bob"):
        with pytest.raises(InputError, match="start or end"):
            gallery.enroll(padded, [synth.genuine(1, 0)])
    for dots in (".", "..", "a/../b", "./a", "a/."):  # a URL drops such parts: /v1/people/.. is /v1/
        with pytest.raises(InputError, match="'.' or '..'"):
            gallery.enroll(dots, [synth.genuine(1, 0)])
    deep = {"a": 1}
    for _ in range(40):  # within what JSON reads, beyond what every encoder on the way writes
        deep = {"a": deep}
    with pytest.raises(InputError, match="nested more than 32"):
        gallery.enroll("someone", [synth.genuine(1, 0)], metadata=deep)
    with pytest.raises(InputError, match="at least one"):
        gallery.enroll("someone", [])
    with pytest.raises(InputError, match="a list of images, not one str"):
        gallery.enroll("someone", "abc")
    with pytest.raises(InputError, match="blank"):  # the second image is bad: the first must not be stored either
        gallery.enroll("someone", [synth.genuine(1, 0), np.full((50, 80), 255, np.uint8)])
    with pytest.raises(InputError, match="JSON"):
        gallery.enroll("someone", [synth.genuine(1, 0)], metadata={"when": object()})
    deep = {}
    for _ in range(5000):
        deep = {"a": deep}
    with pytest.raises(InputError, match="nested more than 32"):
        gallery.enroll("someone", [synth.genuine(1, 0)], metadata=deep)
    assert gallery.integrity() == before


def test_persists_and_refuses_another_model(tmp_path, people):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.enroll("writer-3", people["writer-3"][0])
    with Gallery(path) as g:
        assert g.get("writer-3").references == 4 and g.integrity()["indexed"] == 4
    with pytest.raises(GalleryError, match="holds embeddings of model"):
        Gallery(path, model="effnet-lite0-imagenet")


def test_a_closed_gallery_says_so(tmp_path, people):
    """Used after close(), it raised sqlite3's own ProgrammingError."""
    gallery = Gallery(tmp_path / "g.sqlite")
    gallery.enroll("writer-3", people["writer-3"][0])
    gallery.close()
    gallery.close()  # again: nothing
    for use in (lambda: gallery.verify_claim("writer-3", people["writer-3"][1]), lambda: gallery.identify(people["writer-3"][1]),
                lambda: gallery.enroll("writer-5", people["writer-5"][0]), lambda: gallery.remove("writer-3"), gallery.list, len):
        with pytest.raises(GalleryError, match="the gallery g.sqlite is closed"):
            use() if use is not len else len(gallery)


def test_not_a_gallery_is_refused(tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="not a signver gallery"):
        Gallery(junk)
    with pytest.raises(GalleryError, match="is a folder"):
        Gallery(tmp_path)
    with pytest.raises(GalleryError, match="NUL character"):
        Gallery(tmp_path / "g\x00.sqlite")


def test_gallery_opens_with_the_model_it_holds(tmp_path, people):
    """Galleries enrolled under an earlier default keep opening once the default changes."""
    path = tmp_path / "old.sqlite"
    with Gallery(path, model="effnet-lite0-imagenet") as g:
        g.enroll("writer-3", people["writer-3"][0])
    with Gallery(path) as g:
        assert g.extractor.name == "effnet-lite0-imagenet" and g.get("writer-3").references == 4


def test_another_sqlite_database_is_left_untouched(tmp_path):
    path = tmp_path / "accounts.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
        db.execute("INSERT INTO accounts (owner) VALUES ('alice')")
    db.close()
    before = path.read_bytes()
    with pytest.raises(GalleryError, match="not a signver gallery"):
        Gallery(path)
    assert path.read_bytes() == before and not (tmp_path / "accounts.sqlite-wal").exists()


def test_a_database_with_a_table_named_like_ours_is_left_untouched(tmp_path, people):
    """A table called `people` with other columns is someone else's: refused before anything
    is written, by a command that only reads as by one that enrols."""
    path = tmp_path / "crm.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
    db.close()
    before = path.read_bytes()
    for create in (False, True):
        with pytest.raises(GalleryError, match="not a signver gallery.*'people' has columns id, name, email"):
            Gallery(path, create=create)
    assert path.read_bytes() == before and not (tmp_path / "crm.sqlite-wal").exists()


def test_an_empty_file_is_no_gallery_when_one_must_exist(tmp_path):
    empty = tmp_path / "zero.sqlite"
    empty.touch()
    with pytest.raises(GalleryError, match="no gallery at .*holds no gallery yet"):
        Gallery(empty, create=False)
    assert empty.stat().st_size == 0


@pytest.mark.parametrize("kind, damage, problem", [
    ("vector", "UPDATE refs SET vector = substr(vector, 1, 100) WHERE id = 2", r"stored reference 2 \(refs.id\) is not .* numbers"),
    ("vector", "UPDATE refs SET vector = ? WHERE id = 2", r"stored reference 2 \(refs.id\) holds numbers that are not finite"),
    ("vector", "UPDATE refs SET vector = zeroblob(length(vector)) WHERE id = 2", r"stored reference 2 \(refs.id\) is not a unit vector"),
    ("counter", "UPDATE meta SET value = 'abc' WHERE key = 'generation'", "change counter reads 'abc'"),
    ("metadata", "UPDATE people SET metadata = '{bad' WHERE person_id = 'writer-3'", "metadata of 'writer-3' is not JSON"),
])
def test_rows_changed_outside_signver_are_a_gallery_error(tmp_path, people, kind, damage, problem):
    """Each question that reads the damaged row names the damage (exit 2 / 409), never a
    traceback or an answer computed from it (a NaN reference once ranked its person first):
    in a gallery opened before the damage, whose questions read the rows again, and in one
    opened after it."""
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        for person in ("writer-3", "writer-5"):
            g.enroll(person, people[person][0][:2])
        dimension = g.extractor.dimension
    opened = Gallery(path)
    with sqlite3.connect(path) as db:
        db.execute(damage, (np.full(dimension, np.nan, np.float32).tobytes(),) if "?" in damage else ())
    db.close()
    asks = {"list": lambda g: g.list(), "get": lambda g: g.get("writer-3"), "references": lambda g: g.references("writer-3"),
            "claim": lambda g: g.verify_claim("writer-3", people["writer-3"][1]), "identify": lambda g: g.identify(people["writer-3"][1])}
    reads = {"vector": ("references", "claim", "identify"), "metadata": ("list", "get", "claim"), "counter": ("identify",)}[kind]
    for name in reads:
        with pytest.raises(GalleryError, match=f"is damaged: .*{problem}"):
            asks[name](opened)
    opened.close()
    for name in reads if kind == "metadata" else asks:  # a damaged vector or counter is read as the gallery opens
        with pytest.raises(GalleryError, match=f"is damaged: .*{problem}"):
            with Gallery(path) as g:
                asks[name](g)


def test_an_embedding_too_large_or_small_for_float32_arithmetic_is_stored_as_a_unit_vector(tmp_path):
    """1e20 squared overflows float32: the vector was stored as zeros, and the gallery then
    refused to open as damaged."""
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        dimension = g.extractor.dimension
        g.enroll("large", [np.full(dimension, 1e20, np.float32)])
        g.enroll("small", [np.full(dimension, 1e-200, np.float64)])
        with pytest.raises(InputError, match="all zeros has no direction"):
            g.enroll("zero", [np.zeros(dimension, np.float32)])
    with Gallery(path) as g:
        assert np.allclose(np.linalg.norm(g.references("large"), axis=1), 1) and len(g) == 2


def test_hand_deleted_rows_never_answer(tmp_path, people):
    """With foreign keys off (the sqlite3 shell's default), deleting a person leaves their
    references, and deleting references leaves a person with none: neither may answer a
    question, and integrity() counts the first."""
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        for person in ("writer-3", "writer-5", "writer-8"):
            g.enroll(person, people[person][0][:2])
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM people WHERE person_id = 'writer-3'")
        db.execute("DELETE FROM refs WHERE person_id = 'writer-5'")
    db.close()
    with sqlite3.connect(path) as db:  # and a person id that is not text
        db.execute("INSERT INTO people (person_id, enrolled_at) VALUES (x'4142', '2026-01-01T00:00:00+00:00')")
    db.close()
    with Gallery(path) as g:
        assert g.integrity()["orphaned_references"] == 2
        assert "writer-3" not in [r.person_id for r in g.identify(people["writer-3"][1], k=3)]
        with pytest.raises(GalleryError, match="is damaged: 'writer-5' has no references"):
            g.verify_claim("writer-5", people["writer-5"][1])


def test_removing_several_people_is_all_or_nothing(tmp_path, people):
    with Gallery(tmp_path / "g.sqlite") as g:
        for person in ("writer-3", "writer-5"):
            g.enroll(person, people[person][0][:2])
        with pytest.raises(PersonNotFoundError, match="no person 'nobody'"):
            g.remove_all(["writer-3", "nobody"])
        assert len(g) == 2
        with pytest.raises(InputError, match="a list of person ids, not one str"):
            g.remove_all("writer-3")
        removed = g.remove_all(["writer-3", "writer-5", "writer-3"])  # an id given twice is removed, and reported, once
        assert [p.person_id for p in removed] == ["writer-3", "writer-5"] and len(g) == 0
        with pytest.raises(PersonNotFoundError):  # a second removal of the same person is no second success
            g.remove("writer-3")


def test_a_gallery_another_process_keeps_locked_is_busy_not_broken(tmp_path, people, monkeypatch):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.enroll("writer-3", people["writer-3"][0][:2])
    monkeypatch.setattr("signver.gallery.BUSY_TIMEOUT", 0.2)
    g = Gallery(path)  # opened first: opening writes too (the schema, once)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with g:
            with pytest.raises(GalleryBusyError, match="busy or cannot be written .*nothing was changed"):
                g.enroll("writer-5", people["writer-5"][0][:2])
            with pytest.raises(GalleryBusyError):
                g.remove("writer-3")
            assert GalleryBusyError.http_status == 503
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with Gallery(path) as g:
        assert [p.person_id for p in g.list()] == ["writer-3"]


def test_reads_go_on_while_a_write_waits_for_another_process(tmp_path, people):
    """A write waiting for another process's lock must not hold the shared connection: a
    service's health checks and claims answered only after the write gave up, 30 s later."""
    import threading

    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.enroll("writer-3", people["writer-3"][0][:2])
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        writing = threading.Thread(target=g.enroll, args=("writer-5", people["writer-5"][0][:2]))
        writing.start()
        time.sleep(0.3)  # the write is waiting now
        started = time.monotonic()
        assert len(g) == 1 and g.get("writer-3").references == 2 and g.verify_claim("writer-3", people["writer-3"][1]).verified
        assert time.monotonic() - started < 5 and writing.is_alive()
        holder.execute("ROLLBACK")
        holder.close()
        writing.join(timeout=10)
        assert not writing.is_alive() and [p.person_id for p in g.list()] == ["writer-3", "writer-5"]


def test_closing_waits_for_a_write_waiting_for_another_process(tmp_path, people):
    import threading

    path = tmp_path / "g.sqlite"
    g = Gallery(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    failures = []

    def enrol():
        try:
            g.enroll("writer-5", people["writer-5"][0][:2])
        except Exception as error:  # noqa: BLE001 - the test reports it
            failures.append(error)

    writing, closing = threading.Thread(target=enrol), threading.Thread(target=g.close)
    writing.start()
    time.sleep(0.3)
    closing.start()
    time.sleep(0.3)
    assert closing.is_alive()  # it waits for the write
    holder.execute("ROLLBACK")
    holder.close()
    writing.join(timeout=10)
    closing.join(timeout=10)
    assert not failures and not closing.is_alive()
    with Gallery(path) as again:
        assert [p.person_id for p in again.list()] == ["writer-5"]


def test_missing_gallery_is_an_error_when_it_must_exist(tmp_path):
    missing = tmp_path / "typo" / "g.sqlite"
    with pytest.raises(GalleryError, match="no gallery at"):
        Gallery(missing, create=False)
    assert not missing.parent.exists()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(GalleryError, match="is a file, not a folder"):
        Gallery(tmp_path / "a-file" / "g.sqlite")


def test_hnsw_index_rebuilds_after_removal(tmp_path, people):
    with Gallery(tmp_path / "h.sqlite", index="hnsw") as g:
        for person, (references, _, _) in people.items():
            g.enroll(person, references)
        g.remove("writer-3")
        assert g.integrity()["indexed"] == 12
        assert g.identify(people["writer-5"][1], k=1)[0].person_id == "writer-5"


def test_hnsw_index_saves_and_loads(tmp_path):
    vectors = np.random.default_rng(1).normal(size=(300, 8)).astype(np.float32)
    index = VectorIndex(8, "hnsw")
    index.add(np.arange(300), vectors)
    index.save(tmp_path / "i.faiss")
    loaded = VectorIndex.load(tmp_path / "i.faiss", "hnsw")
    loaded.ef_search = 200
    assert len(loaded) == 300 and loaded.ef_search == 200
    assert (loaded.search(vectors[:4], 1)[1][:, 0] == np.arange(4)).all()


def test_vector_index_matches_brute_force():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = VectorIndex(16)
    index.add(np.arange(100, 600), vectors)
    d, ids = index.search(vectors[:5], 3)
    truth = np.argsort(np.linalg.norm(vectors[:5, None] - vectors[None], axis=2), axis=1)[:, :3] + 100
    assert (ids == truth).all() and np.allclose(d[:, 0], 0, atol=1e-3)
    index.remove(np.array([100]))
    assert len(index) == 499 and index.search(vectors[0], 1)[1][0, 0] != 100


# -- other processes -------------------------------------------------------------------------

ENROLLER = textwrap.dedent("""
    import sys
    import numpy as np
    from signver.gallery import Gallery

    rng = np.random.default_rng(int(sys.argv[2]))
    with Gallery(sys.argv[1]) as g:
        dim = g.extractor.dimension
        for i in range(int(sys.argv[3])):
            vectors = rng.normal(size=(3, dim)).astype(np.float32)
            g.enroll(f"r{sys.argv[2]}-p{i}", list(vectors), metadata={"i": i})
            print(f"ACK r{sys.argv[2]}-p{i}", flush=True)
""")


def _enroller(path, seed, count):
    return subprocess.Popen([sys.executable, "-c", ENROLLER, str(path), str(seed), str(count)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_acknowledged_enrolments_survive_kill_9(tmp_path):
    """Kill the enrolling process at different moments; every acknowledged person must be
    there, complete, with the index in step and SQLite's integrity check passing."""
    path = tmp_path / "crash.sqlite"
    acknowledged = set()
    rng = np.random.default_rng(0)
    for round_, after in enumerate((1, 7, 20, 40, 75, 120)):
        process = _enroller(path, round_, 100_000)
        for _ in range(after):  # let it acknowledge some, then kill it at a random moment
            acknowledged.add(process.stdout.readline().split()[1])
        time.sleep(rng.uniform(0, 0.02))
        process.send_signal(signal.SIGKILL)
        process.wait()
        acknowledged |= {line.split()[1] for line in process.stdout.read().splitlines() if line.startswith("ACK ")}
        with Gallery(path) as g:
            stored = {p.person_id: p for p in g.list()}
            assert acknowledged <= set(stored)
            assert all(p.references == 3 and p.metadata == {"i": int(p.person_id.split("-p")[1])} for p in stored.values())
            check = g.integrity()
            assert check["sqlite"] == "ok" and check["indexed"] == check["references"] == 3 * len(stored)
    assert len(acknowledged) >= 263


@pytest.mark.slow
def test_readers_see_a_consistent_gallery_while_one_process_enrols(tmp_path):
    path = tmp_path / "busy.sqlite"
    with Gallery(path) as reader:
        writer = _enroller(path, 7, 60)
        seen = []
        try:
            while writer.poll() is None or not seen or seen[-1] < 60:
                check = reader.integrity()
                assert check["sqlite"] == "ok" and check["indexed"] == check["references"] == 3 * check["people"]
                if check["people"]:
                    first = reader.list()[0].person_id
                    best = reader.identify(reader.references(first)[0], k=1)[0]
                    assert best.person_id == first and min(best.reference_distances) == pytest.approx(0, abs=1e-3)
                seen.append(check["people"])
                if writer.poll() is not None and seen[-1] == 60:
                    break
        finally:
            writer.wait(timeout=120)
        assert writer.returncode == 0 and seen == sorted(seen) and seen[-1] == 60 and len(set(seen)) > 2


def test_sqlite_file_is_plain_and_inspectable(gallery):
    gallery.close()
    rows = sqlite3.connect(gallery.path).execute("SELECT person_id, metadata FROM people ORDER BY person_id").fetchall()
    assert rows[0] == ("writer-13", json.dumps({"branch": "test"}))


def test_metadata_and_names_that_cannot_be_stored_as_text(tmp_path, people):
    with Gallery(tmp_path / "g.sqlite") as g:
        with pytest.raises(InputError, match="JSON-serialisable"):
            g.enroll("writer-3", people["writer-3"][0], metadata={"score": float("nan")})
        with pytest.raises(InputError, match="undecodable"):
            g.enroll("bad\udcff", people["writer-3"][0])
        with pytest.raises(InputError, match="lone surrogate"):  # stored escaped, then no answer carrying it could be encoded
            g.enroll("writer-3", people["writer-3"][0], metadata={"note": "\ud800"})
        g.enroll("writer-3", people["writer-3"][0][:1], sources=["scan_\udcff.png"])
        assert g.get("writer-3").references == 1 and g.list()[0].metadata == {}


def test_many_openers_of_a_new_gallery_all_succeed(tmp_path):
    """Tables and model are made in one transaction: nobody sees a half-made gallery."""
    from concurrent.futures import ThreadPoolExecutor

    for attempt in range(5):
        path = tmp_path / f"new{attempt}.sqlite"

        def open_it(_):
            with Gallery(path) as g:
                return g.extractor.name

        with ThreadPoolExecutor(4) as pool:
            assert len(set(pool.map(open_it, range(4)))) == 1


def test_a_gallery_left_half_made_opens(tmp_path):
    path = tmp_path / "half.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.close()
    with Gallery(path) as g:
        assert g.list() == []


@pytest.mark.parametrize("change, problem", [
    ("UPDATE meta SET value = 'retired-model' WHERE key = 'model'", "enrolled with model 'retired-model'"),
    ("DELETE FROM meta WHERE key = 'model'", "holds references but names no model"),  # not "no gallery yet"
])
def test_a_gallery_whose_model_cannot_be_used_says_why(tmp_path, people, change, problem):
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.enroll("writer-3", people["writer-3"][0][:1])
    with sqlite3.connect(path) as db:
        db.execute(change)
    db.close()
    for create in (True, False):
        with pytest.raises(GalleryError, match=problem):
            Gallery(path, create=create)


def test_an_unknown_index_kind_is_refused_before_any_file_is_made(tmp_path):
    with pytest.raises(InputError, match="unknown index kind"):
        Gallery(tmp_path / "g.sqlite", index="annoy")
    assert not (tmp_path / "g.sqlite").exists()


def test_a_reference_given_twice_is_refused_and_changes_nothing(gallery, people):
    """A copy of a reference adds no evidence but shrinks the references' spread, so it would
    change every later claim's score: refused, whether already stored or twice in one call."""
    before, claim = gallery.integrity(), gallery.verify_claim("writer-3", people["writer-3"][1]).distance
    again = people["writer-3"][0][0]
    with pytest.raises(DuplicateReferenceError, match="already enrolled"):
        gallery.enroll("writer-3", [synth.genuine(3, 5), again], sources=["new.png", "old.png"])
    with pytest.raises(DuplicateReferenceError, match="new.png is the same signature as new.png"):
        gallery.enroll("newcomer", [synth.genuine(7, 0), synth.genuine(7, 0)], sources=["new.png", "new.png"])
    assert gallery.integrity() == before and "newcomer" not in [p.person_id for p in gallery.list()]
    assert gallery.verify_claim("writer-3", people["writer-3"][1]).distance == claim
    assert gallery.enroll("writer-5", [again]).references == 5  # another person's reference is not a copy
    gallery.enroll("writer-7", [synth.genuine(7, 1)], sources=["/srv/scans/branch-4/w7.png"])
    with pytest.raises(DuplicateReferenceError, match=r"^again.png is the same signature as w7.png \(already enrolled\)"):
        gallery.enroll("writer-7", [synth.genuine(7, 1)], sources=["again.png"])  # the stored one by its name: no folder of the server's
    gallery.remove("writer-7")


def test_a_reference_saved_again_is_refused_as_a_copy(gallery, people):
    """The same scan re-encoded as JPEG is not bit-identical, but it is still one signing: the
    near-zero spread it would give the references would wreck every later claim."""
    scan = people["writer-3"][0][0]
    resaved = cv2.imdecode(cv2.imencode(".jpg", scan, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_GRAYSCALE)
    before = gallery.integrity()
    with pytest.raises(DuplicateReferenceError, match=r"ref.jpg is the same signature as a reference \(already enrolled\) .*perhaps saved again"):
        gallery.enroll("writer-3", [resaved], sources=["ref.jpg"])
    assert gallery.integrity() == before
    assert gallery.enroll("writer-3", [synth.genuine(3, 7)]).references == 5  # another signing is not a copy


def test_of_many_files_the_blank_one_is_named(gallery, tmp_path):
    good, blank = tmp_path / "ok.png", tmp_path / "white.png"
    cv2.imwrite(str(good), synth.genuine(1, 0))
    cv2.imwrite(str(blank), np.full((50, 80), 255, np.uint8))
    before = gallery.integrity()
    with pytest.raises(InputError, match=f"^{blank}: blank image"):
        gallery.enroll("someone", [good, blank])
    assert gallery.integrity() == before


def test_mismatched_sources_and_empty_embeddings_change_nothing(gallery):
    before = gallery.integrity()
    with pytest.raises(InputError, match="0 source names for 1 images"):
        gallery.enroll("someone", [synth.genuine(1, 0)], sources=[])
    with pytest.raises(InputError, match="all zeros"):
        gallery.enroll("someone", [np.zeros(gallery.extractor.dimension, np.float32)])
    assert gallery.integrity() == before


@pytest.mark.parametrize("k", [2.5, "3", None, True])
def test_identify_refuses_a_k_that_is_not_a_whole_number(gallery, people, k):
    with pytest.raises(InputError, match="whole number"):
        gallery.identify(people["writer-3"][1], k)


def test_a_gallery_folder_that_cannot_be_made_is_a_gallery_error(tmp_path, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(GalleryError, match="cannot make the folder for gallery .*Read-only file system"):
        Gallery(tmp_path / "new" / "g.sqlite")


def test_person_ids_in_any_script_are_kept(tmp_path):
    """Inner spaces of any kind and joiners are parts of real names (Japanese, Persian, Bengali)."""
    names = ["José García", "山田\u3000太郎", "محمد\u200cرضا", "ক্\u200dষ", "O'Brien-Smith", "1\ufe0f\u20e3 team",
             "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\U0001f44d\U0001f3fd", "\u795e\ufe00", "\u845b\U000e0100",
             "\U0001f3f4\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"]
    with Gallery(tmp_path / "names.sqlite") as g:
        for s, name in enumerate(names):
            g.enroll(name, [synth.genuine(3 + s, 0)])
        assert sorted(p.person_id for p in g.list()) == sorted(names)


def test_person_ids_are_kept_in_nfc(tmp_path):
    """"José" with a combining accent is the same person as with a precomposed é, whichever way
    it is typed; an id stored before ids were normalised is still found as it was stored."""
    composed, decomposed = "Jos\u00e9", "Jose\u0301"
    with Gallery(tmp_path / "nfc.sqlite") as g:
        assert g.enroll(decomposed, [synth.genuine(3, 0)]).person_id == composed
        assert g.enroll(composed, [synth.genuine(3, 1)]).references == 2
        assert [p.person_id for p in g.list()] == [composed]
        assert g.get(decomposed).person_id == composed and len(g.references(decomposed)) == 2
        assert g.verify_claim(decomposed, synth.genuine(3, 2)).person_id == composed
        g._db.execute("INSERT INTO people (person_id, enrolled_at) VALUES (?, '2026-01-01T00:00:00+00:00')", ("Rene\u0301",))
        g._db.commit()
    with Gallery(tmp_path / "nfc.sqlite") as g:  # opened again, as after an upgrade
        assert g.enroll("Rene\u0301", [synth.genuine(4, 0)]).person_id == "Rene\u0301"  # the stored row, not a second person
        assert g.enroll("Ren\u00e9", [synth.genuine(4, 1)]).person_id == "Rene\u0301"  # typed as keyboards type it
        assert g.get("Ren\u00e9").references == 2 and len(g) == 2
        assert g.remove("Ren\u00e9").references == 2 and g.remove(decomposed).person_id == composed
        assert len(g) == 0
    with Gallery(tmp_path / "spaces.sqlite") as g:  # a space that prints as the plain one is kept as it: one person, listed once
        assert g.enroll("John\u00a0Smith", [synth.genuine(5, 0)]).person_id == "John Smith"
        assert g.enroll("John\u202fSmith", [synth.genuine(5, 1)]).references == 2 and g.get("John Smith").references == 2
        assert g.enroll("\u5c71\u7530\u3000\u592a\u90ce", [synth.genuine(6, 0)]).person_id == "\u5c71\u7530\u3000\u592a\u90ce"  # wider: kept
        g._db.execute("INSERT INTO people (person_id, enrolled_at) VALUES (?, '2026-01-01T00:00:00+00:00')", ("Ana\u00a0Lima",))
        g._db.commit()
    with Gallery(tmp_path / "spaces.sqlite") as g:  # an id stored with its no-break space before is found however typed
        assert g.get("Ana Lima").person_id == "Ana\u00a0Lima" and g.get("Ana\u00a0Lima").person_id == "Ana\u00a0Lima"
        g._db.execute("INSERT INTO people (person_id, enrolled_at) VALUES (?, '2026-01-01T00:00:00+00:00')", ("Ana\u2009Lima",))
        g._db.commit()
    with Gallery(tmp_path / "spaces.sqlite") as g:  # two stored so: the plain form stands for neither, whatever the hash seed
        with pytest.raises(InputError, match="several people"):
            g.get("Ana Lima")
        with pytest.raises(InputError, match="several people"):
            g.enroll("Ana Lima", [synth.genuine(7, 0)])
        assert g.get("Ana\u2009Lima").person_id == "Ana\u2009Lima" and g.get("Ana\u00a0Lima").person_id == "Ana\u00a0Lima"
        g.remove("Ana\u2009Lima")  # one of the two left: the plain form is hers again, without opening the gallery again
        assert g.get("Ana Lima").person_id == "Ana\u00a0Lima"
    with Gallery(tmp_path / "long.sqlite") as g:  # NFC lengthens some characters: the stored id is what is limited
        with pytest.raises(InputError, match="at most 200 characters"):
            g.enroll("\u0958" * 150, [synth.genuine(4, 0)])


def _unit_at(basis, distance, *axes):
    """A unit vector `distance` from basis[0], its remainder spread evenly over `axes`."""
    c = 1 - distance**2 / 2
    side = sum(basis[a] for a in axes) / np.sqrt(len(axes))
    return (c * basis[0] + np.sqrt(1 - c * c) * side).astype(np.float32)


def test_identify_finds_a_likelier_writer_farther_than_many_strangers(tmp_path):
    """A writer whose references vary is an accepted claim while farther than 25 strangers
    whose references barely differ: scoring only the nearest people missed them at every k."""
    with Gallery(tmp_path / "far.sqlite") as g:
        basis = np.eye(g.extractor.dimension, dtype=np.float32)
        g.enroll("writer", [_unit_at(basis, 0.24, axis) for axis in (1, 2, 3)])
        for i in range(25):
            axis = 10 + 2 * i
            g.enroll(f"stranger-{i}", [_unit_at(basis, 0.20, axis), _unit_at(basis, 0.20, axis, axis, axis, axis + 1)])
        claim = g.verify_claim("writer", basis[0])
        assert claim.verified
        for k in (1, 3, 26):
            ranked = g.identify(basis[0], k=k)
            assert ranked[0] == replace(claim, timings_ms=ranked[0].timings_ms) and len(ranked) == k


@pytest.mark.parametrize("fusion, first_people", [("scaled", 1), ("min", 1), ("mean", 1), ("scaled", 4), ("min", 4)])
def test_identify_gives_what_scoring_everyone_gives(tmp_path, monkeypatch, fusion, first_people):
    """With the first search cut to a few references, those who could still rank among the k
    are scored (a few) or the search widens (many): the answer is the brute-force ranking's top k."""
    from signver.gallery import most_likely_first

    monkeypatch.setattr("signver.gallery.MIN_PEOPLE_SCORED", first_people)
    monkeypatch.setattr("signver.gallery.CANDIDATES_PER_RESULT", 1)
    rng = np.random.default_rng(7)
    with Gallery(tmp_path / f"{fusion}-{first_people}.sqlite", fusion=fusion) as g:
        dimension = g.extractor.dimension
        centres = rng.normal(size=(30, dimension)).astype(np.float32)
        for person, centre in enumerate(centres):
            spread = rng.uniform(0.2, 1.2)  # people whose references vary little and a lot
            references = centre + spread * rng.normal(size=(int(rng.integers(1, 5)), dimension)).astype(np.float32) * np.linalg.norm(centre) / np.sqrt(dimension)
            g.enroll(f"p{person}", references)
        everyone = [p.person_id for p in g.list()]
        for query in range(6):
            vector = centres[query] + 0.6 * rng.normal(size=dimension).astype(np.float32) * np.linalg.norm(centres[query]) / np.sqrt(dimension)
            vector /= np.linalg.norm(vector)
            brute = most_likely_first([g.verify_claim(p, vector) for p in everyone])
            for k in (1, 3):
                ranked = g.identify(vector, k=k)
                assert [r.person_id for r in ranked] == [r.person_id for r in brute[:k]], (fusion, query, k)


def test_identify_with_a_threshold_of_zero(tmp_path, people):
    """A threshold of 0 accepts only an exact copy; ranking divided by it."""
    with Gallery(tmp_path / "g.sqlite") as g:
        for person in ("writer-3", "writer-5"):
            g.enroll(person, people[person][0][:2])
    with Gallery(tmp_path / "g.sqlite", threshold=0.0) as g:
        ranked = g.identify(people["writer-3"][1], k=2)
        assert [r.person_id for r in ranked] == ["writer-3", "writer-5"] and not any(r.verified for r in ranked)


def test_a_claim_against_one_reference_is_the_pair_verify_decides(tmp_path, people):
    """One reference, whatever the fusion: the card's pair threshold and confidence, so that
    `check` and `verify` give one answer for one pair."""
    import signver

    reference, questioned = people["writer-3"][0][0], people["writer-5"][1]
    pair = signver.verify(reference, questioned)
    for fusion in ("scaled", "min", "mean"):
        with Gallery(tmp_path / f"{fusion}.sqlite", fusion=fusion) as g:
            g.enroll("one", [reference])
            claim = g.verify_claim("one", questioned)
            assert (claim.verified, claim.threshold, claim.confidence, claim.log10_lr) == (pair.verified, pair.threshold, pair.confidence, pair.log10_lr)
            assert claim.distance == pytest.approx(pair.distance, abs=1e-6)


def test_scaled_claims_need_claim_rules_or_a_threshold(tmp_path, people):
    """A card without claim rules has only its pair threshold, a distance: a scaled score over
    several references is on another scale, and was compared with it."""
    import json
    import shutil

    from signver.errors import ModelError
    from signver.models import MODELS_DIR

    shutil.copy(MODELS_DIR / "effnet-lite0-imagenet.onnx", tmp_path / "plain.onnx")
    card = json.loads((MODELS_DIR / "effnet-lite0-imagenet.json").read_text())
    card.pop("claims", None)
    (tmp_path / "plain.json").write_text(json.dumps({**card, "name": "plain"}))
    model = str(tmp_path / "plain.onnx")
    with Gallery(tmp_path / "g.sqlite", model=model) as g:
        g.enroll("three", people["writer-3"][0][:3])
        g.enroll("one", people["writer-5"][0][:1])
        with pytest.raises(ModelError, match="no claim rules.*signver calibrate"):
            g.verify_claim("three", people["writer-3"][1])
        assert g.verify_claim("one", people["writer-5"][1]).threshold == card["threshold"]
    with Gallery(tmp_path / "g.sqlite", model=model, fusion="min") as g:
        assert g.verify_claim("three", people["writer-3"][1]).threshold == card["threshold"]
    with Gallery(tmp_path / "g.sqlite", model=model, threshold=0.5) as g:
        assert g.verify_claim("three", people["writer-3"][1]).threshold == 0.5


def test_enrolling_a_stack_of_colour_images(tmp_path, people):
    """(N, H, W, 3) is N colour images, as (N, H, W) is N grey ones."""
    grey = [cv2.resize(image, (300, 150)) for image in people["writer-3"][0][:3]]
    stack = np.stack([np.stack([image] * 3, axis=-1) for image in grey])
    with Gallery(tmp_path / "g.sqlite") as g:
        assert g.enroll("colour", stack).references == 3


def test_identify_skips_people_left_without_references(tmp_path, people):
    """References deleted outside signver while a process holds the gallery open: the person
    is proposed by the index it built before, has no rows, and must not be asked for forever."""
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        for person in ("writer-3", "writer-5", "writer-8", "writer-13"):
            g.enroll(person, people[person][0][:2])
        assert g.identify(people["writer-3"][1], k=1)[0].person_id == "writer-3"
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM refs WHERE person_id = 'writer-3'")
        db.close()
        ranked = g.identify(people["writer-3"][1], k=1)
        assert len(ranked) == 1 and ranked[0].person_id != "writer-3"


def test_identify_with_an_approximate_index_asked_for_everyone(tmp_path):
    """HNSW may return fewer rows than it holds even when asked for all: the search must stop."""
    rng = np.random.default_rng(0)
    with Gallery(tmp_path / "hnsw.sqlite", index="hnsw") as g:
        vectors = rng.normal(size=(1500, g.extractor.dimension)).astype(np.float32)
        for person, vector in enumerate(vectors):
            g.enroll(f"p{person}", vector[None, :])
        query = rng.normal(size=g.extractor.dimension).astype(np.float32)
        _, found = g._index.search(query / np.linalg.norm(query), 1500)
        assert (found >= 0).sum() < 1500  # the case: fewer rows than asked for
        assert 1 < len(g.identify(query, k=1500)) < 1500


def test_identify_over_only_orphaned_references_finds_no_one(tmp_path, people):
    """Everyone deleted by hand with foreign keys off leaves rows no one owns: no one to answer,
    and no search that never ends."""
    path = tmp_path / "g.sqlite"
    with Gallery(path) as g:
        g.enroll("writer-3", people["writer-3"][0][:2])
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM people")
    db.close()
    with Gallery(path) as g:
        assert g.integrity()["orphaned_references"] == 2 and g.identify(people["writer-3"][1], k=3) == []


def test_calls_of_the_wrong_type_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="a gallery path is a str or a path, got int"):
        Gallery(5)
    with Gallery(tmp_path / "g.sqlite") as g:
        with pytest.raises(InputError, match="a person id is a string, got int"):
            g.references(1)
        with pytest.raises(InputError, match="a list of person ids, not NoneType"):
            g.remove_all(None)


def test_a_refused_first_enrolment_leaves_no_gallery(tmp_path, monkeypatch):
    """`enroll_creating` checks and embeds a new gallery's first enrolment before making its
    file or folder; an existing gallery is enrolled in as it is."""
    from signver.gallery import enroll_creating

    path = tmp_path / "bank.sqlite"
    monkeypatch.setenv("SIGNVER_GALLERY", str(tmp_path / "home" / ".signver" / "gallery.sqlite"))
    for where in (path, tmp_path / "new-folder" / "bank.sqlite", None):  # None: the default, its folder not made yet
        for person, images, extra in (("alice", [b"junk"], {}), (" alice", [synth.genuine(1, 0)], {}),
                                      ("alice", [synth.genuine(1, 0), synth.genuine(1, 0)], {}),
                                      ("alice", [synth.genuine(1, 0)], {"metadata": {"a": "\ud800"}}),
                                      ("alice", [synth.genuine(1, 0)], {"sources": ["a.png", "b.png"]})):
            with pytest.raises((InputError, DuplicateReferenceError)):
                enroll_creating(where, None, person, images, **extra)
            assert sorted(tmp_path.iterdir()) == []  # no gallery, no folder
    with pytest.raises(InputError, match="a cleaner, not a signature extractor"):
        enroll_creating(path, "cleaner-lite0-crossing-int8", "alice", [synth.genuine(1, 0)])
    with pytest.raises(InputError):
        Gallery(tmp_path / "sub" / "g.sqlite", model="cleaner-lite0-crossing-int8")
    assert sorted(tmp_path.iterdir()) == []

    person, where, _ = enroll_creating(path, None, "alice", [synth.genuine(1, 0)], metadata={"desk": 2}, sources=["a.png"])
    assert where == path.absolute() and person.references == 1 and person.metadata == {"desk": 2}
    with pytest.raises(DuplicateReferenceError, match="a.png \\(already enrolled\\)"):  # an existing gallery: against its references
        enroll_creating(path, None, "alice", [synth.genuine(1, 0)], sources=["b.png"])
    person, _, _ = enroll_creating(path, None, "alice", [synth.genuine(1, 1)])
    assert person.references == 2

    import signver.gallery as gallery_module

    raced, made = tmp_path / "raced.sqlite", get_extractor

    def made_meanwhile(model=None):  # another program makes the gallery, for another model, while this one embeds
        if model is None and not raced.exists():
            Gallery(raced, model="effnet-lite0-imagenet").close()
        return made(model)

    monkeypatch.setattr(gallery_module, "get_extractor", made_meanwhile)
    with pytest.raises(GalleryError, match="made meanwhile, by another program, for model 'effnet-lite0-imagenet'"):
        enroll_creating(raced, None, "alice", iter([synth.genuine(1, 0)]))
    monkeypatch.undo()
    with Gallery(raced) as g:
        assert len(g) == 0 and g.extractor.name == "effnet-lite0-imagenet"
    with Gallery(path) as g:
        assert np.allclose(g.references("alice")[0], g.extractor.vectors([synth.genuine(1, 0)])[0], atol=1e-6)

def test_a_scan_enrolled_for_two_people_is_told(tmp_path):
    """One signing cannot be two people's: enrolling a scan another person holds is allowed
    (their spreads are not skewed), and `sharing_a_scan` / `sharing_note` say who else has it."""
    with Gallery(tmp_path / "g.sqlite") as g:
        g.enroll("ann", [synth.genuine(1, 0), synth.genuine(1, 1)])
        g.enroll("ben", [synth.genuine(2, 0)])
        assert g.sharing_a_scan("ann") == [] and g.sharing_note("ben") is None
        resaved = cv2.imdecode(cv2.imencode(".jpg", synth.genuine(1, 1), [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_GRAYSCALE)
        g.enroll("ann-2", [resaved])
        assert g.sharing_a_scan("ann-2") == ["ann"] and g.sharing_a_scan("ann") == ["ann-2"] and g.sharing_a_scan("ben") == []
        assert "'ann-2' now holds the same scan as 'ann'" in g.sharing_note("ann-2", 1)
        g.enroll("ann-2", [synth.genuine(1, 5)])  # a new scan of no one else's: the old share is not said again
        assert g.sharing_note("ann-2", 1) is None and g.sharing_a_scan("ann-2", 1) == [] and g.sharing_a_scan("ann-2") == ["ann"]
        vector = g.references("ben")[0]
        for other in ("ben-2", "ben-3", "ben-4"):  # several others hold one scan: each is named, not the nearest alone
            g.enroll(other, [vector])
        assert g.sharing_a_scan("ben") == ["ben-2", "ben-3", "ben-4"] and g.sharing_a_scan("ben-3") == ["ben", "ben-2", "ben-4"]
        g._db.execute("PRAGMA foreign_keys=OFF")
        g._db.execute("DELETE FROM people WHERE person_id = 'ben-4'")  # as the sqlite3 shell does, leaving its rows
        g._db.execute("PRAGMA foreign_keys=ON")
        assert g.sharing_a_scan("ben") == ["ben-2", "ben-3"]  # an orphaned row is no one's
        g.remove("ben-2")
        assert g.sharing_note("ben-2") is None  # removed meanwhile: nothing to say, and no error after an enrolment that stood
