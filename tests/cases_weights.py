"""Catalogue rows for weights files and their download: implausible normalisation,
tensors of the wrong dtype or shape, malformed mirror URLs, a refused connection, a
mirror that trickles, a malformed time limit.

The dtypes that do load (F16, BF16, F32, F64) are positive tests in tests/test_weights.py,
which also uses :class:`Trickler`.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import select
import socket
import threading
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import pooch.core
from catalogue import Case, field, weights_file, with_meta

import xsstsr
import xsstsr.models


class Trickler:
    """A real HTTP server on 127.0.0.1 that sends ``body`` ``piece`` bytes (one) every
    ``every`` seconds (or, with ``stall``, nothing at all after accepting), with or without
    a Content-Length.

    It shuts itself down after ``lifetime`` seconds, so a catalogue row, which has no
    teardown, leaves nothing running; tests may call :meth:`stop` sooner.
    """

    def __init__(
        self,
        body: bytes,
        every: float = 0.05,
        *,
        piece: int = 1,
        length: bool = True,
        stall: bool = False,
        lifetime: float = 30.0,
    ) -> None:
        self.requests: list[str] = []
        self.stopped = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                if stall:  # accept, then say nothing until the client hangs up
                    select.select([self.connection], [], [], lifetime)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    for i in range(0, len(body), piece):
                        if server.stopped.wait(every):
                            return
                        self.wfile.write(body[i : i + piece])
                        self.wfile.flush()
                except OSError:  # the client gave up: what a trickle should get
                    return

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True
        self.timer.start()

    def stop(self) -> None:
        if not self.stopped.is_set():
            self.stopped.set()
            self.timer.cancel()
            self.httpd.shutdown()
            self.httpd.server_close()


def refused_url() -> str:
    """The URL of a port on 127.0.0.1 that nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def released(env) -> bytes:
    """Make the small x4 model the released 'sst-x4' with no shipped copy and an empty
    cache, so downscale(factor=4) must download it; pooch retries without waiting."""
    blob = env.m4.to_bytes()
    shipped = env.tmp / "shipped"
    shipped.mkdir(exist_ok=True)
    (shipped / "registry.txt").write_text(
        f"sst-x4.safetensors {hashlib.sha256(blob).hexdigest()}\n"
    )
    env.monkeypatch.setattr(xsstsr.models.weights, "bundled_dir", lambda: shipped)
    env.monkeypatch.setenv("XSSTSR_CACHE", str(env.tmp / "cache"))
    env.monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=lambda s: None))
    return blob


def _download(env, mirror: str | Callable[[bytes], str], **environ: str):
    blob = released(env)
    env.monkeypatch.setenv(
        "XSSTSR_WEIGHTS_URL", mirror if isinstance(mirror, str) else mirror(blob)
    )
    for key, value in environ.items():
        env.monkeypatch.setenv(key, value)
    return field(), functools.partial(xsstsr.downscale, factor=4, device="cpu")


def _mirror(url: str | Callable[[bytes], str], **environ: str):
    return lambda env: _download(env, url, **environ)


def _weights(metadata_of: Callable[[Any], Any], state_of: Callable[[Any], Any] | None = None):
    def make(env):
        state = state_of(env) if state_of else None
        path = weights_file(env, "weights.safetensors", metadata_of(env), state)
        return (field(), path), lambda obj: xsstsr.downscale(obj[0], model=obj[1], device="cpu")

    return make


def _norm(**changes: float) -> Callable[[Any], Any]:
    return lambda env: with_meta(env, normalisation={"mean": 15.0, "std": 8.0, **changes})


def _wrong_shape(env) -> dict[str, np.ndarray]:
    state = env.m4.state
    state["head.bias"] = np.zeros(3, dtype="float32")
    return state


def _trickling(blob: bytes) -> str:
    return Trickler(blob, every=0.05, lifetime=20.0).url


