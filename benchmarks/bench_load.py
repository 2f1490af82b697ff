"""Load test of the HTTP service on loopback: N concurrent clients for D seconds per route,
throughput, p50 / p99 latency and errors, for POST /v1/verify and POST /v1/documents/verify.

The service runs in its own process (`signver.server.create_app` under uvicorn, 127.0.0.1,
a fresh gallery in a temporary folder); the clients are httpx async clients in this process,
each sending its next request as soon as the last one is answered. One person is enrolled
(4 references); /v1/verify gets two signatures (PNG, about 300x150), /v1/documents/verify a
letter page at 150 dpi (1650x1275 PNG) with two signatures, claimed by the enrolled person.

    python benchmarks/bench_load.py                       # 32 clients, 60 s per route
    python benchmarks/bench_load.py --duration 5 --clients 8 --json out/load.json

Detector: the shipped model when installed, else the classical `signver.detector_baseline`
(`--detector` picks). Cleaning follows the service's default (on when a cleaner is installed).
The script stops by itself: every loop is bounded by --duration; it talks to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine  # noqa: E402

from signver import synth  # noqa: E402

WRITER = 3


def png(image: np.ndarray) -> bytes:
    return cv2.imencode(".png", image)[1].tobytes()


def document_page() -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """A letter page at 150 dpi: printed lines, then the enrolled writer's signature and another's."""
    h, w = 1650, 1275
    page = np.full((h, w), 250, np.uint8)
    for line in range(14):
        y = 120 + 45 * line
        cv2.putText(page, f"{line + 1}. The undersigned agrees to the terms set out in schedule {line + 7}.", (110, y),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.8, 25, 2, cv2.LINE_AA)
    boxes = []
    for k, (writer, sample) in enumerate(((WRITER, 9), (WRITER + 2, 9))):
        ink = synth.genuine(writer, sample)
        ys, xs = np.nonzero(ink < 200)
        ink = ink[ys.min(): ys.max() + 1, xs.min(): xs.max() + 1]
        x, y = 150 + 500 * k, 1050
        region = page[y: y + ink.shape[0], x: x + ink.shape[1]]
        np.minimum(region, ink, out=region)
        cv2.line(page, (x - 20, y + ink.shape[0] + 10), (x + ink.shape[1] + 20, y + ink.shape[0] + 10), 40, 2)
        boxes.append((x / w, y / h, (x + ink.shape[1]) / w, (y + ink.shape[0]) / h))
    return page, boxes


# -- the service process -----------------------------------------------------------------------


class _KnownBoxes:
    """Stand-in detector returning the page's known boxes (only with --detector stand-in)."""

    name, threshold = "stand-in (known boxes)", 0.5

    def __init__(self, boxes):
        self.boxes = boxes

    def find(self, page, min_score=None):
        h, w = page.shape
        return (np.array([(a * w, b * h, c * w, d * h) for a, b, c, d in self.boxes], np.float32).reshape(-1, 4),
                np.full(len(self.boxes), 0.9, np.float32))


def serve(port: int, gallery: str, detector: str, workers: int | None) -> None:
    import uvicorn

    from signver.models import available_models
    from signver.server import create_app

    if detector == "auto":
        detector = "model" if any(c.kind == "detector" for c in available_models()) else "classical"
    if detector == "model":
        chosen = None
    elif detector == "classical":
        from signver.detector_baseline import BaselineDetector

        chosen = BaselineDetector()
    else:
        chosen = _KnownBoxes(document_page()[1])
    app = create_app(gallery, api_key=None, detector=chosen, **({"workers": workers} if workers else {}))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


# -- the clients ---------------------------------------------------------------------------------


async def hammer(url: str, make_request, clients: int, duration: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        deadline = time.perf_counter() + duration

        async def one_client():
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                try:
                    response = await make_request(client)
                    ok = response.status_code == 200
                    key = None if ok else f"HTTP {response.status_code}: {response.text[:120]}"
                except httpx.HTTPError as error:
                    key = f"{type(error).__name__}: {error}"
                if key is None:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[key] = errors.get(key, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies), "errors": sum(errors.values()), "error_kinds": errors, "seconds": round(elapsed, 2),
        "throughput_rps": round(len(latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
        "max_ms": round(float(ms.max()), 1) if len(ms) else None,
    }


def run(args) -> dict:
    port = args.port or _free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, __file__, "--serve", "--port", str(port), "--gallery", str(Path(folder) / "g.sqlite"),
                   "--detector", args.detector] + (["--workers", str(args.workers)] if args.workers else [])
        server = subprocess.Popen(command, env={**os.environ, "SIGNVER_API_KEY": ""})
        try:
            health = _wait_for(url, server)
            a, b = png(synth.genuine(WRITER, 0)), png(synth.genuine(WRITER, 1))
            page, _ = document_page()
            document = png(page)
            files = [("images", (f"{s}.png", png(synth.genuine(WRITER, s)), "image/png")) for s in range(4)]
            httpx.post(url + "/v1/people", data={"person_id": "alice"}, files=files, timeout=60).raise_for_status()

            def verify(client):
                return client.post("/v1/verify", files={"a": ("a.png", a, "image/png"), "b": ("b.png", b, "image/png")})

            def verify_document(client):
                return client.post("/v1/documents/verify", data={"person_id": "alice"},
                                   files={"document": ("page.png", document, "image/png")})

            check = httpx.post(url + "/v1/documents/verify", data={"person_id": "alice"},
                               files={"document": ("page.png", document, "image/png")}, timeout=60).json()
            found = [(s["decision"] or {}).get("verified") for s in check["signatures"]]
            results = {"machine": machine(), "clients": args.clients, "duration_s": args.duration, "models": health["models"],
                       "workers": args.workers or os.cpu_count(), "document_signatures_found": len(found),
                       "document_decisions": found, "document_bytes": len(document), "signature_bytes": [len(a), len(b)]}
            for name, make in (("verify", verify), ("documents_verify", verify_document)):
                if name not in args.routes:
                    continue
                asyncio.run(hammer(url, make, min(args.clients, 4), min(3.0, args.duration)))  # warm up
                results[name] = asyncio.run(hammer(url, make, args.clients, args.duration))
                print(f"{name:17s} {json.dumps(results[name])}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
    return results


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the service exited with code {server.returncode}")
        try:
            return httpx.get(url + "/v1/health", timeout=5).json()
        except httpx.TransportError:
            time.sleep(0.25)
    raise SystemExit("the service did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per route")
    parser.add_argument("--routes", default="verify,documents_verify")
    parser.add_argument("--detector", choices=("auto", "model", "classical", "stand-in"), default="auto")
    parser.add_argument("--workers", type=int, default=None, help="model calls at once in the service (default: cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--gallery", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.port, args.gallery, args.detector, args.workers)
        return
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients and --duration must be positive")
    results = run(args)
    total_errors = sum(results[r]["errors"] for r in ("verify", "documents_verify") if r in results)
    print(f"machine: {results['machine']}; errors: {total_errors}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    raise SystemExit(1 if total_errors else 0)


if __name__ == "__main__":
    main()
