"""Enrolled people and their reference signatures: 1:1 claim checks and 1:N search.

The store is one SQLite file (WAL journal, full fsync): an enrolment is one transaction, so
once `enroll` returns it survives a killed process or a power cut, and a crash mid-way leaves
nothing half-written. The FAISS index is never a second source of truth: it is built from
the SQLite rows when the gallery opens and kept in step by a `generation` counter that every
write transaction bumps. A process that sees another process's generation rebuilds its index
before answering, so readers in other processes always search what the file holds.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path, PurePath

import numpy as np
from PIL import Image

from .errors import DuplicateReferenceError, GalleryBusyError, GalleryError, InputError, ModelError, PersonNotFoundError, SignverError
from .api import VerificationResult, decision
from .extractor import Extractor, get_extractor
from .images import SourceLike, printable_name
from .index import VectorIndex, check_index_kind
from .matcher import DEFAULT_FUSION, SPREAD_EXPONENT, check_k, check_threshold, copy_distance, copy_note, distances, fuse, reference_spread

MAX_PERSON_ID = 200
MAX_METADATA_DEPTH = 32  # nesting every JSON encoder and reader on the way can handle (the service's stops near 255)
# characters that would make one id print as another or split a listing line: line and paragraph
# separators and blank fillers; control and format characters (the bidirectional controls,
# zero-width spaces, joiners, variation selectors) are refused too, but where `_written_with` keeps them
_PLAIN_SPACES = str.maketrans(dict.fromkeys("\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f", " "))
_MISLEADING = set("\u2028\u2029\u034f\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5")  # blank letters and signs
# scripts that write with the zero-width joiner and non-joiner (Persian and Bengali names need them)
_JOINING_SCRIPTS = ("ARABIC", "SYRIAC", "NKO", "MONGOLIAN", "DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA",
                    "TAMIL", "TELUGU", "KANNADA", "MALAYALAM", "SINHALA", "KHMER", "MYANMAR", "TIBETAN", "THAI", "LAO",
                    "JAVANESE", "BALINESE", "CHAKMA")
_VISIBLE_FORMAT = set("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u08e2")  # number signs: format characters that show
IN_CHUNK = 10_000  # values bound in one SQL IN (...) list
CANDIDATES_PER_RESULT = 8  # reference rows fetched from the index per candidate person asked for
# people scored as claims at first, whatever k is: the nearest reference is not the best claim (a
# writer with three references can be a little farther than a stranger with one yet far likelier)
MIN_PEOPLE_SCORED = 20
# people whom identify scores directly, rather than search wider, when their bound says they could
# still rank among the k: about 80 more people cost 50-65 ms a query and one exact search of
# 100,000 references about 180 ms (docs/benchmarks.md, 1:N search), so 256 cost about one search
CONTENDERS_SCORED = 256
BUSY_TIMEOUT = 30  # seconds a connection waits for another writer before giving up
WRITE_POLL = 0.05  # seconds between tries for another process's write lock, this process's readers served meanwhile
UNIT_TOLERANCE = 1e-3  # stored embeddings are unit vectors to float32 precision; farther is damage

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people (
    person_id TEXT PRIMARY KEY,
    metadata TEXT NOT NULL DEFAULT '{}',
    enrolled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS refs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    person_id TEXT NOT NULL REFERENCES people(person_id) ON DELETE CASCADE,
    vector BLOB NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    added_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS refs_by_person ON refs(person_id);
"""
GALLERY_TABLES = {"meta", "people", "refs", "sqlite_sequence"}
GALLERY_COLUMNS = {"meta": ["key", "value"], "people": ["person_id", "metadata", "enrolled_at"],
                   "refs": ["id", "person_id", "vector", "source", "added_at"]}  # as SCHEMA makes them


def default_gallery_path() -> Path:
    """`$SIGNVER_GALLERY`, else `~/.signver/gallery.sqlite`."""
    return Path(os.environ.get("SIGNVER_GALLERY") or Path.home() / ".signver" / "gallery.sqlite")


@dataclass
class Person:
    person_id: str
    references: int
    metadata: dict
    enrolled_at: str

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # not asdict: it would copy the metadata recursively


@dataclass
class ClaimResult(VerificationResult):
    """The answer to "did `person_id` write this?": the fused distance to all of the person's
    references, and the threshold and calibration fitted for that fusion and that many
    references (model card `claims`)."""

    person_id: str = ""
    fusion: str = DEFAULT_FUSION
    reference_distances: list[float] = field(default_factory=list)


