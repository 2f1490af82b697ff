"""Document in, decisions out: detect -> crop -> clean -> embed -> match, in one call.

    from signver.gallery import Gallery
    from signver.pipeline import Pipeline

    pipeline = Pipeline(Gallery("bank.sqlite"))
    result = pipeline.run("cheque.pdf", person_id="C-1042")      # verify every signature found
    for signature in result.signatures:
        signature.page, signature.box, signature.score, signature.decision["verified"]
    pipeline.run("letter.png")                                   # no claim: identify (1:N) instead
    result.to_dict()                                             # JSON-ready, with timings

The same object answers single-signature questions (`verify_pair`, `verify_claim`,
`identify`, `embed`, `clean`) so that the HTTP service is a thin layer over it. Every input
is read through `signver.images` with this pipeline's size, pixel and page limits. The
detector and cleaner models load lazily: a pipeline without them still verifies single
signatures, and says which model is missing when asked to detect or clean.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .api import VerificationResult, decision
from .cleaner import check_clean
from .detector import SIDEWAYS_NOTE, Box, check_score, sideways_note
from .errors import InputError, ModelError, SignverError
from .extractor import Extractor, get_extractor
from .images import DEFAULT_DPI, DEFAULT_MAX_BYTES, DEFAULT_MAX_PAGES, DEFAULT_MAX_PIXELS, SourceLike, check_dpi, check_dropout, check_limits, errors_naming, load_image, load_pages
from .matcher import check_k, check_threshold, copy_note, distances
from .normalize import normalize

if TYPE_CHECKING:
    from .gallery import ClaimResult, Gallery

log = logging.getLogger(__name__)

DEFAULT_K = 5


class ModelUnavailableError(ModelError):
    """A model this request needs (detector, cleaner) is not installed or failed to load."""

    http_status = 503


@dataclass
class SignatureResult:
    """One signature found on a page: where, how sure the detector was, and the decision.

    `decision` is the claim's result (verify mode), `candidates` the ranked people (identify
    mode); `note` what its decision alone does not say (a box taller than wide: a sideways
    signature, read turned `turned` degrees clockwise); `error` says why this signature could
    not be decided (e.g. no ink left after cleaning) while the others still were. `image` is
    the crop the extractor saw (not in `to_dict`)."""

    index: int
    page: int
    box: dict
    score: float
    decision: dict | None = None
    candidates: list[dict] | None = None
    error: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    image: np.ndarray | None = field(default=None, repr=False)
    note: str | None = None  # what the decision alone does not say: the box is of a sideways signature
    turned: int = 0  # degrees clockwise the crop was turned to be read (a sideways box: 0, 90 or 270, whichever matched)

    def to_dict(self) -> dict:
        return {"index": self.index, "page": self.page, "box": self.box, "score": self.score, "decision": self.decision,
                "candidates": self.candidates, "error": self.error, "note": self.note, "turned": self.turned, "timings_ms": _rounded_timings(self.timings_ms)}


@dataclass
class DocumentResult:
    """Everything found on a document: its pages' sizes, one entry per signature found (in
    page order, best detector score first within a page), the models used and timings.
    `mode` is "verify" (a claimed person), "identify" (1:N) or "detect" (no gallery)."""

    mode: str
    pages: list[dict]
    signatures: list[SignatureResult]
    person_id: str | None = None
    person: dict | None = None
    cleaned: bool = False
    models: dict[str, str | None] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    page_images: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def verified(self) -> bool | None:
        """Verify mode: whether the document holds a signature verified as the claimed person.
        A contract signed by several people holds the others' too, which are not theirs."""
        return any(s.decision is not None and s.decision["verified"] for s in self.signatures) if self.mode == "verify" else None

    def to_dict(self) -> dict:
        return {"mode": self.mode, "person_id": self.person_id, "verified": self.verified, "person": self.person, "cleaned": self.cleaned,
                "pages": self.pages, "signatures": [s.to_dict() for s in self.signatures], "models": self.models,
                "timings_ms": _rounded_timings(self.timings_ms)}


def _rounded_timings(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}


class _Timer:
    def __init__(self):
        self.times: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = self.times.get(name, 0.0) + 1000 * (now - self.last)
        self.last = now


class _Lazy:
    """A model loaded on first use, once, remembering why it failed if it did."""

    def __init__(self, kind: str, load: Callable[[], Any]):
        self.kind, self._load = kind, load
        self._value: Any = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._value is None and self._error is None:
            with self._lock:
                if self._value is None and self._error is None:
                    try:
                        self._value = self._load()
                    except Exception as error:  # a missing file, a module being rewritten: the model is unavailable
                        log.warning("%s unavailable: %s", self.kind, error)
                        self._error = f"the signature {self.kind} model is not available on this installation"
        if self._value is None:
            raise ModelUnavailableError(self._error)
        return self._value

    @property
    def available(self) -> bool:
        try:
            self.get()
            return True
        except ModelUnavailableError:
            return False


