"""Released weights: the sha256 registry, the cache and fetching through pooch.

Where a file comes from, in order:

1. the cache (``XSSTSR_CACHE``, default: the OS cache folder), if its hash matches;
2. the copy shipped with the package (``weights/`` in the repository, ``xsstsr/released`` in
   a wheel), if its hash matches, unless ``XSSTSR_WEIGHTS_URL`` asks for a mirror;
3. a download through pooch from ``XSSTSR_WEIGHTS_URL`` (or the release URL), hash-checked;
   with no network, the shipped copy is used after the same hash check.

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

from .errors import FactorError, ModelNotFoundError, WeightsError, WeightsIntegrityError
from .model import Model

DEFAULT_BASE_URL = "https://github.com/xsstsr/xsstsr/raw/{version}/weights/"
REGISTRY_FILE = "registry.txt"
NAME_PATTERN = re.compile(r"^sst-x(?P<factor>\d+(?:\.\d+)?)$")


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


def available_models() -> list[str]:
    """Names of the released models, e.g. ``['sst-x2', 'sst-x2.5', 'sst-x4', 'sst-x5']``.

    Examples
    --------
    >>> xsstsr.available_models()  # doctest: +SKIP
    ['sst-x2', 'sst-x2.5', 'sst-x4', 'sst-x5']
    """
    names = [Path(f).stem for f in registry() if f.endswith(".safetensors")]
    return sorted(names, key=lambda n: (_factor_of(n) or 0.0, n))


def _factor_of(name: str) -> float | None:
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


def _pooch(base_url: str) -> Any:
    import pooch

    from ._version import __version__

    return pooch.create(
        path=cache_dir(),
        base_url=base_url.format(version=f"v{__version__}"),
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
    mirror = os.environ.get("XSSTSR_WEIGHTS_URL")
    bundled = bundled_dir() / filename
    if bundled.is_file() and not mirror:
        return _verified(bundled, expected, "shipped weights")
    try:
        return Path(_pooch(mirror or DEFAULT_BASE_URL).fetch(filename))
    except ValueError as err:  # pooch's hash mismatch
        raise WeightsIntegrityError(
            f"downloaded {filename} does not match its registered sha256 {expected}: {err}"
        ) from err
    except OSError as err:  # no network, HTTP error: fall back to the shipped copy
        if bundled.is_file():
            return _verified(bundled, expected, "shipped weights")
        raise WeightsError(
            f"cannot download {filename} ({err}) and no copy ships with this install; set "
            "XSSTSR_WEIGHTS_URL to a reachable mirror or run xsstsr.fetch_all() while online."
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
