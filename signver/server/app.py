"""The HTTP API and the web app: FastAPI over `signver.pipeline.Pipeline`.

Images travel as multipart file fields and are sniffed from their content, never trusted by
name or declared type; every answer is JSON (PNG for /v1/clean). A `signver` error becomes its
`http_status` with `{"error": message, "type": name}` in one handler; anything unexpected is
logged and answered 500 `{"error": "internal error"}` without a trace. Model work runs in
worker threads, at most `workers` at once, each request under a time limit.
"""

from __future__ import annotations

import base64
import hmac
import io
import json
import logging
import math
import os
import re
import threading
import typing
import weakref
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import anyio
import cv2
import numpy as np
from fastapi import Depends, FastAPI, File, Form, Path as PathParam, Request, UploadFile, params
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..errors import InputError, SignverError
from ..gallery import Gallery
from ..images import DEFAULT_MAX_PIXELS, check_dropout, check_limits, shape_note
from ..models import set_spin_wait
from ..pipeline import ModelUnavailableError, Pipeline

log = logging.getLogger("signver.server")
STATIC_DIR = Path(__file__).parent / "static"
PREVIEW_PAGE_SIDE = 1600  # longest side of a page preview sent to the web app
PREVIEW_CROP_SIDE = 480


@dataclass(frozen=True)
class Settings:
    """How one service runs. Every field can also come from an environment variable
    (`Settings.from_env`): SIGNVER_GALLERY, SIGNVER_API_KEY, SIGNVER_PROTECT_READS, SIGNVER_MODEL,
    SIGNVER_MAX_UPLOAD_MB, SIGNVER_MAX_PIXELS, SIGNVER_MAX_PAGES, SIGNVER_TIMEOUT_S,
    SIGNVER_BODY_TIMEOUT_S, SIGNVER_WORKERS, SIGNVER_CORS_ORIGINS (comma-separated), SIGNVER_CLEAN,
    SIGNVER_SPIN_WAIT."""

    gallery_path: str | None = None  # None: $SIGNVER_GALLERY, else ~/.signver/gallery.sqlite
    api_key: str | None = None  # when set, every write needs header X-API-Key
    protect_reads: bool = False  # when set with api_key, every /v1 route but /v1/health needs it too
    model: str | None = None  # extractor; a gallery is bound to the one it was made with
    max_upload_bytes: int = 25 * 1024 * 1024  # whole request body, refused before it is read past this
    max_pixels: int = DEFAULT_MAX_PIXELS  # per image or rendered page, checked before decoding
    max_pages: int = 20  # fewer than a local read takes (images.DEFAULT_MAX_PAGES): a request holds a worker
    timeout_s: float = 30.0  # model work for one request, queueing included
    body_timeout_s: float = 60.0  # to receive a whole request body
    workers: int = max(1, os.cpu_count() or 1)  # model calls running at once
    cors_origins: tuple[str, ...] = ()  # none: CORS off (same-origin only)
    clean: bool | None = None  # clean signatures when a request does not say (None: the cleaner's default)
    dropout: str | None = None  # a colour (red, green, blue) whose marks, such as stamps, every input is read without
    spin_wait: bool = False  # onnxruntime threads spin between runs (signver.models.set_spin_wait): off for concurrent requests

    _ENV = {"gallery_path": "SIGNVER_GALLERY", "api_key": "SIGNVER_API_KEY", "protect_reads": "SIGNVER_PROTECT_READS",
            "model": "SIGNVER_MODEL", "max_upload_bytes": "SIGNVER_MAX_UPLOAD_MB", "max_pixels": "SIGNVER_MAX_PIXELS",
            "max_pages": "SIGNVER_MAX_PAGES", "timeout_s": "SIGNVER_TIMEOUT_S", "body_timeout_s": "SIGNVER_BODY_TIMEOUT_S",
            "workers": "SIGNVER_WORKERS", "cors_origins": "SIGNVER_CORS_ORIGINS", "clean": "SIGNVER_CLEAN",
            "spin_wait": "SIGNVER_SPIN_WAIT", "dropout": "SIGNVER_DROPOUT"}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then environment variables, then `overrides` whose value is not None."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, var in cls._ENV.items():
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = _parse(name, raw)
            except (ValueError, OverflowError) as error:  # OverflowError: an infinite size
                raise InputError(f"environment variable {var}={raw!r} is not valid: {error}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _parse(name: str, raw: str) -> Any:
    if name in ("protect_reads", "clean", "spin_wait"):
        if raw.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError("expected true or false")
        return raw.lower() in ("1", "true", "yes", "on")
    if name == "max_upload_bytes":
        return int(float(raw) * 1024 * 1024)
    if name in ("max_pixels", "max_pages", "workers"):
        return int(raw)
    if name in ("timeout_s", "body_timeout_s"):
        return float(raw)
    if name == "cors_origins":
        return tuple(o.strip() for o in raw.split(",") if o.strip())
    if name == "dropout":
        return check_dropout(raw)
    return raw


class ServiceError(SignverError):
    """An error the service itself raises (timeouts, authentication)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.http_status = status


# -- the app ---------------------------------------------------------------------------------

# Route parameters (module level: FastAPI resolves annotations in the module's namespace).
ImageField = Annotated[UploadFile, File(description="a signature image (or PDF page 1)")]
DocumentField = Annotated[UploadFile, File(description="a document: image, multi-page TIFF or PDF")]
CleanField = Annotated[bool | None, Form(description="clean the signature first (default: the service's setting)")]
PreviewField = Annotated[bool, Form(description="include page images (PNG data URLs) for display")]
DropoutField = Annotated[typing.Literal["red", "green", "blue", "none"] | None,
                         Form(description="read the upload without marks of this colour, such as a stamp over the signature "
                                          "(none: read as grey; default: the service's SIGNVER_DROPOUT)")]
DpiField = Annotated[float | None, Form(description="dots per inch PDF pages are rendered at (50 to 9600; default: the service's, 200): "
                                                    "lower reads a large page smaller")]
PersonPath = Annotated[str, PathParam(min_length=1, description="the person's id")]  # its length the gallery checks (200 in NFC): one message for any length

REPEATABLE_FIELDS = {"images"}  # the only form field a route takes several of (enrolment's references)


async def fields_as_declared(request: Request) -> None:
    """Refuse what FastAPI would drop without a word: a form field the route does not take (a
    `threshold` sent to a claim check would leave the caller believing it applied), a query
    parameter (options travel as form fields), a field sent twice (two person_id parts once
    enrolled the second person). A route that needs the API key checks it first: without the
    key, a caller learns nothing of its fields."""
    key_access = getattr(request.app.state, "key_access", None)
    needs_key = any(d.dependency is key_access for d in getattr(request.scope.get("route"), "dependencies", ()))
    if key_access is not None and needs_key:
        await key_access(request.headers.get("x-api-key"))
    route = f"{request.method} {request.url.path}"
    if request.url.path.startswith("/v1/") and request.query_params:
        name = next(iter(request.query_params.keys()))
        raise InputError(f"query parameter {name!r} is not read by {route}: send options as form fields (see /docs)")
    if not request.headers.get("content-type", "").startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return
    form = await request.form()
    declared = _form_fields(request.scope.get("endpoint"))
    for name in dict.fromkeys(form.keys()):
        if name not in declared:
            takes = f"it takes {', '.join(sorted(declared))}" if declared else "it takes no form"
            raise InputError(f"field {name!r} is not taken by {route}; {takes}")
        if name not in REPEATABLE_FIELDS and len(form.getlist(name)) > 1:
            raise InputError(f"field {name!r} was sent {len(form.getlist(name))} times; send it once")


_DECLARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # per route function, gone with its app


def _form_fields(endpoint) -> frozenset[str]:
    """The form and file fields a route's function declares (`File` is a kind of `Form`)."""
    if endpoint is None:
        return frozenset()
    if endpoint not in _DECLARED:
        hints = typing.get_type_hints(endpoint, include_extras=True)
        _DECLARED[endpoint] = frozenset(meta.alias or name for name, hint in hints.items()
                                        for meta in getattr(hint, "__metadata__", ()) if isinstance(meta, params.Form))
    return _DECLARED[endpoint]


async def claimed_person_not_blank(request: Request) -> None:
    """A `person_id` sent empty is a mistake, not a request to identify (which leaves it out)."""
    form = await request.form()
    if "person_id" in form and not str(form["person_id"]).strip():
        raise InputError("field 'person_id' is empty: give the claimed person, or leave the field out to identify each signature")


async def person_id_not_blank(request: Request) -> None:
    """An id sent empty or blank is named as such (the form reads an empty field as missing)."""
    form = await request.form()
    if "person_id" in form and not str(form["person_id"]).strip():
        raise InputError("field 'person_id' is empty: a person id must be a non-empty string")


class ErrorBody(BaseModel):
    """Every error's JSON body."""

    error: str
    type: str
    fields: list[dict[str, str]] | None = Field(None, description="422 only: each field and its problem")


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {status: {"model": ErrorBody, "description": text} for status, text in (
    (400, "Bad input: an unreadable, empty or corrupt file; a field sent twice or not taken by the route"),
    (404, "No such person, or no such route"),
    (409, "A reference the person already has, or a gallery that cannot be used"),
    (413, "The request body, an image or a document is over the service's limits"),
    (415, "Not an image or a PDF"),
    (422, "A field is missing or out of range, or an image holds no ink"),
    (503, "Over the service's time limit, or the gallery is busy (another process writes) or cannot be written"),
)}


api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="the service's API key, where it has one")
UNAUTHORISED = {401: {"model": ErrorBody, "description": "The API key is missing or wrong (header X-API-Key)"}}


