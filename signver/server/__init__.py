"""The HTTP service and its web app (needs the `server` extra: pip install 'signver[server]').

    signver serve --port 8000 --gallery bank.sqlite        # then open http://127.0.0.1:8000/

    from signver.server import create_app                   # an ASGI app for any ASGI server
    app = create_app("bank.sqlite", api_key="secret")
"""

from __future__ import annotations

import errno
import os
import socket

from .app import Settings, create_app

__all__ = ["Settings", "create_app", "serve"]


def serve(host: str = "127.0.0.1", port: int = 8000, gallery_path: str | os.PathLike | None = None,
          api_key: str | None = None, model: str | None = None, log_level: str = "info") -> None:
    """Run the service with uvicorn until interrupted; prints the URL to open."""
    import uvicorn

    from ..errors import InputError

    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise InputError(f"port must be a whole number from 1 to 65535, got {port!r}")
    app = create_app(gallery_path, api_key, model=model)
    settings = app.state.settings
    shown = f"[{host}]" if ":" in host else host
    listening = _listen(host, port, shown)  # before the banner: a port in use is a clear error, not a banner then a trace
    gallery = app.state.gallery
    print(f"signver service on http://{shown}:{port}/  (API docs http://{shown}:{port}/docs)", flush=True)
    access = ("reads and writes need" if settings.protect_reads else "writes need") + " the X-API-Key header" if settings.api_key \
        else "reads and writes are open (no API key set)"
    held = "a new, empty gallery (check the path if you meant an existing one)" if gallery.created else f"{len(gallery)} people"
    print(f"gallery {gallery.path}: {held}; {access}", flush=True)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_keep_alive=5, server_header=False)
    with listening:
        uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int, shown: str) -> socket.socket:
    """A socket bound to host:port for uvicorn to serve on (IPv6 where the host is an IPv6
    address, as uvicorn chooses)."""
    from ..errors import InputError

    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        hint = " (another program holds the port: choose another with --port)" if error.errno == errno.EADDRINUSE else ""
        raise InputError(f"cannot listen on {shown}:{port}: {error.strerror or error}{hint}") from None
    return listening
