"""Released weights: the sha256 registry, the cache and fetching through pooch.

Where a file comes from, in order:

1. the cache (``XSSTSR_CACHE``, default: the OS cache folder), if its hash matches;
2. the copy shipped with the package (``weights/`` in the repository, ``xsstsr/released`` in
   a wheel), if its hash matches, unless ``XSSTSR_WEIGHTS_URL`` asks for a mirror;
3. a download through pooch from ``XSSTSR_WEIGHTS_URL`` (or the release URL), hash-checked;
   with no network, the shipped copy is used after the same hash check.

A file whose sha256 differs from the registry is refused with
:class:`~xsstsr.errors.WeightsIntegrityError`. Nothing is ever fetched without a hash.

Environment variables:

``XSSTSR_WEIGHTS_URL``
    A mirror: the ``http://``, ``https://`` or ``file://`` URL of a folder holding the
    ``.safetensors`` files; ``{version}`` in it stands for the release tag (``v`` and the version).
    Anything else is refused with :class:`~xsstsr.errors.DownloadError`.
``XSSTSR_DOWNLOAD_TIMEOUT``
    Seconds a download may take: ``TOTAL`` or ``CONNECT,READ,TOTAL`` (default
    ``10,30,300``). CONNECT bounds opening the connection, READ the wait for the next
    bytes, TOTAL the whole download of one file, retries included, so a mirror that
    trickles is cut off too. A download past them raises
    :class:`~xsstsr.errors.DownloadError` (unless a copy ships with the package).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import re
import shutil
import string
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import (
    DownloadError,
    FactorError,
    ModelNotFoundError,
    OptionError,
    WeightsError,
    WeightsIntegrityError,
)
from .model import Model

DEFAULT_BASE_URL = "https://github.com/xsstsr/xsstsr/raw/{version}/weights/"
REGISTRY_FILE = "registry.txt"
NAME_PATTERN = re.compile(r"^sst-x(?P<factor>\d+(?:\.\d+)?)(?:-(?P<variant>[a-z]+))?$")
#: What each kind of released model is for (a name's suffix: none = accurate).
MODEL_KINDS: dict[str, str] = {
    "accurate": "lowest RMSE: the default for analysis (small adversarial weight)",
    "realistic": "restores small-scale energy (spectra, maps) at a small cost in RMSE",
}
MIRROR_ENV = "XSSTSR_WEIGHTS_URL"
TIMEOUT_ENV = "XSSTSR_DOWNLOAD_TIMEOUT"
MIRROR_SCHEMES = ("http", "https", "file")
CHUNK_BYTES = 64 * 1024


def cache_dir() -> Path:
    """The cache folder: ``$XSSTSR_CACHE`` or pooch's OS cache for ``xsstsr``."""
    env = os.environ.get("XSSTSR_CACHE")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("xsstsr"))


def bundled_dir() -> Path:
    """The folder of the weights shipped with the package (wheel or source checkout)."""
    try:
        path = Path(str(resources.files("xsstsr.released")))
        if (path / REGISTRY_FILE).is_file():
            return path
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "weights"


@lru_cache(maxsize=4)
def _parse_registry(text: str) -> dict[str, str]:
    registry: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) < 2 or not re.fullmatch(r"[0-9a-f]{64}", parts[1].lower()):
            raise WeightsError(f"{REGISTRY_FILE} line {number} is not 'FILE SHA256': {line!r}")
        registry[parts[0]] = parts[1].lower()
    return registry


def registry() -> dict[str, str]:
    """File name -> sha256 of every released weights file."""
    path = bundled_dir() / REGISTRY_FILE
    if not path.is_file():
        return {}
    return dict(_parse_registry(path.read_text()))