def _locked(method):
    """Run a method holding the gallery's lock: one SQLite connection serves every thread."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            self._check_open()
            return method(self, *args, **kwargs)

    return wrapper


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_person_id(person_id: str) -> str:
    if not isinstance(person_id, str) or not person_id.strip():
        raise InputError("a person id must be a non-empty string")
    if not _is_text(person_id):
        raise InputError(f"a person id must be text, got undecodable bytes in {person_id[:40]!r}")
    if len(stored_form(person_id)) > MAX_PERSON_ID:  # as stored: NFC lengthens a few characters
        raise InputError(f"a person id must be at most {MAX_PERSON_ID} characters, got {person_id[:40]!r}")
    odd = next((c for i, c in enumerate(person_id) if _misleading(c, person_id[i - 1] if i else "", person_id[i + 1 : i + 2])), None)
    if odd is not None:
        raise InputError(f"a person id must not hold {unicodedata.name(odd, 'a control character')} (U+{ord(odd):04X}), "
                         f"which would make it print as another id: {person_id[:40]!r}")
    if person_id != person_id.strip():  # ' bob' would list as 'bob'
        raise InputError(f"a person id must not start or end with a space, got {person_id[:40]!r}")
    if {".", ".."} & set(person_id.split("/")):  # URLs drop such parts: /v1/people/.. is /v1/
        raise InputError(f"a person id must not be '.' or '..' or hold them between slashes, got {person_id[:40]!r}")
    return person_id


def stored_form(person_id: str) -> str:
    """An id as kept: in Unicode NFC, so that "José" typed with a combining accent is the same
    person as with a precomposed é, and with every space that prints as a plain one (no-break,
    thin, narrow no-break...) made a plain one, so that "John Smith" typed with a no-break space is
    not a second person listed as the first. The ideographic space, wider, is kept."""
    return unicodedata.normalize("NFC", person_id).translate(_PLAIN_SPACES)


def _misleading(char: str, before: str, after: str) -> bool:
    """Would `char`, between `before` and `after`, print as nothing or as something else?"""
    if char in _MISLEADING:
        return True
    if unicodedata.category(char) not in ("Cc", "Cf") and not _is_variation_selector(char):
        return False
    return not _written_with(char, before, after)


def _is_variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF or 0x180B <= code <= 0x180D or code == 0x180F


def _written_with(char: str, before: str, after: str) -> bool:
    """Invisible characters that are part of how a name is written: joiners inside a script
    that uses them or an emoji sequence, variation selectors after an emoji or a CJK ideograph
    (or a keycap's digit), the tags of a subdivision flag, Mongolian's vowel separator."""
    if char in _VISIBLE_FORMAT:
        return True
    if not before:  # nothing to be part of
        return False
    name = unicodedata.name(before, "")
    emoji = (not before.isascii() and unicodedata.category(before) == "So" or 0x1F3FB <= ord(before) <= 0x1F3FF  # skin tones
             or before in ("\ufe0f", "\u200d"))
    if char in ("\u200c", "\u200d"):
        return bool(after) and (name.startswith(_JOINING_SCRIPTS) or emoji)
    if 0x180B <= ord(char) <= 0x180F:  # Mongolian's free variation selectors
        return name.startswith("MONGOLIAN")
    if 0xE0100 <= ord(char) <= 0xE01EF:  # ideographic variation sequences
        return name.startswith("CJK")
    if 0xFE00 <= ord(char) <= 0xFE0F:
        return emoji or name.startswith("CJK") or char == "\ufe0f" and before in "0123456789#*" and after == "\u20e3"
    if 0xE0020 <= ord(char) <= 0xE007F:
        return before == "\U0001f3f4" or 0xE0020 <= ord(before) <= 0xE007F
    return False


def images_to_enrol(person_id: str, images) -> list:
    """The checked person id's references as a list: at least one, and never one path, string,
    image or embedding, which would be read as one file per character or one image per row. An
    array may hold several: (N, H, W) grey images, or (N, D) float embeddings."""
    check_person_id(person_id)
    if isinstance(images, (str, bytes, os.PathLike, Image.Image)) or isinstance(images, np.ndarray) and _one_image(images):
        raise InputError(f"enrolling {person_id!r} takes a list of images, not one {type(images).__name__}: wrap it as [image]")
    try:
        images = list(images)
    except TypeError:
        raise InputError(f"enrolling {person_id!r} takes a list of images, not {type(images).__name__}") from None
    if not images:
        raise InputError(f"enrolling {person_id!r} needs at least one reference signature")
    return images


def _one_image(array: np.ndarray) -> bool:
    if array.ndim <= 1:
        return True  # one embedding, or no image at all
    if array.ndim == 2:
        return array.dtype.kind != "f"  # a grey image; float rows are embeddings
    if array.ndim == 3:
        return array.shape[2] in (3, 4)  # a colour image; otherwise (N, H, W) grey images
    return False  # (N, H, W, C): N colour images


def _depth(value) -> int:
    """How deeply lists and dicts nest in `value` (walked without recursion, so any depth is safe)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            deepest = max(deepest, level)
            if level <= MAX_METADATA_DEPTH:  # deeper is refused anyway: no need to walk on
                stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes a command line could not decode, kept as surrogates
        return False
    return True


class Gallery:
    """People and their reference vectors in one SQLite file, searched through FAISS.

    A gallery is bound to one extractor: distances between vectors of different models mean
    nothing, so opening a file with another model is refused. Thread-safe within a process.
    """

    def __init__(self, path: str | os.PathLike | None = None, model: str | None = None, index: str = "flat",
                 fusion: str = DEFAULT_FUSION, threshold: float | None = None, create: bool = True):
        """`model` None: the model the gallery holds, or the default one for a new gallery.
        `threshold` None: the card's claim threshold for the fusion and number of references.
        `create` False: a missing file is an error instead of a new, empty gallery."""
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise InputError(f"a gallery path is a str or a path, got {type(path).__name__}")
        fuse(np.zeros((1, 1)), fusion)  # settings refused now, before any folder is made, not at the first claim
        check_index_kind(index)
        check_threshold(threshold)
        self.path = (Path(path) if path is not None else default_gallery_path()).absolute()  # errors name it wherever they are read
        if "\x00" in str(self.path):  # no file name holds one; the system call would raise a bare ValueError
            raise GalleryError(f"gallery path {printable_name(self.path)!r} holds a NUL character: not a file name")
        try:
            is_folder, self.created = self.path.is_dir(), not self.path.exists()  # created: worth saying, since a mistyped path makes one
        except OSError as error:  # a name too long, a folder on the way that cannot be entered
            raise GalleryError(f"cannot use gallery path {printable_name(self.path)}: {error.strerror or error}") from None
        if is_folder:
            raise GalleryError(f"gallery path {self.path} is a folder; give a file path such as {self.path / 'gallery.sqlite'}")
        if self.created:
            if not create:
                raise GalleryError(f"no gallery at {self.path}: enrol someone first, or check the path (--gallery / SIGNVER_GALLERY)")
            get_extractor(model)  # a model that cannot be loaded is refused before the file and its folder are made
            if self.path.parent.exists() and not self.path.parent.is_dir():
                raise GalleryError(f"cannot make gallery {self.path}: {self.path.parent} is a file, not a folder")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:  # read-only disk, no permission
                raise GalleryError(f"cannot make the folder for gallery {self.path}: {error.strerror or error}") from None
        self.fusion = fusion
        self.threshold = None if threshold is None else float(threshold)
        self._lock = threading.RLock()
        self._waiting = threading.Condition(self._lock)  # a write waiting for another process lets go of the connection
        self._writes = 0
        self._closed = False
        try:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise GalleryError(f"cannot open gallery {self.path}: {error}") from error
        try:
            stored = self._stored_model()  # reads only: a file that is not a gallery is left as it was
            if not create and self._db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone() is None:  # an empty database
                raise GalleryError(f"no gallery at {self.path} (the file holds no gallery yet): enrol someone first, or check the path (--gallery / SIGNVER_GALLERY)")
            try:
                self.extractor: Extractor = get_extractor(model or stored)
            except ModelError as error:
                if model:
                    raise
                raise GalleryError(f"gallery {self.path} was enrolled with model {stored!r}, which this installation "
                                   f"cannot load ({error}); install that model or enrol the people again") from error
            self._use_wal()
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._bind_model()
        except (sqlite3.OperationalError, GalleryBusyError) as error:  # the second: from the transaction that binds the model
            self._db.close()
            said = error.__cause__ if isinstance(error, GalleryBusyError) else error
            raise GalleryBusyError(f"cannot open gallery {self.path}: it is busy or cannot be written (SQLite said: {said}); "
                               "SQLite also writes -wal and -shm files beside it, so its folder must be writable") from error
        except sqlite3.DatabaseError as error:
            self._db.close()
            raise GalleryError(f"{self.path} is not a signver gallery, or it is damaged (SQLite said: {error})") from error
        except Exception:
            self._db.close()
            raise
        self._index = VectorIndex(self.extractor.dimension, index)
        self._generation = -1
        self._shapes: dict[str, tuple[int, float]] = {}  # per person in the index: references and their spread
        self._shape_arrays: tuple[list[str], np.ndarray, np.ndarray, dict[str, int]] | None = None
        try:
            stored_ids = {row[0] for row in self._db.execute("SELECT person_id FROM people") if isinstance(row[0], str)}
            # ids stored before ids were kept in their stored form, by that form, so that they are found however typed;
            # a form that several such ids share stands for none of them (typed exactly, each is still found)
            self._legacy_ids: dict[str, str | None] = {}
            for stored in sorted(stored_ids):
                if (normal := stored_form(stored)) != stored and normal not in stored_ids:
                    self._legacy_ids[normal] = None if normal in self._legacy_ids else stored
            self._refresh()
        except Exception:
            self._db.close()
            raise

    def _use_wal(self) -> None:
        """Switch to write-ahead logging. SQLite answers "locked" at once, without waiting out
        the busy timeout, when another connection opens the same new file at that moment; so
        try again for as long as the timeout."""
        deadline = time.monotonic() + BUSY_TIMEOUT
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _stored_model(self) -> str | None:
        """The model an existing gallery file is bound to; None for an empty database or one not
        yet bound. Any other SQLite database is refused before anything is written to it."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        foreign = tables - GALLERY_TABLES
        if foreign:
            raise GalleryError(f"{self.path} is an SQLite database but not a signver gallery (it has tables "
                               f"{', '.join(sorted(foreign)[:8])}); give a new file or an existing gallery")
        for table in sorted(tables & GALLERY_COLUMNS.keys()):
            columns = [row[1] for row in self._db.execute(f"PRAGMA table_info({table})")]
            if columns != GALLERY_COLUMNS[table]:
                raise GalleryError(f"{self.path} is an SQLite database but not a signver gallery (its table {table!r} has columns "
                                   f"{', '.join(columns[:8])}); give a new file or an existing gallery")
        if "meta" not in tables:
            return None
        row = self._db.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()
        return row[0] if row else None

    # -- storage -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self):
        with self._lock:
            self._writes += 1  # close() waits for these: a waiting write has let go of the lock
            try:
                with _Transaction(self._db, "IMMEDIATE", self._waiting) as db:
                    yield db
            finally:
                self._writes -= 1
                self._waiting.notify_all()

    def _snapshot(self):
        self._check_open()
        return _Transaction(self._db, "DEFERRED")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _bind_model(self) -> None:
        """Make the tables and bind the model in one transaction, so that processes opening a
        new gallery at once never see it half made."""
        with self._write():
            for statement in filter(str.strip, SCHEMA.split(";")):
                self._db.execute(statement)
            stored = self._meta("model")
            if stored is None and self._db.execute("SELECT 1 FROM refs LIMIT 1").fetchone():
                raise GalleryError(f"{self.path} holds references but names no model; it cannot be read safely")
            if stored is None:
                self._db.executemany("INSERT INTO meta VALUES (?, ?)", [
                    ("model", self.extractor.name), ("dimension", str(self.extractor.dimension)), ("generation", "0")])
            elif stored != self.extractor.name:
                raise GalleryError(f"gallery {self.path} holds embeddings of model {stored!r}; open it with model={stored!r} "
                                   f"(the commands' --model, the service's SIGNVER_MODEL), or leave the model out, "
                                   f"or enrol its people again in a new gallery for {self.extractor.name!r}")

    def _stored_generation(self) -> int:
        value = self._meta("generation")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise GalleryError(f"gallery {self.path} is damaged: its change counter reads {value!r}; nothing was changed") from None

    def _bump(self) -> int:
        """Inside a write transaction: count one more change, return the new generation."""
        before = self._stored_generation()
        self._db.execute("UPDATE meta SET value = ? WHERE key = 'generation'", (str(before + 1),))
        return before + 1

    def _vectors(self, rows: Sequence[tuple[int, bytes]]) -> np.ndarray:
        """Stored reference rows (id, vector) as a (K, D) array. A row of the wrong size, with
        numbers that are not finite or that is not a unit vector (every stored embedding is) was
        changed outside signver: refuse to answer from it, and name it (`refs.id`) so that it
        can be mended. Checked on the whole array at once: a million rows open in a gallery."""
        dimension = self.extractor.dimension
        for ref_id, blob in rows:
            if not isinstance(blob, bytes) or len(blob) != 4 * dimension:
                raise GalleryError(f"gallery {self.path} is damaged: stored reference {ref_id} (refs.id) is not {dimension} numbers; nothing was changed")
        vectors = np.frombuffer(b"".join(blob for _, blob in rows), np.float32).reshape(len(rows), dimension)
        with np.errstate(over="ignore", invalid="ignore"):
            finite = np.isfinite(vectors).all(axis=1)
            unit = np.abs(np.sqrt(np.einsum("ij,ij->i", vectors, vectors)) - 1) <= UNIT_TOLERANCE  # no float64 copy
        for ok, problem in ((finite, "holds numbers that are not finite"), (unit, "is not a unit vector")):
            if not ok.all():
                ref_id = rows[int(np.argmin(ok))][0]
                raise GalleryError(f"gallery {self.path} is damaged: stored reference {ref_id} (refs.id) {problem}; nothing was changed")
        return vectors

    def _person(self, row: tuple) -> Person:
        try:
            metadata = json.loads(row[2])
        except (TypeError, ValueError, RecursionError):
            raise GalleryError(f"gallery {self.path} is damaged: the metadata of {row[0]!r} is not JSON; nothing was changed") from None
        return Person(row[0], row[1], metadata, row[3])

    def _refresh(self) -> None:
        """Rebuild the index from the rows if anyone (this process or another) changed them."""
        generation = self._stored_generation()
        if generation == self._generation:
            return
        with contextlib.nullcontext() if self._db.in_transaction else self._snapshot():  # generation and rows agree
            generation = self._stored_generation()
            rows = self._db.execute("SELECT id, vector FROM refs ORDER BY id").fetchall()
            owners = self._db.execute("SELECT r.person_id, r.id FROM refs r JOIN people p USING (person_id) ORDER BY r.person_id, r.id").fetchall()
        index = VectorIndex(self._index.dimension, self._index.kind)
        shapes = {}
        if rows:
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            vectors = self._vectors(rows)
            index.add(ids, vectors)
            row_of = {int(ref_id): row for row, ref_id in enumerate(ids)}
            for person_id, group in itertools.groupby(owners, key=lambda owner: owner[0]):
                shapes[person_id] = _shape(vectors[[row_of[ref_id] for _, ref_id in group]])
        self._index, self._shapes, self._shape_arrays = index, shapes, None
        self._generation = generation

    # -- people ----------------------------------------------------------------------------

    def enroll(self, person_id: str, images: Sequence[SourceLike | np.ndarray], metadata: dict | None = None,
               sources: Sequence[str] | None = None, clean: bool | None = None, dropout: str | None = None) -> Person:
        """Add reference signatures (images of any kind, or embeddings) to a person, creating
        the person if new; `metadata` replaces the stored metadata when given. `clean` cleans
        the images first (None: `signver.cleaner.DEFAULT_CLEAN`); `dropout` reads colour images
        without that colour's marks (`signver.load_image`). All or nothing."""
        images, metadata_json, labels = _enrolment_request(person_id, images, metadata, sources)
        self._check_open()  # before the embedding's work
        vectors = self.extractor.vectors(images, clean=clean, dropout=dropout)  # before the transaction: no lock held while embedding
        with self._lock:
            self._check_open()
            with self._write():
                person_id = self._stored_id(person_id)
                everyone = self._refuse_duplicates(person_id, vectors, labels)
                before = self._stored_generation()
                self._db.execute("INSERT INTO people (person_id, enrolled_at) VALUES (?, ?) ON CONFLICT DO NOTHING", (person_id, _now()))
                if metadata_json is not None:
                    self._db.execute("UPDATE people SET metadata = ? WHERE person_id = ?", (metadata_json, person_id))
                now = _now()
                ids = [self._db.execute("INSERT INTO refs (person_id, vector, source, added_at) VALUES (?, ?, ?, ?)",
                                        (person_id, v.tobytes(), label, now)).lastrowid for v, label in zip(vectors, labels)]
                generation = self._bump()
            if before == self._generation:  # nobody else wrote since our last look: extend in place
                self._index.add(np.array(ids), vectors)
                self._shapes[person_id], self._shape_arrays = _shape(everyone), None
                self._generation = generation
            return self.get(person_id)

    def _refuse_duplicates(self, person_id: str, vectors: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Inside the write transaction: refuse a reference the person already has, or one given
        twice. A copy adds no evidence, yet it shrinks the references' spread, which the default
        "scaled" fusion divides by, and so changes the score of every later claim. Returns the
        person's references with these added, in id order (what identify's bound reads)."""
        rows = self._db.execute("SELECT id, vector, source FROM refs WHERE person_id = ? ORDER BY id", (person_id,)).fetchall()
        # a stored reference by its file's name alone: its folder may be the enrolling machine's, not for a service's clients
        names = [f"{PurePath(r[2]).name if r[2] else 'a reference'} (already enrolled)" for r in rows]
        return _refuse_copies(self.extractor, person_id, list(self._vectors([r[:2] for r in rows])), names, vectors, labels)

    def remove(self, person_id: str) -> Person:
        """Delete a person and all their references; returns what was removed."""
        return self.remove_all([person_id])[0]

    @_locked
    def remove_all(self, person_ids: Sequence[str]) -> list[Person]:
        """Delete people and all their references in one transaction: all of them, or, if any
        is not enrolled (another process may just have removed them), none. An id given twice,
        in any form, is removed and returned once; a single string is refused (wrap it as [id])."""
        if isinstance(person_ids, (str, bytes)):
            raise InputError(f"remove_all takes a list of person ids, not one {type(person_ids).__name__}: wrap it as [id]")
        if not isinstance(person_ids, Iterable):
            raise InputError(f"remove_all takes a list of person ids, not {type(person_ids).__name__}")
        stored = list({self.get(person_id).person_id: None for person_id in person_ids})  # unknown: said before any wait; twice: once
        if not stored:
            return []
        with self._write():  # looked up again inside it: two processes removing one person cannot both succeed
            removed = [self.get(person_id) for person_id in stored]
            before = self._stored_generation()
            ids = []
            for person in removed:
                ids += [r[0] for r in self._db.execute("SELECT id FROM refs WHERE person_id = ?", (person.person_id,))]
                self._db.execute("DELETE FROM people WHERE person_id = ?", (person.person_id,))
            generation = self._bump()
        if before == self._generation and self._index.supports_removal:
            self._index.remove(np.array(ids))
            for person in removed:
                self._shapes.pop(person.person_id, None)
            self._shape_arrays = None
            self._generation = generation
        return removed

    @_locked
    def get(self, person_id: str) -> Person:
        if not isinstance(person_id, str):
            raise InputError(f"a person id is a string, got {type(person_id).__name__}")
        person_id = self._stored_id(person_id)
        row = self._db.execute(
            "SELECT p.person_id, COUNT(r.id), p.metadata, p.enrolled_at FROM people p LEFT JOIN refs r USING (person_id) "
            "WHERE p.person_id = ? GROUP BY p.person_id", (person_id,)).fetchone()
        if row is None:
            raise PersonNotFoundError(f"no person {person_id!r} in the gallery")  # no path: service clients see this
        return self._person(row)

    def _stored_id(self, person_id: str) -> str:
        """The id as stored (`stored_form`). An id stored before ids were kept so is found as
        typed exactly, or in that form. The caller holds the lock."""
        if not isinstance(person_id, str):
            raise InputError(f"a person id is a string, got {type(person_id).__name__}")
        normal = stored_form(person_id)
        legacy = self._legacy_ids.get(normal)
        if (normal in self._legacy_ids and legacy is None
                and not self._db.execute("SELECT 1 FROM people WHERE person_id = ?", (person_id,)).fetchone()):
            # several when the gallery was opened: as many now? (some may have been removed since)
            matching = [p for (p,) in self._db.execute("SELECT person_id FROM people") if p != normal and stored_form(p) == normal]
            if len(matching) > 1:
                raise InputError(f"{person_id!r} could be any of several people enrolled before ids were kept in one form "
                                 "(they differ only in their kind of space or accent): give the id exactly as it was enrolled")
            legacy = matching[0] if matching else None
        for stored in (person_id, legacy):
            if stored and stored != normal and self._db.execute("SELECT 1 FROM people WHERE person_id = ?", (stored,)).fetchone():
                return stored
        return normal

    @_locked
    def list(self) -> list[Person]:
        rows = self._db.execute(
            "SELECT p.person_id, COUNT(r.id), p.metadata, p.enrolled_at FROM people p LEFT JOIN refs r USING (person_id) "
            "GROUP BY p.person_id ORDER BY p.person_id").fetchall()
        return [self._person(r) for r in rows]

    def _rows_in(self, query: str, values: list) -> list[tuple]:
        """`query`'s rows for `values` in its `IN ({})`, asked in parts that SQLite's limit on
        bound values (32,766 in common builds) never refuses. The caller holds the lock."""
        rows = []
        for start in range(0, len(values), IN_CHUNK):
            part = values[start : start + IN_CHUNK]
            rows += self._db.execute(query.format(",".join("?" * len(part))), part).fetchall()
        return rows

    @_locked
    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM people").fetchone()[0]

    @property
    @_locked
    def n_references(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM refs").fetchone()[0]

    @_locked
    def references(self, person_id: str) -> np.ndarray:
        """A person's reference vectors (K, D)."""
        person_id = self._stored_id(person_id)
        rows = self._db.execute("SELECT id, vector FROM refs WHERE person_id = ? ORDER BY id", (person_id,)).fetchall()
        if not rows:
            self.get(person_id)  # raises PersonNotFoundError
            raise GalleryError(f"the gallery is damaged: {person_id!r} has no references (they were deleted outside "
                               "signver); enrol references again or remove the person")  # no path: service clients see this
        return self._vectors(rows)

    @_locked
    def sharing_a_scan(self, person_id: str, newest: int | None = None) -> list[str]:
        """The other people holding a reference that is the same scan as one of `person_id`'s
        (nearer than the copies `enroll` refuses within one person), or of their `newest`
        references only (those just enrolled). One signing cannot be two people's: an id typed
        wrong, or one person enrolled twice, and a search would find both."""
        person_id = self.get(person_id).person_id
        with self._snapshot():  # the index and the rows read below are one state of the file
            self._refresh()
            rows = self._db.execute("SELECT id, vector FROM refs WHERE person_id = ? ORDER BY id", (person_id,)).fetchall()
            if not rows or len(self._index) <= len(rows):
                return []
            tolerance, wanted = copy_distance(self.extractor.card.threshold), len(rows) + 1  # past the person's own
            asked = rows if newest is None else rows[-newest:]
            while True:  # wider until every reference's farthest found is no copy: several others may hold its scan
                found, ids = self._index.search(self._vectors(asked), wanted)
                if wanted >= len(self._index) or (found[:, -1] >= tolerance).all():
                    break
                wanted *= 4
            near = sorted({int(i) for d, i in zip(found.ravel(), ids.ravel()) if i >= 0 and d < tolerance})
            owners = {owner for (owner,) in self._rows_in(
                "SELECT r.person_id FROM refs r JOIN people p USING (person_id) WHERE r.id IN ({})", near)}  # not orphaned rows
        return sorted(owners - {person_id})

    def sharing_note(self, person_id: str, added: int | None = None) -> str | None:
        """What to say after enrolling `added` references for `person_id` where `sharing_a_scan`
        finds others for those; nothing where that cannot be told (the person removed
        meanwhile): the enrolment stands either way."""
        try:
            others = self.sharing_a_scan(person_id, added)
        except SignverError:
            return None
        if not others:
            return None
        return (f"{person_id!r} now holds the same scan as {', '.join(repr(o) for o in others)}: one signing cannot be two "
                "people's (an id typed wrong, or one person enrolled twice?), and a search would find both")

    # -- questions -------------------------------------------------------------------------

    def _decide(self, person_id: str, questioned: np.ndarray, references: np.ndarray, started: float, embedded: float) -> ClaimResult:
        per_reference = distances(references, questioned[None, :])
        distance = float(fuse(per_reference, self.fusion, references))
        card = self.extractor.card
        rule = card.claim_rule(self.fusion, len(references))
        if rule is None and self.threshold is None and self.fusion == "scaled" and len(references) > 1:
            # the pair threshold is a distance; a scaled score is that distance over the references' spread
            raise ModelError(f"model {self.extractor.name}'s card has no claim rules, and its pair threshold does not apply to "
                             f"the 'scaled' fusion of {len(references)} references: run `signver calibrate --model "
                             f"{self.extractor.name}`, give a threshold, or use the 'min' fusion")
        threshold = self.threshold if self.threshold is not None else rule.threshold if rule else card.threshold
        return ClaimResult(
            **decision(distance, threshold, rule.calibration if rule else None, self.extractor.name, started, embedded,
                       copy_note(float(per_reference.min()), card.threshold, f"one of {person_id}'s references")),
            person_id=person_id,
            fusion=self.fusion,
            reference_distances=[round(float(d), 6) for d in per_reference],
        )

    def verify_claim(self, person_id: str, questioned: SourceLike | np.ndarray, clean: bool | None = None,
                     dropout: str | None = None) -> ClaimResult:
        """Did `person_id` write `questioned`? Its distances to all of the person's references
        are fused into one and compared with the threshold. `clean`: clean the image first
        (None: `signver.cleaner.DEFAULT_CLEAN`); `dropout`: as for `enroll`."""
        started = time.perf_counter()
        person_id = self.get(person_id).person_id  # an unknown person is the error to report, before any image is read
        vector = self.extractor.vectors([questioned], clean=clean, dropout=dropout)[0]
        embedded = time.perf_counter()
        return self._decide(person_id, vector, self.references(person_id), started, embedded)

    def identify(self, questioned: SourceLike | np.ndarray, k: int = 5, clean: bool | None = None,
                 dropout: str | None = None) -> list[ClaimResult]:
        """The k enrolled people most likely to have written `questioned`, best first, each
        scored as a claim, as `verify_claim` scores it, and ranked by `most_likely_first`.

        The index proposes the people owning the nearest references, at least max(k,
        MIN_PEOPLE_SCORED) of them. Everyone else has every reference farther than the farthest
        searched, which bounds their claim score; those whose bound could still rank them among
        the k are scored too (or, if many, the search widens). So with the exact index (the
        default) the answer is the one scoring everyone would give: a writer whose references
        vary can be the likeliest while farther than strangers whose references barely differ.
        `clean` and `dropout`: as for `verify_claim`.
        """
        k = check_k(k)
        self._check_open()
        started = time.perf_counter()
        vector = self.extractor.vectors([questioned], clean=clean, dropout=dropout)[0]
        embedded = time.perf_counter()
        scored: dict[str, ClaimResult] = {}
        asked: set[str] = set()  # scored, or found without references (removed meanwhile, or damaged)

        def score(people: list[str]) -> None:
            asked.update(people)
            by_person: dict[str, list[tuple[int, bytes]]] = {}
            for person_id, ref_id, blob in self._rows_in("SELECT person_id, id, vector FROM refs WHERE person_id IN ({}) ORDER BY id", people):
                by_person.setdefault(person_id, []).append((ref_id, blob))
            scored.update({p: self._decide(p, vector, self._vectors(blobs), started, embedded) for p, blobs in by_person.items()})

        with self._lock, self._snapshot():
            self._refresh()  # inside the snapshot: the index and the rows read below are one state of the file
            wanted = min(max(k, MIN_PEOPLE_SCORED), len(self))
            searched = max(wanted * CANDIDATES_PER_RESULT, 1)  # 1: an index of orphaned rows alone must still be searched through
            while True:
                found, ids = self._index.search(vector, searched)
                ids = [int(i) for i in ids[0] if i >= 0]
                if not ids:
                    return []
                owner = dict(self._rows_in("SELECT r.id, r.person_id FROM refs r JOIN people p USING (person_id) WHERE r.id IN ({})", ids))
                score([p for p in dict.fromkeys(owner[i] for i in ids if i in owner) if p not in asked])
                if searched >= len(self._index):  # all asked for (an approximate index may give fewer)
                    return most_likely_first(list(scored.values()))[:k]
                while len(scored) >= k:
                    ranked = most_likely_first(list(scored.values()))
                    contenders = self._contenders(ranked, k, float(found[0, len(ids) - 1]), asked)
                    if not contenders:
                        return ranked[:k]
                    if len(contenders) > max(wanted, CONTENDERS_SCORED):
                        break  # many: a wider search raises everyone's bound
                    score(contenders)
                searched *= 4

    def _contenders(self, ranked: list[ClaimResult], k: int, farthest_searched: float, asked: set[str]) -> list[str]:
        """The people not yet scored who could rank above the k-th of `ranked`: every reference of theirs is at
        least `farthest_searched` away, so their claim score is at least that distance (over
        their references' spread, for the "scaled" fusion); `most_likely_first` ranks by what
        that score decides, each number of references by its own rule. (An approximate index
        may have missed nearer references, so there the bound, and the answer, are approximate.)"""
        card = self.extractor.card
        people, references, spreads, row_of = self._shape_table()
        unscored = np.ones(len(people), bool)
        unscored[[row_of[p] for p in asked if p in row_of]] = False
        kth = ranked[k - 1]
        by_ratio = all(r.log10_lr is not None for r in ranked)  # as most_likely_first ranks
        could = np.zeros(len(people), bool)
        for count in np.unique(references[unscored]):
            group = unscored & (references == count)
            lowest = np.full(int(group.sum()), max(farthest_searched - 1e-5, 0.0))  # FAISS's and numpy's float32 sums differ a little
            if self.fusion == "scaled" and count > 1:
                lowest /= np.maximum(spreads[group], 1e-6) ** SPREAD_EXPONENT
            rule = card.claim_rule(self.fusion, int(count))
            threshold = self.threshold if self.threshold is not None else rule.threshold if rule else card.threshold
            passes = lowest <= threshold if threshold is not None else np.zeros(len(lowest), bool)
            over = lowest / threshold if threshold else lowest
            if by_ratio and rule is None:
                beats = np.ones(len(lowest), bool)  # scoring them would change how everyone is ranked
            elif by_ratio:
                ratio = rule.calibration.log10_lr(lowest)
                beats = (ratio > kth.log10_lr) | (ratio == kth.log10_lr) & (over <= _over_threshold(kth))
            else:
                beats = over <= _over_threshold(kth)
            could[group] = (passes & (not kth.verified)) | ((passes == kth.verified) & beats)  # the decision ranks first
        return [people[i] for i in np.flatnonzero(could)]

    def _shape_table(self) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, int]]:
        """`_shapes` as arrays (people, references, spreads) and each person's row, made again
        only after a change."""
        if self._shape_arrays is None:
            people = list(self._shapes)
            self._shape_arrays = (people, np.array([self._shapes[p][0] for p in people], np.int64),
                                  np.array([self._shapes[p][1] for p in people], np.float64), {p: row for row, p in enumerate(people)})
        return self._shape_arrays

    @_locked
    def integrity(self) -> dict:
        """SQLite's own integrity check and whether the index holds exactly the stored rows."""
        with self._snapshot():
            self._refresh()
            check = self._db.execute("PRAGMA integrity_check").fetchone()[0]
            orphaned = self._db.execute("SELECT COUNT(*) FROM refs WHERE person_id NOT IN (SELECT person_id FROM people)").fetchone()[0]
            return {"sqlite": check, "references": self.n_references, "indexed": len(self._index), "people": len(self),
                    "orphaned_references": orphaned}  # left by hand edits with foreign keys off; never searched

    def close(self) -> None:
        """Close the file, after any write under way (one waiting for another process has let
        go of the lock) has finished or given up. Closing again does nothing."""
        with self._lock:
            while self._writes:
                self._waiting.wait()
            self._db.close()
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:  # sqlite3's own "Cannot operate on a closed database" is no error of signver's
            raise GalleryError(f"the gallery {self.path.name} is closed; open it again to use it")

    def __enter__(self) -> Gallery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def enroll_creating(path: str | os.PathLike | None, model: str | None, person_id: str, images: Sequence[SourceLike | np.ndarray],
                    metadata: dict | None = None, sources: Sequence[str] | None = None, clean: bool | None = None,
                    dropout: str | None = None) -> tuple[Person, Path, str | None]:
    """`Gallery(path, model).enroll(...)`, the gallery's path (None: the default) and its
    `sharing_note` for the person, making a
    gallery that is not there yet only once nothing can refuse the enrolment but the gallery
    itself: the id, metadata, images and copies among them are checked and the images embedded
    first. A refused first enrolment then leaves no file (nor folder): a mistyped path would
    otherwise hold an empty gallery bound to a model, and later calls would say "no person"
    where they said "no gallery"."""
    target = Path(path) if path is not None else default_gallery_path()
    try:
        there = target.exists() or target.is_symlink()
    except OSError:  # a name too long: Gallery says so
        there = True
    if not there:
        checked, _, labels = _enrolment_request(person_id, images, metadata, sources)
        extractor = get_extractor(model)
        vectors = extractor.vectors(checked, clean=clean, dropout=dropout)
        _refuse_copies(extractor, person_id, [], [], vectors, labels)
        with Gallery(target, model=model) as store:
            if store.extractor.name != extractor.name:  # made meanwhile for another model; the inputs may be read once only
                raise GalleryError(f"gallery {store.path} was made meanwhile, by another program, for model {store.extractor.name!r}: "
                                   "nothing was enrolled; enrol again to use it")
            person = store.enroll(person_id, list(vectors), metadata=metadata, sources=sources)
            return person, store.path, store.sharing_note(person.person_id, len(vectors))
    with Gallery(target, model=model) as store:
        person = store.enroll(person_id, images, metadata=metadata, sources=sources, clean=clean, dropout=dropout)
        return person, store.path, store.sharing_note(person.person_id, len(images))