E = xsstsr
FIX_NORM = r"re-save the model with xsstsr\.model\.new_metadata\(mean=\.\.\., std=\.\.\.\)"
FIX_URL = r"e\.g\. XSSTSR_WEIGHTS_URL=https://example\.org/xsstsr/weights/"
CASES: list[Case] = [
    # -- the normalisation of a weights file
    Case(
        "metadata-std-underflow",
        _weights(_norm(std=1e-30)),
        E.MetadataError,
        ValueError,
        r"'std' is 1e-30, below the 0\.001 degC minimum.*" + FIX_NORM,
    ),
    Case(
        "metadata-std-subnormal",
        _weights(_norm(std=5e-324)),
        E.MetadataError,
        ValueError,
        r"'std' is 4\.94066e-324.*subnormal.*" + FIX_NORM,
    ),
    Case(
        "metadata-std-zero",
        _weights(_norm(std=0.0)),
        E.MetadataError,
        ValueError,
        r"'std' is 0\.0; it must be a positive number of degC.*" + FIX_NORM,
    ),
    Case(
        "metadata-std-negative",
        _weights(_norm(std=-8.0)),
        E.MetadataError,
        ValueError,
        r"'std' is -8\.0; it must be a positive.*" + FIX_NORM,
    ),
    Case(
        "metadata-mean-absurd",
        _weights(_norm(mean=1e6)),
        E.MetadataError,
        ValueError,
        r"'mean' is 1e\+06, far outside SST in degC.*" + FIX_NORM,
    ),
    Case(
        "metadata-mean-in-kelvin",
        _weights(_norm(mean=288.15)),
        E.MetadataError,
        ValueError,
        r"'mean' is 288\.15, which is kelvin.*store mean - 273\.15 = 15 instead",
    ),
    # -- the tensors
    Case(
        "weights-integer-tensors",
        _weights(
            lambda env: env.m4.metadata,
            lambda env: {k: v.astype("int32") for k, v in env.m4.state.items()},
        ),
        E.WeightsError,
        ValueError,
        r"dtype I32; generator weights must be floating point.*Convert the tensors to float32",
    ),
    Case(
        "weights-wrong-shape",
        _weights(lambda env: env.m4.metadata, _wrong_shape),
        E.MetadataError,
        ValueError,
        r"'head\.bias' has shape \(3,\).*Save the generator with Model\.save\(\)",
    ),
    # -- the mirror
    Case(
        "mirror-url-without-scheme",
        _mirror("example.org/weights"),
        E.DownloadError,
        OSError,
        r"has no scheme; set XSSTSR_WEIGHTS_URL to the http://, https:// or file:// URL.*"
        + FIX_URL,
    ),
    Case(
        "mirror-url-template-braces",
        _mirror("https://example.org/{name}/"),
        E.DownloadError,
        OSError,
        r"has braces other than \{version\}.*" + FIX_URL,
    ),
    Case(
        "mirror-url-ftp",
        _mirror("ftp://example.org/weights/"),
        E.DownloadError,
        OSError,
        r"the scheme 'ftp', which xsstsr does not download from.*" + FIX_URL,
    ),
    Case(
        "mirror-connection-refused",
        _mirror(lambda blob: refused_url()),
        E.DownloadError,
        OSError,
        r"from http://127\.0\.0\.1:\d+/sst-x4\.safetensors: cannot connect.*"
        r"set XSSTSR_WEIGHTS_URL to a reachable mirror",
    ),
    Case(
        "mirror-trickles",
        _mirror(_trickling, XSSTSR_DOWNLOAD_TIMEOUT="1"),
        E.DownloadError,
        OSError,
        r"did not finish in 1 s: the mirror is too slow or stalled\. Set XSSTSR_WEIGHTS_URL "
        r"to another mirror, or allow more time with XSSTSR_DOWNLOAD_TIMEOUT",
    ),
    Case(
        "download-timeout-not-a-number",
        _mirror("https://example.org/weights/", XSSTSR_DOWNLOAD_TIMEOUT="fast"),
        E.OptionError,
        ValueError,
        r"set it to positive seconds.*XSSTSR_DOWNLOAD_TIMEOUT=10,30,600",
    ),
]