def available_models(details: bool = False) -> Any:
    """Names of the released models, e.g. ``['sst-x2', 'sst-x2.5', 'sst-x4', 'sst-x4-gan',
    'sst-x5']``; ``sst-xF`` is accurate, ``sst-xF-gan`` realistic (:data:`MODEL_KINDS`).

    With ``details=True``, a :class:`pandas.DataFrame` with each model's factor, kind,
    what it is for and its domain (input spacing and time step it was trained on), read
    from the shipped files' metadata.

    Examples
    --------
    >>> xsstsr.available_models()  # doctest: +SKIP
    ['sst-x2', 'sst-x2.5', 'sst-x4', 'sst-x4-gan', 'sst-x5']
    """
    names = [Path(f).stem for f in registry() if f.endswith(".safetensors")]
    names = sorted(names, key=lambda n: (factor_of_name(n) or 0.0, n))
    if not details:
        return names
    import pandas as pd

    rows = []
    for name in names:
        path = bundled_dir() / f"{name}.safetensors"
        meta = (
            Model.from_bytes(path.read_bytes(), source=str(path)).metadata if path.is_file() else {}
        )
        match = NAME_PATTERN.match(name)
        kind = meta.get("kind") or ("realistic" if match and match["variant"] else "accurate")
        domain = meta.get("domain") or {}
        spacing = domain.get("input_spacing_deg")
        step = domain.get("time_spacing_days")
        rows.append(
            {
                "name": name,
                "factor": factor_of_name(name),
                "kind": kind,
                "for": MODEL_KINDS.get(kind, ""),
                "input_spacing_deg": f"{spacing[0]:g}-{spacing[1]:g}" if spacing else "undeclared",
                "time_step_days": f"{step[0]:g}-{step[1]:g}" if step else "undeclared",
                "sha256": registry()[f"{name}.safetensors"],
            }
        )
    return pd.DataFrame(rows)


def factor_of_name(name: str) -> float | None:
    """The factor a released model's name declares (``sst-x4-gan`` -> 4.0), or None."""
    match = NAME_PATTERN.match(name)
    return float(match["factor"]) if match else None


def parse_factor(factor: Any) -> Fraction:
    """Validate a downscaling factor and return it as an exact fraction ``p/q``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float, Fraction)):
        try:
            import numpy as np

            if isinstance(factor, np.number) and not isinstance(factor, np.bool_):
                factor = float(factor)
            else:
                raise TypeError
        except TypeError:
            raise FactorError(
                f"factor must be a number such as 4 or 2.5, got {factor!r} "
                f"({type(factor).__name__})."
            ) from None
    if not factor == factor or factor in (float("inf"), float("-inf")):
        raise FactorError(f"factor must be a finite number, got {factor!r}.")
    if factor <= 1:
        raise FactorError(
            f"factor must be greater than 1 (the fine grid is factor times finer), got {factor!r}."
        )
    frac = Fraction(factor).limit_denominator(8)
    if abs(float(frac) - float(factor)) > 1e-9 or frac.numerator > 16:
        raise FactorError(
            f"factor {factor!r} is not a ratio p/q with p <= 16 and q <= 8 (such as 2.5 = 5/2); "
            "choose a factor like 2, 2.5, 4 or 5."
        )
    return frac


def default_model_name(factor: Fraction) -> str:
    """Registry name for a factor: 4 -> 'sst-x4', 2.5 -> 'sst-x2.5'."""
    return f"sst-x{float(factor):g}"


@dataclass(frozen=True)
class Timeouts:
    """Seconds to connect, to wait for the next bytes, and for a whole file's download."""

    connect: float = 10.0
    read: float = 30.0
    total: float = 300.0


