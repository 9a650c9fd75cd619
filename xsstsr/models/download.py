"""Downloading weights through pooch, with timeouts a trickling mirror cannot escape.

Options (:func:`xsstsr.set_options`, or the environment):

``weights_url`` (``XSSTSR_WEIGHTS_URL``)
    A mirror: the ``http://``, ``https://`` or ``file://`` URL of a folder holding the
    ``.safetensors`` files; ``{version}`` in it stands for the release tag (``v`` and the version).
    Anything else is refused with :class:`~xsstsr.errors.DownloadError`.
``download_timeout`` (``XSSTSR_DOWNLOAD_TIMEOUT``)
    Seconds a download may take: ``TOTAL`` or ``CONNECT,READ,TOTAL`` (default
    ``10,30,300``). CONNECT bounds opening the connection, READ the wait for the next
    bytes, TOTAL the whole download of one file, retries included, so a mirror that
    trickles is cut off too. A download past them raises
    :class:`~xsstsr.errors.DownloadError` (unless a copy ships with the package).
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import shutil
import string
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import (
    DownloadError,
    OptionError,
)
from ..options import ENVIRONMENT, get_option

MIRROR_ENV = ENVIRONMENT["weights_url"]


TIMEOUT_ENV = ENVIRONMENT["download_timeout"]


MIRROR_SCHEMES = ("http", "https", "file")


CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, to wait for the next bytes, and for a whole file's download."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 300.0


def download_timeouts() -> Timeouts:
    """The download timeouts from the ``download_timeout`` option (``TOTAL`` or
    ``CONNECT,READ,TOTAL`` seconds), or the defaults; OptionError for anything else."""
    text = (get_option("download_timeout") or "").strip()
    if not text:
        return Timeouts()
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) not in (1, 3) or not all(math.isfinite(v) and v > 0 for v in values):
        raise OptionError(
            f"{TIMEOUT_ENV}={text!r} is not a time limit; set it to positive seconds, the "
            f"whole download's ({TIMEOUT_ENV}=600) or connect,read,total "
            f"({TIMEOUT_ENV}=10,30,600)."
        )
    if len(values) == 1:
        default = Timeouts()
        return Timeouts(min(default.connect, values[0]), min(default.read, values[0]), values[0])
    return Timeouts(*values)


def base_url(template: str, what: str = MIRROR_ENV) -> str:
    """The folder URL that file names are appended to, ``{version}`` filled in; a
    DownloadError saying the expected form for a URL pooch would misread."""
    from .._version import __version__

    form = (
        f"set {MIRROR_ENV} to the http://, https:// or file:// URL of the folder that holds "
        f"the .safetensors files, e.g. {MIRROR_ENV}=https://example.org/xsstsr/weights/ "
        "({version} may stand for the release tag)"
    )
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError:  # an unbalanced brace
        fields = {"?"}
    if fields - {"version"}:
        raise DownloadError(
            f"{what}={template!r} has braces other than {{version}}; it is not a template "
            f"of file names. {form[0].upper()}{form[1:]}."
        )
    import urllib3

    url = template.strip().format(version=f"v{__version__}")
    try:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() in ("http", "https"):
            urllib3.util.parse_url(url)  # what requests will make of the host and port
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as err:  # LocationParseError is a ValueError too
        raise DownloadError(f"{what}={template!r} is not a valid URL ({err}); {form}.") from err
    if "://" not in url or not parts.scheme:
        problem = "has no scheme"
    elif parts.scheme.lower() not in MIRROR_SCHEMES:
        problem = f"has the scheme {parts.scheme!r}, which xsstsr does not download from"
    elif parts.scheme.lower() != "file" and not parts.hostname:
        problem = "has no host"
    elif parts.query or parts.fragment:
        problem = "has a query or fragment, which file names cannot follow"
    else:
        return url.rstrip("/") + "/"
    raise DownloadError(f"{what}={template!r} {problem}; {form}.")


def _too_slow(url: str, timeouts: Timeouts, waited: str) -> DownloadError:
    return DownloadError(
        f"downloading {url} {waited}: the mirror is too slow or stalled. Set {MIRROR_ENV} "
        f"to another mirror, or allow more time with {TIMEOUT_ENV}=connect,read,total "
        f"seconds (now {timeouts.connect:g},{timeouts.read:g},{timeouts.total:g})."
    )


def _output(output_file: Any) -> Any:
    if hasattr(output_file, "write"):
        return contextlib.nullcontext(output_file)
    return open(output_file, "wb")


def _chunks(response: Any, cancelled: threading.Event) -> Any:
    """The body's bytes as they come, as requests' errors. read1 returns after each receive,
    so a cancelled download stops at the next byte; iter_content waits for whole chunks."""
    import requests
    import urllib3

    read1 = getattr(response.raw, "read1", None)  # urllib3 >= 2.3
    if read1 is None:  # small pieces, so a cancelled download stops soon
        for chunk in response.iter_content(1024):
            if cancelled.is_set():
                return
            yield chunk
        return
    while not cancelled.is_set():
        try:
            chunk = read1(CHUNK_BYTES, decode_content=True)
        except urllib3.exceptions.ReadTimeoutError as err:
            raise requests.exceptions.ReadTimeout(err) from err
        except urllib3.exceptions.ProtocolError as err:  # cut short, reset
            raise requests.exceptions.ChunkedEncodingError(err) from err
        except urllib3.exceptions.DecodeError as err:
            raise requests.exceptions.ContentDecodingError(err) from err
        except urllib3.exceptions.HTTPError as err:
            raise requests.exceptions.ConnectionError(err) from err
        if not chunk:
            return
        yield chunk


class Downloader:
    """A pooch downloader for http(s) and file URLs with connect and read timeouts and one
    deadline for a whole fetch, retries included.

    requests' read timeout restarts with every byte received, so a mirror that trickles a
    byte every few seconds would never time out. The transfer runs in a daemon thread that
    the caller waits for until the deadline, then abandons (it stops at the next byte).
    """

    def __init__(self, timeouts: Timeouts | None = None) -> None:
        self.timeouts = timeouts or download_timeouts()
        self.deadline = time.monotonic() + self.timeouts.total

    def _too_slow(self, url: str) -> DownloadError:
        return _too_slow(url, self.timeouts, f"did not finish in {self.timeouts.total:g} s")

    def __call__(
        self, url: str, output_file: Any, pooch: Any = None, check_only: bool = False
    ) -> bool | None:
        if urllib.parse.urlsplit(url).scheme.lower() == "file":
            path = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
            if check_only:
                return path.is_file()
            with open(path, "rb") as src, _output(output_file) as dst:
                shutil.copyfileobj(src, dst)
            return None
        import requests
        import urllib3

        left = self.deadline - time.monotonic()
        if left <= 0:  # the earlier attempts used the time up
            raise self._too_slow(url)
        timeout = (min(self.timeouts.connect, left), min(self.timeouts.read, left))
        if check_only:
            head = requests.head(url, timeout=timeout, allow_redirects=True)
            return bool(head.status_code == 200)
        cancelled = threading.Event()
        outcome: dict[str, Any] = {}

        def transfer() -> None:
            try:
                with requests.get(url, stream=True, timeout=timeout) as response:
                    response.raise_for_status()
                    body = io.BytesIO()  # the file is written once whole, never by a straggler
                    for chunk in _chunks(response, cancelled):
                        body.write(chunk)
                    outcome["body"] = body
            except urllib3.exceptions.HTTPError as err:  # not wrapped by requests (a bad host)
                outcome["error"] = requests.exceptions.ConnectionError(err)
            except BaseException as err:  # handed to the caller's thread
                outcome["error"] = err

        worker = threading.Thread(target=transfer, name="xsstsr-download", daemon=True)
        worker.start()
        worker.join(max(self.deadline - time.monotonic(), 0.0))
        if worker.is_alive():
            cancelled.set()
            raise self._too_slow(url)
        if "error" in outcome:
            raise outcome["error"]
        with _output(output_file) as fh:
            fh.write(outcome["body"].getbuffer())
        return None


def download_error(err: OSError, filename: str, url: str, timeouts: Timeouts) -> DownloadError:
    """A DownloadError naming the URL, what went wrong and the fix."""
    import requests

    if isinstance(err, requests.exceptions.Timeout):
        return _too_slow(
            url,
            timeouts,
            f"got no answer or bytes within {timeouts.connect:g} s (connect) or "
            f"{timeouts.read:g} s (read)",
        )
    if isinstance(err, requests.exceptions.HTTPError) and err.response is not None:
        reason = f"the server answered HTTP {err.response.status_code} {err.response.reason}"
    elif isinstance(err, requests.exceptions.ConnectionError):
        found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(err))
        reason = f"cannot connect ({found[1].strip() if found else err})"
    else:
        reason = str(err)
    return DownloadError(
        f"cannot download {filename} from {url}: {reason}, and no copy ships with this "
        f"install. Check that the mirror is up, set {MIRROR_ENV} to a reachable mirror, or "
        "run xsstsr.fetch_all() while online."
    )


def make_pooch(url: str, path: Path, hashes: dict[str, str]) -> Any:
    """A pooch fetcher for ``url`` that stores in ``path`` and checks ``hashes`` (name: sha256)."""
    import pooch

    return pooch.create(
        path=path,
        base_url=url,
        registry={name: f"sha256:{digest}" for name, digest in hashes.items()},
        retry_if_failed=2,
    )
