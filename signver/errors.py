"""Typed errors with messages a user can act on.

Every stage raises one of these where it knows what went wrong; the CLI turns them into a
message and exit code 2, the HTTP API into a 4xx status.
"""


class SignverError(Exception):
    """Base of every error signver raises on purpose."""

    http_status = 400


class InputError(SignverError, ValueError):
    """The input given cannot be used (bad file, bad array, bad parameter)."""


class EmptyInputError(InputError):
    """The input holds no data at all."""


class CorruptImageError(InputError):
    """The data claims to be an image or PDF but cannot be decoded (corrupt or truncated)."""


class UnsupportedFormatError(InputError):
    """The data is of a kind signver does not read."""

    http_status = 415


class InputTooLargeError(InputError):
    """The input is over a size or pixel-count limit (refused before decoding)."""

    http_status = 413


class BlankImageError(InputError):
    """The image holds no ink, so there is no signature to work with."""

    http_status = 422


class DatasetError(SignverError):
    """A dataset folder is missing, empty, or not in a layout signver reads."""


class GalleryError(SignverError):
    """The gallery store cannot be used as asked (wrong file, wrong model)."""

    http_status = 409


class DuplicateReferenceError(GalleryError):
    """The signature is already one of the person's references (or is given twice)."""


class GalleryBusyError(GalleryError):
    """Another process holds the gallery's write lock past the wait, or the file cannot be written."""

    http_status = 503


class PersonNotFoundError(GalleryError):
    """No person of that id is enrolled."""

    http_status = 404


class ModelError(SignverError):
    """A model file or its card is missing or does not match what the code expects."""

    http_status = 500
