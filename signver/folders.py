"""Output folders made up front, before the slow work, with one clear error when they can't be."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .errors import InputError


def output_folder(folder: str | Path, option: str = "--out", inputs: Iterable[Path] = (), contents: str = "",
                  outside: str | Path | None = None, files: Iterable[str] = ()) -> Path:
    """Make an output folder, refusing a file of that name, one that cannot be made (read-only
    disk, no permission), one that holds an input (its outputs could overwrite it), one inside
    the folder `outside` (a dataset, whose next reading would take the outputs for its own files)
    and one where any of the output `files` to come is a folder (found only at the end, after
    the others were written). `contents` names what goes there, for the message."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {folder} is a file; give a folder{f' for {contents}' if contents else ''}")
    blocked = [name for name in files if (folder / name).exists() and not (folder / name).is_file()]
    if blocked:
        raise InputError(f"{option} {folder} holds a folder named {blocked[0]}, where an output file goes; give another folder")
    if outside is not None and Path(outside).resolve() in (folder.resolve(), *folder.resolve().parents):
        raise InputError(f"{option} {folder} is inside {Path(outside).resolve()}, whose files it would mix with; give a folder outside it")
    holding = {p.absolute().parent.resolve() for p in inputs}  # the folder a name is in, links or not
    if folder.exists() and folder.resolve() in holding:
        raise InputError(f"{option} {folder} holds input files: outputs never go into an input's folder, where a later "
                         "run would take them for inputs or overwrite them; give another folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot make {option} folder {folder}: {error.strerror or error}") from None
    return folder