def _enrolment_request(person_id: str, images, metadata: dict | None, sources: Sequence[str] | None) -> tuple[list, str | None, list[str]]:
    """The checked images as a list, the metadata as JSON (None: keep the stored) and the
    images' labels, or the InputError that refuses them: all that needs no gallery."""
    images = images_to_enrol(person_id, images)
    if metadata is not None and not isinstance(metadata, dict):
        raise InputError("metadata must be a JSON object (a dict)")
    if metadata is not None and _depth(metadata) > MAX_METADATA_DEPTH:
        raise InputError(f"metadata is nested more than {MAX_METADATA_DEPTH} levels deep")
    try:
        metadata_json = None if metadata is None else json.dumps(metadata, allow_nan=False)
        if metadata is not None:  # a lone surrogate ("\ud800") is stored escaped, then no answer carrying it can be encoded
            json.dumps(metadata, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InputError("metadata must be text: it holds a lone surrogate (an escape such as \\ud800 that is half of a "
                         "character), which cannot be written as UTF-8") from None
    except (TypeError, ValueError, RecursionError) as error:
        raise InputError(f"metadata must be JSON-serialisable: {error}") from None
    if isinstance(sources, (str, bytes, os.PathLike)):  # one name, not a name per character
        raise InputError(f"enrolling {person_id!r}: sources is a list of names, one per image, not one {type(sources).__name__}")
    if sources is not None and len(sources) != len(images):
        raise InputError(f"enrolling {person_id!r}: {len(sources)} source names for {len(images)} images")
    if sources is not None and not all(isinstance(label, (str, bytes, os.PathLike)) for label in sources):
        raise InputError(f"enrolling {person_id!r}: source names must be strings or paths")
    return images, metadata_json, [printable_name(label) for label in sources] if sources is not None else [""] * len(images)


def _refuse_copies(extractor: Extractor, person_id: str, known: list[np.ndarray], names: list[str], vectors: np.ndarray,
                   labels: Sequence[str]) -> np.ndarray:
    """Refuse a vector within NEAR_COPY_SHARE of the threshold of one `known` (`names` say
    which) or of one before it; the known vectors with these added."""
    tolerance = copy_distance(extractor.card.threshold)
    for number, (vector, label) in enumerate(zip(vectors, labels), 1):
        name = label or f"image {number}"
        if known:
            gaps = distances(np.stack(known), vector[None, :])
            if gaps.min() < tolerance:
                raise DuplicateReferenceError(f"{name} is the same signature as {names[int(gaps.argmin())]} for {person_id!r} "
                                              f"(distance {gaps.min():.4f}, under {tolerance:.4f}: the same scan, perhaps saved again); "
                                              "a copy would skew every claim, so nothing was enrolled")
        known.append(vector)
        names.append(f"{name} (in this enrolment)")
    return np.stack(known)


def most_likely_first(results: list[ClaimResult]) -> list[ClaimResult]:
    """Accepted claims first, then by the evidence for them. Fused distances of people with
    different numbers of references are on different scales (the "scaled" fusion divides by the
    references' spread, and one reference has none; each number of references has its own
    threshold), so ranking by distance put a stranger with one reference above the writer with
    three. The claim rules' likelihood ratios are on one scale; without them, distance over
    threshold. Their values at each rule's threshold differ a little, so an accepted claim could
    rank under a rejected one by ratio alone: the decision comes first."""
    if all(r.log10_lr is not None for r in results):
        return sorted(results, key=lambda r: (not r.verified, -r.log10_lr, _over_threshold(r)))
    return sorted(results, key=lambda r: (not r.verified, _over_threshold(r)))


def _over_threshold(result: ClaimResult) -> float:
    return result.distance / result.threshold if result.threshold > 0 else result.distance  # a threshold of 0 accepts only exact copies


def _shape(references: np.ndarray) -> tuple[int, float]:
    """How many references a person has and their spread: what bounds their claim score unseen."""
    return len(references), float(reference_spread(references))


class _Transaction:
    """BEGIN ... COMMIT, or ROLLBACK on any error. IMMEDIATE for writes (writers queue);
    DEFERRED for a read snapshot (in WAL mode readers never wait for the writer).

    A write holds the gallery's lock (`waiting`'s) from BEGIN to COMMIT. While another process
    holds the file's write lock it does not wait inside SQLite, which would keep the shared
    connection, and with it every read of this process (a service's health checks too), for up
    to BUSY_TIMEOUT: it tries every WRITE_POLL seconds, letting go of the lock in between."""

    def __init__(self, db: sqlite3.Connection, mode: str, waiting: threading.Condition | None = None):
        self.db, self.mode, self.waiting = db, mode, waiting

    def __enter__(self) -> sqlite3.Connection:
        if self.waiting is None:
            try:
                self.db.execute(f"BEGIN {self.mode}")
            except sqlite3.OperationalError as error:
                raise GalleryBusyError(_busy(error)) from error
            return self.db
        self.waiting.acquire()
        try:
            deadline = time.monotonic() + BUSY_TIMEOUT
            while True:
                try:
                    self.db.execute("PRAGMA busy_timeout = 0")
                    try:
                        self.db.execute(f"BEGIN {self.mode}")
                        return self.db
                    finally:
                        self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
                except sqlite3.OperationalError as error:
                    if (getattr(error, "sqlite_errorcode", 0) & 0xFF) != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:  # BUSY_RECOVERY too
                        raise GalleryBusyError(_busy(error)) from error
                self.waiting.wait(WRITE_POLL)
        except BaseException:
            self.waiting.release()
            raise

    def __exit__(self, kind, error, trace) -> None:
        try:
            if kind is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except sqlite3.OperationalError as failure:  # busy past the wait, disk full
                    error = failure
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError):
                raise GalleryBusyError(_busy(error)) from error
        finally:
            if self.waiting is not None:
                self.waiting.release()


def _busy(error: sqlite3.OperationalError) -> str:
    return f"the gallery is busy or cannot be written (SQLite said: {error}); nothing was changed, try again"
