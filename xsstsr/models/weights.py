"""Released weights: the sha256 registry, the cache and model names.

Where a file comes from, in order:

1. the cache (option ``cache_dir``, environment ``XSSTSR_CACHE``, default: the OS cache
   folder), if its hash matches;
2. the copy shipped with the package (``weights/`` in the repository, ``xsstsr/released`` in
   a wheel), if its hash matches, unless a mirror is set (``weights_url``);
3. a download through pooch (:mod:`xsstsr.models.download`), hash-checked; with no
   network, the shipped copy is used after the same hash check.

A file whose sha256 differs from the registry is refused with
:class:`~xsstsr.errors.WeightsIntegrityError`. Nothing is ever fetched without a hash.
"""

from __future__ import annotations

import hashlib
import os
import re
from fractions import Fraction
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import (
    DownloadError,
    FactorError,
    ModelNotFoundError,
    WeightsError,
    WeightsIntegrityError,
    WriteError,
)
from ..grid.factor import parse_factor
from ..io.atomic import write_atomic
from ..options import get_option
from .container import Model
from .download import (
    Downloader,
    base_url,
    download_error,
    download_timeouts,
    make_pooch,
)

DEFAULT_BASE_URL = "https://github.com/xsstsr/xsstsr/raw/{version}/weights/"


REGISTRY_FILE = "registry.txt"


NAME_PATTERN = re.compile(r"^sst-x(?P<factor>\d+(?:\.\d+)?)(?:-(?P<variant>[a-z]+))?$")


#: What each kind of released model is for (a name's suffix: none = accurate).
MODEL_KINDS: dict[str, str] = {
    "accurate": "lowest RMSE: the default for analysis (small adversarial weight)",
    "realistic": "restores small-scale energy (spectra, maps) at a small cost in RMSE",
}


def cache_dir() -> Path:
    """The cache folder: the ``cache_dir`` option (``$XSSTSR_CACHE``) or pooch's OS cache."""
    env = get_option("cache_dir")
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


def default_model_name(factor: Fraction) -> str:
    """Registry name for a factor: 4 -> 'sst-x4', 2.5 -> 'sst-x2.5'."""
    return f"sst-x{float(factor):g}"


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
    mirror = get_option("weights_url")
    bundled = bundled_dir() / filename
    if bundled.is_file() and not mirror:
        return _verified(bundled, expected, "shipped weights")
    # a malformed mirror or time limit is the user's to fix, even with a shipped copy
    base = base_url(mirror) if mirror else base_url(DEFAULT_BASE_URL, "the release URL")
    downloader = Downloader(download_timeouts())
    try:
        return Path(
            make_pooch(base, cache_dir(), registry()).fetch(filename, downloader=downloader)
        )
    # first: requests' errors are OSErrors, and some (InvalidURL) ValueErrors too
    except OSError as err:  # no network, refused, HTTP error, too slow: the shipped copy
        if bundled.is_file():
            return _verified(bundled, expected, "shipped weights")
        if isinstance(err, DownloadError):
            raise
        unwritable = _cache_unwritable()
        if unwritable:  # the disk, not the network
            raise WriteError(
                f"cannot store {filename} in the weights cache {str(cache_dir())!r} "
                f"({unwritable}); set cache_dir (XSSTSR_CACHE) to a folder you can write to."
            ) from err
        raise download_error(err, filename, base + filename, downloader.timeouts) from err
    except ValueError as err:  # pooch's hash mismatch
        raise WeightsIntegrityError(
            f"downloaded {filename} does not match its registered sha256 {expected}: {err}"
        ) from err


def _cache_unwritable() -> str:
    """Why the weights cache cannot take a file ('' when it can)."""
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return str(err.strerror or err)
    return "" if os.access(folder, os.W_OK) else "not writable"


def fetch_all() -> list[Path]:
    """Fetch and verify every released weights file into the cache (``cache_dir``), for
    machines that will be offline: a file that ships with the package is copied there too,
    so that the cache folder alone holds every model. Returns the cached paths."""
    paths = []
    for filename in registry():
        if not filename.endswith(".safetensors"):
            continue
        path, target = fetch(Path(filename).stem), cache_dir() / filename
        if path != target:  # the shipped copy, already verified
            try:
                write_atomic(target, path.read_bytes())
            except OSError as err:
                raise WriteError(
                    f"cannot write {filename} into the weights cache {str(target.parent)!r} "
                    f"({err.strerror or err}); set cache_dir (XSSTSR_CACHE) to a folder you "
                    "can write to."
                ) from err
        paths.append(target)
    return paths


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
        from ..errors import InputTypeError

        raise InputTypeError(
            f"model must be a registry name, a path or an xsstsr.Model, got "
            f"{type(model).__name__}; pass e.g. model='sst-x4' or model='my.safetensors'."
        )
    text = os.fspath(model)
    path = Path(text).expanduser()
    looks_like_path = path.suffix == ".safetensors" or os.sep in text or path.exists()
    if looks_like_path:
        if not path.is_file():
            raise ModelNotFoundError(
                f"weights file {text!r} does not exist; pass an existing .safetensors path or a "
                f"registry name from {available_models()}."
            )
        if path.suffix in (".pt", ".pth", ".pkl", ".ckpt", ".bin"):
            raise WeightsError(
                f"{text!r} looks like a pickle-based checkpoint; xsstsr loads safetensors only. "
                "Convert it with safetensors.torch.save_file(state_dict, 'model.safetensors')."
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
            from ..errors import ModelMismatchError

            raise ModelMismatchError(
                f"model {loaded.name!r} downscales by {float(frac):g}, not {float(requested):g}; "
                f"drop factor= or pass a model trained for {float(requested):g}."
            )
    return loaded, frac