def download_timeouts() -> Timeouts:
    """The download timeouts from ``$XSSTSR_DOWNLOAD_TIMEOUT`` (``TOTAL`` or
    ``CONNECT,READ,TOTAL`` seconds), or the defaults; OptionError for anything else."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
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
    from ._version import __version__

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


def _download_error(err: OSError, filename: str, url: str, timeouts: Timeouts) -> DownloadError:
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


def _pooch(url: str) -> Any:
    import pooch

    return pooch.create(
        path=cache_dir(),
        base_url=url,
        registry={name: f"sha256:{digest}" for name, digest in registry().items()},
        retry_if_failed=2,
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(path: Path, expected: str, what: str) -> Path:
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsIntegrityError(
            f"{what} {str(path)!r} has sha256 {actual}, but the registry says {expected}; "
            "the file is corrupt or was tampered with. Delete it and fetch it again."
        )
    return path


def fetch(name: str) -> Path:
    """Return a local, hash-verified path to the released weights file ``name``.

    Raises
    ------
    ModelNotFoundError
        ``name`` is not in the registry.
    WeightsIntegrityError
        The file's sha256 does not match the registry.
    DownloadError
        ``XSSTSR_WEIGHTS_URL`` is malformed, or the download failed (refused, HTTP error,
        past ``XSSTSR_DOWNLOAD_TIMEOUT``) and no copy ships with the package.
    OptionError
        ``XSSTSR_DOWNLOAD_TIMEOUT`` is not a time limit.
    """
    filename = name if name.endswith(".safetensors") else f"{name}.safetensors"
    known = registry()
    if filename not in known:
        raise ModelNotFoundError(
            f"no released model named {name!r}; available models: {available_models()}. "
            "Pass a registry name, a path to a .safetensors file or a fitted xsstsr.Model."
        )
    expected = known[filename]
    cached = cache_dir() / filename
    if cached.is_file() and sha256_file(cached) == expected:
        return cached
    mirror = os.environ.get(MIRROR_ENV)
    bundled = bundled_dir() / filename
    if bundled.is_file() and not mirror:
        return _verified(bundled, expected, "shipped weights")
    # a malformed mirror or time limit is the user's to fix, even with a shipped copy
    base = base_url(mirror) if mirror else base_url(DEFAULT_BASE_URL, "the release URL")
    downloader = Downloader(download_timeouts())
    try:
        return Path(_pooch(base).fetch(filename, downloader=downloader))
    # first: requests' errors are OSErrors, and some (InvalidURL) ValueErrors too
    except OSError as err:  # no network, refused, HTTP error, too slow: the shipped copy
        if bundled.is_file():
            return _verified(bundled, expected, "shipped weights")
        if isinstance(err, DownloadError):
            raise
        raise _download_error(err, filename, base + filename, downloader.timeouts) from err
    except ValueError as err:  # pooch's hash mismatch
        raise WeightsIntegrityError(
            f"downloaded {filename} does not match its registered sha256 {expected}: {err}"
        ) from err


def fetch_all() -> list[Path]:
    """Fetch and verify every released weights file (for machines that will be offline)."""
    return [fetch(Path(f).stem) for f in registry() if f.endswith(".safetensors")]


def load_model(model: str | os.PathLike[str] | Model) -> Model:
    """Load a generator from a registry name, a safetensors path, or pass a Model through.

    Parameters
    ----------
    model : str, path or Model
        ``"sst-x4"`` (see :func:`available_models`), ``"my_model.safetensors"``, or a
        :class:`~xsstsr.Model` returned by :func:`xsstsr.fit`.

    Examples
    --------
    >>> model = xsstsr.load_model("sst-x4")  # doctest: +SKIP
    """
    if isinstance(model, Model):
        return model
    if not isinstance(model, (str, os.PathLike)):
        from .errors import InputTypeError

        raise InputTypeError(
            f"model must be a registry name, a path or an xsstsr.Model, got "
            f"{type(model).__name__}; pass e.g. model='sst-x4' or model='my.safetensors'."
        )
    text = os.fspath(model)
    path = Path(text).expanduser()
    looks_like_path = path.suffix == ".safetensors" or os.sep in text or path.exists()
    if looks_like_path:
        if path.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin"):
            raise WeightsError(
                f"{text!r} looks like a pickle-based checkpoint; xsstsr loads safetensors only. "
                "Convert it with safetensors.torch.save_file(state_dict, 'model.safetensors')."
            )
        if not path.is_file():
            raise ModelNotFoundError(
                f"weights file {text!r} does not exist; pass an existing .safetensors path or a "
                f"registry name from {available_models()}."
            )
        loaded = Model.from_file(path)
        loaded.source = str(path.resolve())
        return loaded
    local = fetch(text)
    loaded = Model.from_file(local)
    loaded.source = str(local)
    return loaded


def model_for(factor: Any, model: str | os.PathLike[str] | Model | None) -> tuple[Model, Fraction]:
    """Resolve the model and factor of a downscale call, checking they agree."""
    if model is None:
        frac = parse_factor(4 if factor is None else factor)
        name = default_model_name(frac)
        if f"{name}.safetensors" not in registry():
            raise FactorError(
                f"no released model for factor {float(frac):g}; available models: "
                f"{available_models()}. Pass model= (a path or a fitted model) or one of those "
                "factors."
            )
        return load_model(name), frac
    loaded = load_model(model)
    frac = Fraction(loaded.upsample, loaded.pool)
    if factor is not None:
        requested = parse_factor(factor)
        if requested != frac:
            from .errors import ModelMismatchError

            raise ModelMismatchError(
                f"model {loaded.name!r} downscales by {float(frac):g}, not {float(requested):g}; "
                f"drop factor= or pass a model trained for {float(requested):g}."
            )
    return loaded, frac