def _load_detector(model: str | None):
    """The named detector; for the default, the shipped network, else (none shipped) the
    classical detector of `signver.detector_baseline`, which `models()` then names."""
    from .detector import get_detector

    try:
        return get_detector(model)
    except Exception:
        if model is not None:
            raise
        try:
            from .detector_baseline import BaselineDetector
        except ImportError:
            raise ModelUnavailableError("no signature detector model is installed") from None
        log.warning("no detector model installed: using the classical detector (signver.detector_baseline)")
        fallback = BaselineDetector()
        fallback.name = "classical-baseline (no detector model installed)"
        return fallback


def _load_cleaner(model: str | None):
    from .cleaner import get_cleaner

    return get_cleaner(model)


def _check_named(name: str, kind: str) -> None:
    """Refuse a model name with no card, or the card of another kind of model (ModelError, InputError)."""
    from .models import load_card

    card = load_card(name)
    if card.kind != kind:
        raise InputError(f"model {card.name} is {card.a_kind}, not a signature {kind}")


class Pipeline:
    """Detect, crop, clean and verify or identify, with the limits of one deployment.

    `detector`: a detector model name (None: the default), or any object with
    `find(page, min_score) -> (boxes (K, 4), scores (K,))` and a `threshold`, such as
    `signver.detector.Detector`. `cleaner`: a cleaner model name, or any object with
    `clean(gray) -> gray`. `clean`: whether signatures are cleaned when a call does not say
    (None: the cleaner's own default, if its model is installed). `dropout`: a colour (red,
    green, blue) whose marks, such as a stamp over the signature, every input is read without
    (see `signver.load_image`).
    """

    def __init__(self, gallery: Gallery | None = None, *, model: str | None = None, detector: Any = None,
                 cleaner: Any = None, clean: bool | None = None, dpi: float = DEFAULT_DPI,
                 detect_threshold: float | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS, max_pages: int = DEFAULT_MAX_PAGES, dropout: str | None = None):
        check_score(detect_threshold)  # settings first, before any model loads
        dpi, self.dropout = check_dpi(dpi), check_dropout(dropout)
        check_limits(max_bytes, max_pixels, max_pages)
        if gallery is not None and not hasattr(gallery, "extractor"):  # a path given for the gallery itself
            raise InputError(f"a pipeline takes an open Gallery (signver.gallery.Gallery(path)), not {type(gallery).__name__} {gallery!r}")
        self.gallery = gallery
        self.extractor: Extractor = gallery.extractor if gallery is not None else get_extractor(model)
        if gallery is not None and model is not None and get_extractor(model).name != gallery.extractor.name:
            raise InputError(f"the gallery holds model {gallery.extractor.name!r}, not {model!r}")
        for kind, named in (("detector", detector), ("cleaner", cleaner)):
            if isinstance(named, str):  # a model asked for by name must exist: a misspelt cleaner turned cleaning off in silence
                _check_named(named, kind)
        self._detector = _Lazy("detector", lambda: _load_detector(detector)) if detector is None or isinstance(detector, str) \
            else _Lazy("detector", lambda: detector)
        self._cleaner = _Lazy("cleaner", lambda: _load_cleaner(cleaner)) if cleaner is None or isinstance(cleaner, str) \
            else _Lazy("cleaner", lambda: cleaner)
        self.clean_default = check_clean(clean)
        self.dpi, self.detect_threshold = dpi, detect_threshold
        self.max_bytes, self.max_pixels, self.max_pages = int(max_bytes), int(max_pixels), int(max_pages)

    def reading(self, dropout: str | None, dpi: float | None = None) -> Pipeline:
        """This pipeline, sharing its gallery, models and limits, reading inputs without
        `dropout`'s colour (None: as grey) and PDF pages at `dpi` (None: as this one does): for
        one request that asks otherwise."""
        other = copy.copy(self)
        other.dropout = check_dropout(dropout)
        if dpi is not None:
            other.dpi = check_dpi(dpi)
        return other

    # -- models ----------------------------------------------------------------------------

    def models(self) -> dict[str, dict]:
        """What each stage runs: name and whether it is loaded (loads them if not yet)."""
        out = {"extractor": {"name": self.extractor.name, "loaded": True}}
        for kind, lazy in (("detector", self._detector), ("cleaner", self._cleaner)):
            loaded = lazy.available
            out[kind] = {"name": getattr(lazy.get(), "name", type(lazy.get()).__name__) if loaded else None, "loaded": loaded}
        return out

    @property
    def detector(self) -> Any:
        return self._detector.get()

    @property
    def cleaner(self) -> Any:
        return self._cleaner.get()

    def resolve_clean(self, clean: bool | None, document_crops: bool = False) -> bool:
        """Whether to clean: the caller's choice, else this pipeline's, else the cleaner's
        default when its model is installed (its own default for crops cut from documents,
        which carry printed text and lines). Asking for cleaning without a cleaner raises."""
        clean = check_clean(clean)
        if clean is None:
            clean = self.clean_default
        if clean is None:
            if not self._cleaner.available:
                return False
            from .cleaner import DEFAULT_CLEAN_DOCUMENT_CROPS, resolve

            return DEFAULT_CLEAN_DOCUMENT_CROPS if document_crops else resolve(None)
        if clean:
            self._cleaner.get()  # raises ModelUnavailableError naming the cleaner
        return bool(clean)

    # -- stages ----------------------------------------------------------------------------

    def load_signature(self, source: SourceLike) -> np.ndarray:
        """One signature image (page 1 of a PDF or TIFF) as grey uint8, within the limits."""
        return load_image(source, dpi=self.dpi, max_bytes=self.max_bytes, max_pixels=self.max_pixels, dropout=self.dropout)

    def load_document(self, source: SourceLike) -> list[np.ndarray]:
        return load_pages(source, dpi=self.dpi, max_bytes=self.max_bytes, max_pixels=self.max_pixels, max_pages=self.max_pages,
                          dropout=self.dropout)

    def find(self, pages: Sequence[np.ndarray]) -> list[Box]:
        """Signature boxes on every page, in page order, best score first within a page."""
        detector = self.detector
        threshold = self.detect_threshold if self.detect_threshold is not None else getattr(detector, "threshold", None)
        found = []
        for index, page in enumerate(pages):
            boxes, scores = detector.find(page, threshold)
            found += [Box(index, *map(float, box), float(score)) for box, score in zip(boxes, scores)]
        return found

    def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Unit vectors (N, D) of grey images exactly as given: any cleaning has been done (or
        not) by `prepare`, so the extractor is asked to normalise and embed, nothing more."""
        size = self.extractor.card.input_size
        return self.extractor.embed_normalized([normalize(image, size) for image in images])

    def prepare(self, gray: np.ndarray, clean: bool) -> np.ndarray:
        """The image the extractor should see: cleaned when asked, unless cleaning left no
        ink (then the image as it came: a signature is more likely there than nothing)."""
        if not clean:
            return gray
        from .normalize import ink_mask

        cleaned = self.cleaner.clean(gray)
        try:
            ink_mask(cleaned)
        except SignverError:
            return gray
        return cleaned

    # -- single signatures -----------------------------------------------------------------

    def _vector(self, source: SourceLike, clean: bool | None, timer: _Timer, label: str | None = None) -> np.ndarray:
        do_clean = self.resolve_clean(clean)
        with errors_naming(source, label):  # which of two is blank, say: by its name, else by `label`
            gray = self.load_signature(source)
            timer.lap("load")
            image = self.prepare(gray, do_clean)
            timer.lap("clean")
            vector = self.embed_images([image])[0]
        timer.lap("embed")
        return vector

    def embed(self, source: SourceLike, clean: bool | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """Unit-length embedding of one signature, and the timings of its stages."""
        timer = _Timer()
        vector = self._vector(source, clean, timer)
        return vector, _total(timer)

    def clean(self, source: SourceLike) -> np.ndarray:
        """The cleaned signature image (uint8 grey, ink dark on white, same size)."""
        return self.cleaner.clean(self.load_signature(source))

    def verify_pair(self, a: SourceLike, b: SourceLike, threshold: float | None = None, clean: bool | None = None) -> VerificationResult:
        """Were `a` and `b` written by the same person? As `signver.verify` for two images
        (not embeddings), with this pipeline's limits and cleaning."""
        check_threshold(threshold)  # before any work
        timer = _Timer()
        started = timer.last
        vector_a = self._vector(a, clean, timer, "image 1 of 2")
        vector_b = self._vector(b, clean, timer, "image 2 of 2")
        embedded = time.perf_counter()
        threshold = self.extractor.card.threshold if threshold is None else float(threshold)
        distance = float(distances(vector_a, vector_b))
        result = VerificationResult(**decision(distance, threshold, self.extractor.card.calibration, self.extractor.name, started,
                                               embedded, copy_note(distance, self.extractor.card.threshold, "the reference")))
        timer.lap("match")
        result.timings_ms = _total(timer)
        return result

    def enroll(self, person_id: str, sources: Sequence[SourceLike], metadata: dict | None = None,
               names: Sequence[str] | None = None, clean: bool | None = None):
        """Enrol (or add references to) a person from signature images, read with this
        pipeline's limits and cleaned as `clean` says; all or nothing, as `Gallery.enroll`."""
        vectors = self.enrollment_vectors(person_id, sources, clean)
        return self._gallery().enroll(person_id, vectors, metadata=metadata, sources=names)

    def enrollment_vectors(self, person_id: str, sources: Sequence[SourceLike], clean: bool | None = None) -> list[np.ndarray]:
        """The reference vectors `enroll` would store, computed without touching the gallery
        (so a caller can give up on the slow part and still never half-write)."""
        from .gallery import images_to_enrol

        self._gallery()
        sources = images_to_enrol(person_id, sources)
        do_clean = self.resolve_clean(clean)
        size, normalized = self.extractor.card.input_size, []
        for source in sources:
            gray = self.load_signature(source)
            with errors_naming(source):
                normalized.append(normalize(self.prepare(gray, do_clean), size))
        return list(self.extractor.embed_normalized(normalized))

    def _gallery(self) -> Gallery:
        if self.gallery is None:
            raise InputError("this pipeline has no gallery of enrolled people")
        return self.gallery

    def verify_claim(self, person_id: str, source: SourceLike, clean: bool | None = None) -> ClaimResult:
        """Did `person_id` write this signature? Checked against all of their references."""
        gallery = self._gallery()
        gallery.get(person_id)  # an unknown person is the error to report, before any image is read
        timer = _Timer()
        vector = self._vector(source, clean, timer)
        result = gallery.verify_claim(person_id, vector)
        timer.lap("match")
        result.timings_ms = _total(timer)
        return result

    def identify(self, source: SourceLike, k: int = DEFAULT_K, clean: bool | None = None) -> list[ClaimResult]:
        """The k enrolled people most likely to have written this signature, best first (`signver.gallery.most_likely_first`)."""
        gallery = self._gallery()
        k = check_k(k)
        timer = _Timer()
        vector = self._vector(source, clean, timer)
        results = gallery.identify(vector, k)
        timer.lap("match")
        for result in results:
            result.timings_ms = _total(timer)
        return results

    # -- documents -------------------------------------------------------------------------

    def detect(self, document: SourceLike) -> DocumentResult:
        """The signatures on every page of `document`, boxes only."""
        return self.run(document, mode="detect")

    def run(self, document: SourceLike, person_id: str | None = None, *, k: int = DEFAULT_K, clean: bool | None = None,
            mode: str | None = None) -> DocumentResult:
        """Detect every signature on `document` (image, multi-page TIFF or PDF), crop, clean
        and then verify each against `person_id`, or identify each (k candidates) when no
        person is claimed, or stop at the boxes when there is no gallery or mode="detect"."""
        mode = mode or ("verify" if person_id is not None else "identify" if self.gallery is not None else "detect")
        if mode not in ("verify", "identify", "detect"):
            raise InputError(f"mode must be verify, identify or detect, got {mode!r}")
        if mode == "verify" and person_id is None:
            raise InputError("verifying a document needs a claimed person_id")
        if mode != "verify" and person_id is not None:  # else the result would carry a claim never checked
            raise InputError(f"a person_id is claimed in verify mode only, not in {mode} mode")
        if mode == "identify":
            k = check_k(k)
        timer = _Timer()
        started = timer.last
        person = self._gallery().get(person_id).to_dict() if mode == "verify" else None
        if mode == "identify":
            self._gallery()
        do_clean = self.resolve_clean(clean, document_crops=True) if mode != "detect" else False
        detector = self.detector  # the missing model is the error to report, before decoding anything
        pages = self.load_document(document)
        timer.lap("load")
        boxes = self.find(pages)
        timer.lap("detect")
        from .detector import crop

        signatures = [SignatureResult(i, b.page, {k_: v for k_, v in b.to_dict().items() if k_ not in ("page", "score")},
                                      round(b.score, 4), note=sideways_note(b)) for i, b in enumerate(boxes)]
        if mode != "detect" and signatures:
            self._decide(pages, boxes, signatures, mode, person_id, k, do_clean, timer, crop)
        result = DocumentResult(
            mode=mode, person_id=person_id, person=person, cleaned=do_clean and mode != "detect",
            pages=[{"page": i, "width": int(p.shape[1]), "height": int(p.shape[0])} for i, p in enumerate(pages)],
            signatures=signatures, page_images=pages,
            models={"detector": getattr(detector, "name", type(detector).__name__),
                    "cleaner": getattr(self.cleaner, "name", None) if do_clean else None,
                    "extractor": self.extractor.name if mode != "detect" else None},
        )
        result.timings_ms = {**timer.times, "total": 1000 * (time.perf_counter() - started)}
        return result

    def _decide(self, pages, boxes, signatures, mode, person_id, k, do_clean, timer, crop) -> None:
        readings: list[list[tuple[int, np.ndarray]]] = []  # per signature: (degrees turned clockwise, prepared crop)
        for box, signature in zip(boxes, signatures):
            start = time.perf_counter()
            piece = crop(pages[box.page], box)
            cropped = time.perf_counter()
            turns = SIDEWAYS_TURNS if signature.note == SIDEWAYS_NOTE else (0,)
            # each way cleaned as it is read, so a page turned either way is cleaned alike
            readings.append([(degrees, self.prepare(np.ascontiguousarray(np.rot90(piece, -degrees // 90)), do_clean)) for degrees in turns])
            signature.image = readings[-1][0][1]
            signature.timings_ms = {"crop": 1000 * (cropped - start), "clean": 1000 * (time.perf_counter() - cropped)}
        timer.lap("clean")
        start = time.perf_counter()
        try:
            ways = self._ways(readings)  # one batch for the whole document
        except SignverError:  # one bad crop (e.g. no ink): embed one by one to say which
            ways = []
            for reading, signature in zip(readings, signatures):
                try:
                    ways.extend(self._ways([reading]))
                except SignverError as error:
                    ways.append(None)
                    signature.error = str(error)
        each = 1000 * (time.perf_counter() - start) / len(readings)
        timer.lap("embed")
        gallery = self._gallery()
        for vectors, reading, signature in zip(ways, readings, signatures):
            signature.timings_ms["embed"] = each
            if vectors is None:
                continue
            start = time.perf_counter()
            if mode == "verify":
                claims = [gallery.verify_claim(person_id, vector) for vector in vectors]
                way = min(range(len(claims)), key=lambda i: claims[i].distance)
                claims[way].timings_ms = {}
                signature.decision = _claim_dict(claims[way])
            else:
                found = [gallery.identify(vector, k) for vector in vectors]
                way = _best_found(found)
                signature.candidates = [_claim_dict(c) for c in found[way]]
            if len(reading) > 1 and (mode == "verify" or any(found)):  # no candidate any way: no way was chosen
                signature.turned, signature.image = reading[way]
                signature.note = _turned_note(signature.turned, mode)
            signature.timings_ms["match"] = 1000 * (time.perf_counter() - start)
        timer.lap("match")

    def _ways(self, readings: Sequence[Sequence[tuple[int, np.ndarray]]]) -> list[list[np.ndarray]]:
        """The vectors of each signature's readings (prepared crops), in one batch."""
        size = self.extractor.card.input_size
        vectors = iter(self.extractor.embed_normalized([normalize(image, size) for reading in readings for _, image in reading]))
        return [[next(vectors) for _ in reading] for reading in readings]


def _best_found(found: list[list]) -> int:
    """Of the candidate lists of one signature read several ways, the one whose best candidate ranks highest."""
    from .gallery import most_likely_first

    tops = [candidates[0] for candidates in found if candidates]
    if len(found) == 1 or not tops:
        return 0
    best = most_likely_first(tops)[0]
    return next(i for i, candidates in enumerate(found) if candidates and candidates[0] is best)


SIDEWAYS_TURNS = (0, 270, 90)  # degrees clockwise a sideways box is read at: as found, and a quarter each way


def _turned_note(degrees: int, mode: str) -> str:
    """Which way a sideways signature was read: of as found and its two quarter turns, the one
    nearest the claimed person's references (verify) or whose best candidate ranks highest (identify)."""
    way = {0: "as found", 90: "turned a quarter clockwise", 270: "turned a quarter anticlockwise"}[degrees]
    nearer = "nearest the person's references" if mode == "verify" else "whose best candidate ranks highest"
    return f"{SIDEWAYS_NOTE}; read {way}, the way {nearer}"


def _claim_dict(claim) -> dict:
    out = claim.to_dict()
    out.pop("timings_ms", None)
    return out


def _total(timer: _Timer) -> dict[str, float]:
    times = dict(timer.times)
    times["total"] = sum(times.values())
    return times