def create_app(gallery_path: str | os.PathLike | None = None, api_key: str | None = None, *,
               settings: Settings | None = None, gallery: Gallery | None = None, detector: Any = None,
               cleaner: Any = None, **overrides: Any) -> FastAPI:
    """The service. Settings: `settings`, else the environment (`Settings.from_env`), with
    `gallery_path`, `api_key` and any other `Settings` field given here taking precedence;
    settings out of range, and protect_reads without an API key, are refused.
    `gallery`, `detector`, `cleaner`: ready objects to use instead of loading them (tests,
    embedding in another program); see `signver.pipeline.Pipeline`."""
    unknown = set(overrides) - {f.name for f in fields(Settings)}
    if unknown:
        raise TypeError(f"create_app got unknown settings: {', '.join(sorted(unknown))}")
    given = {"gallery_path": None if gallery_path is None else os.fspath(gallery_path), "api_key": api_key, **overrides}
    settings = replace(settings, **{k: v for k, v in given.items() if v is not None}) if settings else Settings.from_env(**given)
    if (settings.workers < 1 or not 0 < settings.timeout_s < math.inf or not 0 < settings.body_timeout_s < math.inf or settings.max_upload_bytes < 1
            or settings.max_pixels < 1 or settings.max_pages < 1):
        raise InputError("workers, timeout_s, body_timeout_s, max_upload_bytes, max_pixels and max_pages must be positive numbers, "
                         "the times finite")
    check_limits(settings.max_upload_bytes, settings.max_pixels, settings.max_pages,  # bounds that can hold, before the gallery opens
                 ("max_upload_bytes (SIGNVER_MAX_UPLOAD_MB)", "max_pixels (SIGNVER_MAX_PIXELS)", "max_pages (SIGNVER_MAX_PAGES)"))
    if settings.protect_reads and not settings.api_key:
        raise InputError("protect_reads (SIGNVER_PROTECT_READS) needs an API key (SIGNVER_API_KEY): without one, reads would be open")
    settings = replace(settings, dropout=check_dropout(settings.dropout))  # before the gallery opens
    if settings.api_key and not (settings.api_key.isascii() and settings.api_key.isprintable() and settings.api_key == settings.api_key.strip()):
        raise InputError("the API key must be printable ASCII with no space at either end: HTTP headers carry other "
                         "characters in ways clients disagree on, and drop spaces at the ends")

    set_spin_wait(settings.spin_wait)  # before any model loads
    owns_gallery = gallery is None
    store = gallery if gallery is not None else Gallery(settings.gallery_path, model=settings.model)
    pipeline = Pipeline(store, detector=detector, cleaner=cleaner, clean=settings.clean,
                        max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels, max_pages=settings.max_pages, dropout=settings.dropout)
    models = pipeline.models()  # load every model now: the first request is not slow, health is honest
    log.info("models: %s", models)

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if owns_gallery:
            store.close()

    app = FastAPI(
        title="signver", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None, dependencies=[Depends(fields_as_declared)],
        responses=ERROR_RESPONSES,
        description="Offline handwritten signature verification: detect signatures on document pages, clean them, "
                    "verify them against a second signature or an enrolled person, search the gallery. "
                    "Images are multipart file fields (PNG, JPEG, TIFF, BMP, WebP, GIF or PDF, sniffed from "
                    "their content). Errors are JSON: `{\"error\": message, \"type\": name}`. "
                    + ("Every /v1 route but /v1/health needs the `X-API-Key` header." if settings.api_key and settings.protect_reads
                       else "Writes need the `X-API-Key` header." if settings.api_key else ""),
    )
    app.state.settings, app.state.pipeline, app.state.gallery = settings, pipeline, store
    _install_error_handlers(app, settings)
    app.add_middleware(_Guard, max_bytes=settings.max_upload_bytes, body_timeout_s=settings.body_timeout_s)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Content-Type"])

    service = _Service(settings, pipeline)

    async def key_access(key: Annotated[str | None, Depends(api_key_header)]) -> None:  # async: no thread hop
        service.check_key(key)

    app.state.key_access = key_access  # for fields_as_declared, which runs before the routes' own checks

    def needing_key(needed: bool) -> dict:
        """Route arguments: the key check only where a key applies, so that the API schema says
        which routes need it and may answer 401."""
        return {"dependencies": [Depends(key_access)], "responses": UNAUTHORISED} if needed else {"dependencies": []}

    reads, writes = needing_key(bool(settings.api_key and settings.protect_reads)), needing_key(bool(settings.api_key))

    # -- service --------------------------------------------------------------------------

    @app.get("/v1/health", tags=["service"], summary="Status, models loaded, gallery size")
    def health() -> dict:
        return {
            "status": "ok", "version": __version__, "models": models,
            "gallery": {"people": len(store), "references": store.n_references, "model": store.extractor.name},
            "auth": {"writes": bool(settings.api_key), "reads": bool(settings.api_key and settings.protect_reads)},
            "limits": {"max_upload_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels,
                       "max_pages": settings.max_pages, "timeout_s": settings.timeout_s},
            "dropout": settings.dropout,
            # what a request that does not say gets: single signatures, and crops cut from documents
            "clean": {"signatures": cleaning(False), "documents": cleaning(True)},
        }

    def cleaning(document_crops: bool) -> bool:
        """Whether a request that does not say is cleaned; set to clean without a cleaner
        installed, it is asked to be (and answered 503, naming the cleaner)."""
        try:
            return pipeline.resolve_clean(None, document_crops=document_crops)
        except ModelUnavailableError:
            return True

    def reading(dropout: str | None, dpi: float | None = None) -> Pipeline:
        """The pipeline reading uploads as the request asks: the service's way where it does not say."""
        if dropout is None and dpi is None:
            return pipeline
        return pipeline.reading(pipeline.dropout if dropout is None else dropout, dpi)  # dropout "none": as grey

    # -- single signatures ---------------------------------------------------------------

    @app.post("/v1/verify", tags=["signatures"], **reads, summary="Verify two signatures")
    async def verify(a: ImageField, b: ImageField, threshold: Annotated[float | None, Form(ge=0, le=2)] = None,
                     clean: CleanField = None, dropout: DropoutField = None) -> dict:
        first, second = await _source(a, "a"), await _source(b, "b")
        result = await service.compute(reading(dropout).verify_pair, first, second, threshold, clean)
        return {**_clean_floats(result.to_dict()), "note": await _shape_notes(result.note, first, second)}

    @app.post("/v1/embed", tags=["signatures"], **reads, summary="Embedding vector of a signature")
    async def embed(image: ImageField, clean: CleanField = None, dropout: DropoutField = None) -> dict:
        vector, timings = await service.compute(reading(dropout).embed, await _source(image, "image"), clean)
        return {"model": pipeline.extractor.name, "dimension": int(vector.shape[0]),
                "embedding": [round(float(v), 7) for v in vector], "timings_ms": _ms(timings)}

    @app.post("/v1/clean", tags=["signatures"], dependencies=reads["dependencies"], summary="Cleaned signature (PNG)",
              response_class=Response, responses={200: {"content": {"image/png": {}}}, **reads.get("responses", {})})
    async def clean_image(image: ImageField, dropout: DropoutField = None) -> Response:
        cleaned = await service.compute(reading(dropout).clean, await _source(image, "image"))
        return Response(content=_png(cleaned), media_type="image/png")

    @app.post("/v1/identify", tags=["gallery"], **reads, summary="Ranked candidates for a signature")
    async def identify(image: ImageField, k: Annotated[int, Form(ge=1, le=100)] = 5, clean: CleanField = None,
                       dropout: DropoutField = None) -> dict:
        source = await _source(image, "image")
        ranked = await service.compute(reading(dropout).identify, source, k, clean)
        return {"candidates": [_clean_floats(r.to_dict()) for r in ranked], "gallery_people": len(store), "note": await _shape_notes(None, source)}

    # -- documents -----------------------------------------------------------------------

    @app.post("/v1/detect", tags=["documents"], **reads, summary="Signature boxes on every page")
    async def detect(document: DocumentField, previews: PreviewField = False, dropout: DropoutField = None, dpi: DpiField = None) -> dict:
        read = reading(dropout, dpi)  # a bad dpi is refused before the upload is read
        result = await service.compute(read.detect, await _source(document, "document"))
        pages = [{**page, "boxes": [{**s.box, "score": s.score, "index": s.index, "note": s.note} for s in result.signatures if s.page == page["page"]]}
                 for page in result.pages]
        if previews:
            await service.compute(_add_previews, pages, result)
        return {"pages": pages, "count": len(result.signatures), "model": result.models.get("detector"),
                "timings_ms": _ms(result.timings_ms)}

    @app.post("/v1/documents/verify", tags=["documents"], dependencies=[*reads["dependencies"], Depends(claimed_person_not_blank)], responses=reads.get("responses"),
              summary="Detect, clean and verify every signature on a document")
    async def verify_document(document: DocumentField,
                              person_id: Annotated[str | None, Form(min_length=1, description="the claimed person; none: identify each signature")] = None,
                              k: Annotated[int, Form(ge=1, le=100)] = 5, clean: CleanField = None,
                              previews: PreviewField = False, dropout: DropoutField = None, dpi: DpiField = None) -> dict:
        read = reading(dropout, dpi)
        source = await _source(document, "document")
        result = await service.compute(partial(read.run, source, person_id, k=k, clean=clean))
        out = _clean_floats(result.to_dict())
        if previews:
            await service.compute(_add_previews, out["pages"], result, out["signatures"])
        return out

    # -- the gallery ---------------------------------------------------------------------

    @app.post("/v1/people", tags=["gallery"], dependencies=[*writes["dependencies"], Depends(person_id_not_blank)],
              responses=writes.get("responses"), status_code=201, summary="Enrol a person (or add references)")
    async def enroll(person_id: Annotated[str, Form(min_length=1)],  # its length the gallery checks
                     images: Annotated[list[UploadFile], File(description="one or more reference signatures")],
                     metadata: Annotated[str | None, Form(description="a JSON object stored with the person (replaces the old one)")] = None,
                     clean: CleanField = None, dropout: DropoutField = None,
                     any_shape: Annotated[bool, Form(description="enrol an upload taller than wide or of several pages as it is (refused otherwise: "
                                                                  "a page or a sideways signature as a reference lets others' signatures pass)")] = False) -> dict:
        extra = _metadata(metadata)
        sources = [await _source(image, f"images[{i}]") for i, image in enumerate(images)]
        shaped = await _shape_notes(None, *sources)
        if shaped and not any_shape:
            raise InputError(f"{shaped}: a reference must be one upright signature, so nothing was enrolled (any_shape=true enrols it as it is)")
        names = [(image.filename or f"upload {i + 1}")[:200] for i, image in enumerate(images)]
        vectors = await service.compute(reading(dropout).enrollment_vectors, person_id, sources, clean)
        person = await service.write(partial(store.enroll, person_id, vectors, metadata=extra, sources=names))
        note = await anyio.to_thread.run_sync(store.sharing_note, person.person_id, len(sources))
        return {**person.to_dict(), "added": len(sources), "note": "; ".join(n for n in (note, shaped) if n) or None}

    @app.get("/v1/people", tags=["gallery"], **reads, summary="Everyone enrolled")
    @app.get("/v1/people/", **reads, include_in_schema=False)  # ids may hold "/", so no redirect
    def list_people() -> dict:
        people = [p.to_dict() for p in store.list()]
        return {"people": people, "count": len(people)}

    @app.get("/v1/people/{person_id:path}", tags=["gallery"], **reads, summary="One person")
    def get_person(person_id: PersonPath) -> dict:
        return store.get(person_id).to_dict()

    @app.delete("/v1/people/{person_id:path}", tags=["gallery"], **writes, summary="Remove a person and their references")
    async def remove_person(person_id: PersonPath) -> dict:  # in the writes' threads: waiting ones never take all of the pool
        return {**(await service.write(partial(store.remove, person_id))).to_dict(), "removed": True}

    @app.post("/v1/people/{person_id:path}/verify", tags=["gallery"], **reads, summary="Verify a claim against a person")
    async def verify_claim(person_id: PersonPath, image: ImageField, clean: CleanField = None, dropout: DropoutField = None) -> dict:
        await anyio.to_thread.run_sync(store.get, person_id)  # 404 before the upload is decoded; off the event loop, as it may wait for the lock

        def claim(source):  # the person as read right after the claim, in the worker thread, not on the event loop
            return reading(dropout).verify_claim(person_id, source, clean), store.get(person_id)

        source = await _source(image, "image")
        result, person = await service.compute(claim, source)
        return {**_clean_floats(result.to_dict()), "note": await _shape_notes(result.note, source), "person": person.to_dict()}

    # -- web app and offline docs --------------------------------------------------------

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    swagger_dir = _swagger_dir()
    if swagger_dir is not None:
        app.mount("/docs/assets", StaticFiles(directory=swagger_dir), name="swagger")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger_dir is None:
            raise StarletteHTTPException(404, "the API docs need the swagger-ui-bundle-v2 package (pip install 'signver[server]')")
        return HTMLResponse(DOCS_HTML)

    return app


DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>signver API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"><link rel="icon" href="/docs/assets/favicon-32x32.png">
</head><body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/static/docs.js"></script>
</body></html>"""


def _swagger_dir() -> Path | None:
    """Swagger UI's files from the swagger-ui-bundle-v2 package: the docs need no internet."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    path = Path(str(swagger_ui_bundle.swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


# -- request handling --------------------------------------------------------------------------


class _Service:
    """Model work in worker threads: at most `workers` at once, each request under `timeout_s`
    (waiting for a worker included). A request over time is answered 503 at once; its thread
    finishes in the background (Python threads cannot be killed), so only work that changes
    nothing runs under the limit: enrolment and removal write through `write`.
    A thread holds its worker slot (`_slots`) until its work ends, answered or not, so requests
    that time out cannot pile up work past `workers`; one abandoned before its turn never runs.
    Writes take no worker slot: their vectors are made under `compute`, and a write waiting for
    another process's lock must not keep claims and searches waiting with it."""

    def __init__(self, settings: Settings, pipeline: Pipeline):
        self.settings, self.pipeline = settings, pipeline
        self._limiters: dict[tuple[int, str], anyio.CapacityLimiter] = {}
        self._slots = threading.BoundedSemaphore(settings.workers)

    def _limiter(self, kind: str = "compute") -> anyio.CapacityLimiter:
        """Threads for `kind` ("compute" or "write"), `workers` of each, per event loop (tests run several)."""
        import asyncio

        key = (id(asyncio.get_running_loop()), kind)
        if key not in self._limiters:
            self._limiters[key] = anyio.CapacityLimiter(self.settings.workers)
        return self._limiters[key]

    async def compute(self, fn, *args):
        abandoned = threading.Event()

        def in_slot():
            with self._slots:
                if abandoned.is_set():  # answered 503 while waiting for a slot
                    return None
                return fn(*args)

        try:
            with anyio.fail_after(self.settings.timeout_s):
                return await anyio.to_thread.run_sync(in_slot, abandon_on_cancel=True, limiter=self._limiter())
        except TimeoutError:
            abandoned.set()
            raise ServiceError(f"the request took longer than the service's limit of {self.settings.timeout_s:g} s; "
                               "try a smaller document or again later", 503) from None

    async def write(self, fn):
        """A gallery write, run to its end however long it waits for the database: a request
        answered 503 must not have changed anything, so writes are never abandoned."""
        return await anyio.to_thread.run_sync(fn, limiter=self._limiter("write"))

    def check_key(self, key: str | None) -> None:
        expected = self.settings.api_key
        if not expected:
            return
        if not key:
            raise ServiceError("this request needs an API key: send it in the X-API-Key header", 401)
        if not hmac.compare_digest(key.encode(), expected.encode()):
            raise ServiceError("wrong API key (header X-API-Key)", 401)


FIND_SIGNATURES = 'POST /v1/documents/verify or /v1/detect; in the web app, "A document page"'


async def _shape_notes(note: str | None, *sources: io.BytesIO) -> str | None:
    """`note` with a note for each upload that is not plainly one signature (several pages, or
    taller than wide: a page, or a signature on its side), naming the upload. Off the event
    loop: a PDF's look waits for the lock that page rendering holds."""
    def looked() -> list[str]:
        return [f"{source.name}: {shaped}" for source in sources if (shaped := shape_note(source, FIND_SIGNATURES))]

    return "; ".join(n for n in (note, *await anyio.to_thread.run_sync(looked)) if n) or None


async def _source(upload: UploadFile, name: str) -> io.BytesIO:
    """An upload's bytes, labelled with its field and file name so errors say which one."""
    data = await upload.read()
    source = io.BytesIO(data)
    filename = (upload.filename or "").replace("\n", " ")[:100]
    source.name = f"field {name!r}" + (f" ({filename})" if filename else "")
    return source


def _metadata(raw: str | None) -> dict | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep; ValueError: a number too long
        raise InputError(f"field 'metadata' is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise InputError("field 'metadata' must be a JSON object, such as {\"branch\": \"north\"}")
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        raise InputError("field 'metadata' is not strict JSON: NaN and Infinity cannot be stored") from None
    return value


def _png(gray: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", gray)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return encoded.tobytes()


def _data_url(gray: np.ndarray, side: int) -> str:
    h, w = gray.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1:
        gray = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return "data:image/png;base64," + base64.b64encode(_png(gray)).decode()


def _add_previews(pages: list[dict], result, signatures: list[dict] | None = None) -> None:
    for page, image in zip(pages, result.page_images):
        page["image"] = _data_url(image, PREVIEW_PAGE_SIDE)
    for out, signature in zip(signatures or [], result.signatures):
        if signature.image is not None:
            out["image"] = _data_url(signature.image, PREVIEW_CROP_SIDE)


def _ms(timings: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in timings.items()}


def _clean_floats(value):
    """Round floats for JSON and turn non-finite ones (never expected) into None."""
    if isinstance(value, float):
        return round(value, 6) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_floats(v) for v in value]
    return value


# -- errors --------------------------------------------------------------------------------------


def _error(status: int, message: str, kind: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "X-API-Key"} if status == 401 else None
    return JSONResponse({"error": message, "type": kind, **extra}, status_code=status, headers=headers)


def _without_gallery_path(message: str, path: Path) -> str:
    """A gallery's errors name its file for the person running signver; a service's clients are
    told of "the gallery" instead, since where the server keeps its files is not theirs to know."""
    alone = rf"(?<![\w./-]){re.escape(str(path))}(?![\w./-])"  # the path itself, not text that holds it
    return re.sub(alone, "the gallery file", re.sub(rf"\bgallery {alone}", "the gallery", message))


def _methods_allowed(request: Request) -> list[str]:
    """Every method some route takes on this path (Starlette's 405 names only the first
    route's), HEAD wherever GET is (`_Guard` answers it)."""
    from starlette.routing import Match, Mount

    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches({**request.scope, "method": "GET"})[0] == Match.NONE:
            continue
        methods |= {"GET"} if isinstance(route, Mount) else set(getattr(route, "methods", None) or ())  # mounts serve files
    return sorted(methods | ({"HEAD"} if "GET" in methods else set()))


def _install_error_handlers(app: FastAPI, settings: Settings) -> None:
    @app.exception_handler(SignverError)
    async def signver_error(request: Request, error: SignverError) -> JSONResponse:
        status = int(getattr(error, "http_status", 400))
        if status >= 500 and status != 503:
            log.error("%s %s failed: %s", request.method, request.url.path, error, exc_info=error)
            return _error(status, "internal error", "InternalError")
        return _error(status, _without_gallery_path(str(error), request.app.state.gallery.path), type(error).__name__)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            loc = [str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path", "header")]
            name = ".".join(loc) or "request"
            problem = "missing" if item.get("type") == "missing" else str(item.get("msg", "invalid"))
            if "Expected UploadFile" in problem:  # text, or a part without a filename
                problem = "must be a file upload (a multipart part with a filename)"
            elif str(item.get("input", "")).strip().lower().lstrip("+-") == "nan":  # read as a number, then out of range
                problem = "must be a number, not NaN"
            problems.append({"field": name, "problem": problem})
        message = "; ".join(f"missing field {p['field']!r}" if p["problem"] == "missing" else f"field {p['field']!r}: {p['problem']}"
                            for p in problems) or "invalid request"
        return _error(422, message, "ValidationError", fields=problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = str(error.detail)
        if error.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path}"
        elif error.status_code == 405:
            allowed = _methods_allowed(request)
            if allowed:
                message = f"method {request.method} not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
                return JSONResponse({"error": message, "type": "HTTPError"}, status_code=405, headers={"Allow": ", ".join(allowed)})
            message = f"method {request.method} not allowed on {request.url.path}"
        elif error.status_code == 400 and "parsing the body" in message:
            message = "the request body could not be read: send a multipart/form-data body with the fields named in /docs"
        return JSONResponse({"error": message, "type": "HTTPError"}, status_code=error.status_code,
                            headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.error("%s %s failed", request.method, request.url.path, exc_info=error)
        return _error(500, "internal error", "InternalError")


# -- middleware -----------------------------------------------------------------------------------

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
]


class _Guard:
    """Security headers on every response. A request body over `max_bytes` is refused before
    it is read: at once from its Content-Length, else as soon as the bytes received pass the
    limit. The whole body must arrive within `body_timeout_s` (a client trickling bytes cannot
    hold the service)."""

    def __init__(self, app, max_bytes: int, body_timeout_s: float):
        self.app, self.max_bytes, self.body_timeout_s = app, max_bytes, body_timeout_s

    def _too_large(self) -> StarletteHTTPException:
        return StarletteHTTPException(413, f"request body over the limit of {self.max_bytes} bytes (max_upload_bytes)")

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        head = scope["method"] == "HEAD"  # answered as GET without its body (RFC 9110), for monitors that ask so
        if head:
            scope = {**scope, "method": "GET"}

        async def secured_send(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        declared = dict(scope.get("headers") or []).get(b"content-length")
        error = None
        if any(ord(c) < 32 or ord(c) == 127 for c in scope.get("path", "")):  # routes would match "P2\n" as P2: "$" matches before a final line break
            error = StarletteHTTPException(400, f"the request path {scope['path']!r} holds a control character (a line break?): no id or route has one")
        elif declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            error = self._too_large() if declared.isdigit() else StarletteHTTPException(400, "bad Content-Length header")
        if error is not None:
            response = JSONResponse({"error": error.detail, "type": "HTTPError"}, status_code=error.status_code,
                                    headers={"Connection": "close"})
            return await response(scope, receive, secured_send)
        deadline = anyio.current_time() + self.body_timeout_s
        received, body_done = 0, False

        async def guarded_receive():
            nonlocal received, body_done
            if body_done:  # later reads wait for a disconnect: no deadline for those
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                raise StarletteHTTPException(408, f"the request body did not arrive within {self.body_timeout_s:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        await self.app(scope, guarded_receive, secured_send)
