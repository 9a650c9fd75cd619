"""The :class:`Model`: generator weights plus their metadata, stored as safetensors.

Weights are read with ``safetensors`` only (never pickle). The JSON metadata is
size-bounded and type-checked before anything else is trusted. Networks are
built lazily, once per process and device, keyed by the weights' sha256, so a
dask graph carries only a small :class:`ModelRef`, never the model itself.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._version import __version__
from .errors import MetadataError, MissingDependencyError, OptionError, WeightsError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .networks import Generator

FORMAT = "xsstsr-generator"
FORMAT_VERSION = 1
METADATA_KEY = "xsstsr"
HISTORY_KEY = "__history__"
MAX_HEADER_BYTES = 8 * 1024 * 1024  # a generator's header is a few kB
MAX_METADATA_BYTES = 1024 * 1024
# Plausible normalisation (degC): an SST's anomalies are never below a millikelvin (fit
# floors them at 0.02 K), and its mean lies well inside -10..50 degC. Values outside come
# from an underflow, a unit mix-up (kelvin) or a corrupt file, and would scale every input
# by an absurd factor.
MIN_STD = 1e-3
MAX_STD = 100.0
MEAN_RANGE = (-10.0, 50.0)
# Tensor dtypes a generator's weights may be stored in; all are read into float32.
FLOAT_DTYPES = {"F16": "<f2", "F32": "<f4", "F64": "<f8"}

# Metadata schema: key -> (accepted types, check, what it must be).
_Check = tuple[tuple[type, ...], Any, str]
METADATA_SCHEMA: dict[str, _Check] = {
    "format": ((str,), lambda v: v == FORMAT, f"the string {FORMAT!r}"),
    "format_version": ((int,), lambda v: 1 <= v <= FORMAT_VERSION, f"1..{FORMAT_VERSION}"),
    "name": ((str,), lambda v: 0 < len(v) <= 200, "a non-empty name"),
    "factor": ((int, float), lambda v: 1 < v <= 16, "a number in (1, 16]"),
    "upsample": ((int,), lambda v: 1 <= v <= 16, "an integer in 1..16"),
    "pool": ((int,), lambda v: 1 <= v <= 8, "an integer in 1..8"),
    "halo": ((int,), lambda v: 0 <= v <= 256, "an integer in 0..256"),
    "window": ((int,), lambda v: 1 <= v <= 64, "an integer in 1..64"),
    "inputs": (
        (list,),
        lambda v: 1 <= len(v) <= 16 and all(isinstance(s, str) for s in v),
        "a list of 1..16 input names",
    ),
    "architecture": ((dict,), lambda v: True, "a mapping"),
    "normalisation": (
        (dict,),
        lambda v: all(
            isinstance(v.get(k), (int, float))
            and not isinstance(v.get(k), bool)
            and math.isfinite(v[k])
            for k in ("mean", "std")
        ),
        "a mapping with finite numeric 'mean' and positive 'std' (degC)",
    ),
}
ARCHITECTURE_SCHEMA: dict[str, _Check] = {
    "type": ((str,), lambda v: v == "residual-subpixel", "'residual-subpixel'"),
    "features": ((int,), lambda v: 1 <= v <= 512, "an integer in 1..512"),
    "blocks": ((int,), lambda v: 0 <= v <= 64, "an integer in 0..64"),
    "up_features": ((int,), lambda v: 1 <= v <= 512, "an integer in 1..512"),
    "fill_iterations": ((int,), lambda v: 0 <= v <= 32, "an integer in 0..32"),
}


def _check_schema(values: Mapping[str, Any], schema: Mapping[str, _Check], where: str) -> None:
    for key, (types, check, what) in schema.items():
        if key not in values:
            raise MetadataError(f"{where} has no {key!r}; it must be {what}.")
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, types) or not check(value):
            raise MetadataError(f"{where} has {key}={value!r:.80}; it must be {what}.")


def _check_normalisation(norm: Mapping[str, Any], source: str) -> None:
    """Refuse a std or mean that cannot be an SST's in degC, naming the key and the fix."""
    mean, std = float(norm["mean"]), float(norm["std"])
    fix = (
        "Store the training data's statistics in degC in the file's xsstsr metadata, or "
        "re-save the model with xsstsr.model.new_metadata(mean=..., std=...)."
    )
    if std <= 0:
        raise MetadataError(
            f"{source}: normalisation 'std' is {std!r}; it must be a positive number of degC "
            f"(the spread of the SST anomalies the model was trained on). {fix}"
        )
    if std < MIN_STD:
        raise MetadataError(
            f"{source}: normalisation 'std' is {std:g}, below the {MIN_STD:g} degC minimum (it "
            f"underflowed or is subnormal; an SST's anomalies are far larger), and inputs "
            f"divided by it would overflow. {fix}"
        )
    if std > MAX_STD:
        raise MetadataError(
            f"{source}: normalisation 'std' is {std:g}, above the {MAX_STD:g} degC maximum; no "
            f"SST spreads that far, so it is not in degC. {fix}"
        )
    low, high = MEAN_RANGE
    if 200.0 <= mean <= 350.0:
        raise MetadataError(
            f"{source}: normalisation 'mean' is {mean:g}, which is kelvin, not degC; store "
            f"mean - 273.15 = {mean - 273.15:.4g} instead. {fix}"
        )
    if not low <= mean <= high:
        raise MetadataError(
            f"{source}: normalisation 'mean' is {mean:g}, far outside SST in degC "
            f"({low:g}..{high:g}). {fix}"
        )


#: The optional ``domain`` metadata: what the model was trained on, each a [min, max] pair.
DOMAIN_KEYS: dict[str, str] = {
    "input_spacing_deg": "input grid spacing (degrees)",
    "time_spacing_days": "time step (days)",
    "sst_range_degC": "SST (degC)",
}


def _check_domain(domain: Any, source: str) -> None:
    if not isinstance(domain, Mapping):
        raise MetadataError(f"{source}: domain must be a mapping of [min, max] pairs.")
    for key, value in domain.items():
        if key not in DOMAIN_KEYS:
            continue  # later versions may declare more
        ok = (
            isinstance(value, (list, tuple))
            and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            and all(math.isfinite(v) for v in value)
            and value[0] <= value[1]
        )
        if not ok:
            raise MetadataError(
                f"{source}: domain {key}={value!r:.80}; it must be [min, max], two finite "
                "numbers with min <= max."
            )


def validate_metadata(metadata: Mapping[str, Any], source: str = "the weights") -> None:
    """Check the metadata's keys, types and ranges; raise MetadataError naming the problem."""
    if not isinstance(metadata, Mapping):
        raise MetadataError(f"{source}: metadata must be a JSON object.")
    _check_schema(metadata, METADATA_SCHEMA, f"{source}: metadata")
    _check_normalisation(metadata["normalisation"], source)
    _check_schema(metadata["architecture"], ARCHITECTURE_SCHEMA, f"{source}: architecture")
    conserve = metadata["architecture"].get("conserve", False)
    if not isinstance(conserve, bool):
        raise MetadataError(
            f"{source}: architecture has conserve={conserve!r:.80}; it must be true or false."
        )
    if abs(metadata["upsample"] / metadata["pool"] - metadata["factor"]) > 1e-9:
        raise MetadataError(
            f"{source}: factor {metadata['factor']} != upsample/pool "
            f"{metadata['upsample']}/{metadata['pool']}."
        )
    if "domain" in metadata:
        _check_domain(metadata["domain"], source)
    from .networks import receptive_halo

    needed = receptive_halo(metadata["architecture"], metadata["pool"])
    if metadata["halo"] < needed:
        raise MetadataError(
            f"{source}: halo {metadata['halo']} is smaller than the architecture's receptive "
            f"field ({needed} pixels); tiled results would depend on chunking. Re-save the "
            "model with xsstsr.model.new_metadata(), which sets the halo."
        )


def _read_header(data: bytes, source: str) -> dict[str, Any]:
    """Parse the safetensors header with explicit bounds before trusting it."""
    if len(data) < 8:
        raise WeightsError(f"{source} is too short to be a safetensors file ({len(data)} bytes).")
    (size,) = struct.unpack("<Q", data[:8])
    if size > MAX_HEADER_BYTES or 8 + size > len(data):
        if data[:1] == b"\x80" or data[:2] == b"PK":  # pickle protocol 2+, torch.save zip
            raise WeightsError(
                f"{source} looks like a pickle or a torch.save file, not safetensors; xsstsr "
                "never unpickles. Convert it with safetensors.torch.save_file(state_dict, "
                "'model.safetensors') where you trust its origin."
            )
        raise WeightsError(
            f"{source} is not a valid safetensors file (header of {size} bytes in a "
            f"{len(data)}-byte file); it may be truncated or corrupt: download it again."
        )
    try:
        header = json.loads(data[8 : 8 + size])
    except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, nesting, huge numbers
        raise WeightsError(f"{source} has an unreadable header ({err}); it is corrupt.") from err
    if not isinstance(header, dict):
        raise WeightsError(f"{source} has a malformed header; it is corrupt.")
    return header


def _parse_metadata(header: Mapping[str, Any], source: str) -> dict[str, Any]:
    meta = header.get("__metadata__") or {}
    text = meta.get(METADATA_KEY) if isinstance(meta, dict) else None
    if not isinstance(text, str):
        raise MetadataError(
            f"{source} has no xsstsr metadata; it is not an xsstsr generator. Save models with "
            "Model.save() or xsstsr.fit()."
        )
    if len(text) > MAX_METADATA_BYTES:
        raise MetadataError(
            f"{source}: metadata of {len(text)} bytes exceeds the {MAX_METADATA_BYTES}-byte limit."
        )
    try:
        metadata = json.loads(text)
    except (ValueError, RecursionError) as err:  # bad JSON, nesting, huge numbers
        raise MetadataError(f"{source}: metadata is not valid JSON ({err}).") from err
    validate_metadata(metadata, source)
    return dict(metadata)


@dataclass(frozen=True)
class ModelRef:
    """What a dask task needs to find a model in its own process: hash and where to load it."""

    sha256: str
    path: str | None = None
    name: str | None = None


_MODELS: dict[str, Model] = {}
_NETWORKS: dict[tuple[str, str], Generator] = {}
_CACHE_LOCK = threading.Lock()


class Model:
    """A trained generator: weights, metadata and training history.

    Parameters
    ----------
    state : mapping of str to numpy.ndarray
        The generator's parameters.
    metadata : mapping
        Architecture, factor, halo, window, inputs, normalisation, training config.
    history : pandas.DataFrame, optional
        Per-step losses and validation scores from :func:`xsstsr.fit`.

    Examples
    --------
    >>> model = xsstsr.load_model("sst-x4")  # doctest: +SKIP
    >>> model.factor, model.window  # doctest: +SKIP
    (4.0, 3)
    """

    def __init__(
        self,
        state: Mapping[str, np.ndarray],
        metadata: Mapping[str, Any],
        history: pd.DataFrame | None = None,
        source: str | None = None,
    ) -> None:
        validate_metadata(metadata, source or "model")
        self._state = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}
        self._metadata = json.loads(json.dumps(dict(metadata)))  # a deep, JSON-clean copy
        self.history = history if history is not None else pd.DataFrame()
        self.source = source
        self._sha256: str | None = None

    # -- description ------------------------------------------------------------
    @property
    def metadata(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._metadata))

    @property
    def name(self) -> str:
        return str(self._metadata["name"])

    @property
    def factor(self) -> float:
        return float(self._metadata["factor"])

    @property
    def upsample(self) -> int:
        return int(self._metadata["upsample"])

    @property
    def pool(self) -> int:
        return int(self._metadata["pool"])

    @property
    def halo(self) -> int:
        return int(self._metadata["halo"])

    @property
    def window(self) -> int:
        return int(self._metadata["window"])

    @property
    def inputs(self) -> list[str]:
        return list(self._metadata["inputs"])

    @property
    def validation(self) -> dict[str, Any] | None:
        """Best validation skill from :func:`xsstsr.fit`: ``rmse`` and ``rmse_bicubic`` (K)
        on the held-out steps, their ``ratio``, the ``step`` it was reached at; None for a
        model not fitted by xsstsr."""
        value = self._metadata.get("validation")
        return dict(value) if isinstance(value, dict) else None

    @property
    def domain(self) -> dict[str, tuple[float, float]] | None:
        """What the model was trained on: ``input_spacing_deg``, ``time_spacing_days`` and
        ``sst_range_degC`` as (min, max); None when the weights do not declare it.
        :func:`xsstsr.downscale` warns (:class:`~xsstsr.DomainWarning`) outside it."""
        value = self._metadata.get("domain")
        if not isinstance(value, dict):
            return None
        return {k: (float(v[0]), float(v[1])) for k, v in value.items() if k in DOMAIN_KEYS}

    @property
    def normalisation(self) -> tuple[float, float]:
        norm = self._metadata["normalisation"]
        return float(norm["mean"]), float(norm["std"])

    @property
    def state(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._state.items()}

    @property
    def sha256(self) -> str:
        """sha256 of the float32 safetensors serialisation (or of the file it came from)."""
        if self._sha256 is None:
            self._sha256 = hashlib.sha256(self.to_bytes()).hexdigest()
        return self._sha256

    def __repr__(self) -> str:
        return (
            f"<xsstsr.Model {self.name!r} factor={self.factor:g} window={self.window} "
            f"halo={self.halo} inputs={self.inputs} sha256={self.sha256[:12]}>"
        )

    # -- serialisation ----------------------------------------------------------
    def to_bytes(self, precision: str = "float32") -> bytes:
        """Serialise to safetensors bytes (``precision`` "float32" or "float16")."""
        from safetensors.numpy import save

        if precision not in ("float32", "float16"):
            raise OptionError(
                f"precision must be 'float32' or 'float16', got {precision!r}; pass "
                "precision='float16' for a file half the size, or leave the float32 default."
            )
        tensors = {k: v.astype(precision) for k, v in sorted(self._state.items())}
        meta = dict(self._metadata)
        if not self.history.empty:
            numeric = self.history.select_dtypes("number")
            # safetensors writes arrays in memory order: DataFrame.to_numpy() is often
            # Fortran-ordered, which would scramble the history on reading
            tensors[HISTORY_KEY] = np.ascontiguousarray(numeric.to_numpy(dtype="float64"))
            meta["history_columns"] = [str(c) for c in numeric.columns]
        return save(tensors, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})

    def save(self, path: str | os.PathLike[str], precision: str = "float32") -> Path:
        """Write the model to a safetensors file atomically; return the path.

        Examples
        --------
        >>> model.save("korea_x5.safetensors")  # doctest: +SKIP
        """
        path = Path(path)
        write_atomic(path, self.to_bytes(precision))
        return path

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "weights", sha256: str | None = None) -> Model:
        """Read a model from safetensors bytes; metadata is checked before tensors are read."""
        from safetensors import SafetensorError, deserialize

        header = _read_header(data, source)
        metadata = _parse_metadata(header, source)
        try:
            views = deserialize(data)
        except (SafetensorError, ValueError, OSError) as err:
            raise WeightsError(f"{source} cannot be read as safetensors ({err}).") from err
        tensors = {name: _decode(name, view, source) for name, view in views}
        history = None
        if HISTORY_KEY in tensors:
            columns = metadata.pop("history_columns", None)
            values = tensors.pop(HISTORY_KEY)
            if isinstance(columns, list) and values.ndim == 2 and len(columns) == values.shape[1]:
                history = pd.DataFrame(values, columns=columns)
        metadata.pop("history_columns", None)
        model = cls(tensors, metadata, history=history, source=source)
        _check_state(model, source)
        model._sha256 = sha256 or hashlib.sha256(data).hexdigest()
        return model

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Model:
        """Read a model from a safetensors file."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError as err:
            raise WeightsError(f"weights file {str(path)!r} does not exist.") from err
        return cls.from_bytes(data, source=path.name)

    # -- networks ---------------------------------------------------------------
    def network(self, device: str = "cpu") -> Generator:
        """The generator on ``device``, built once per process and cached by sha256."""
        key = (self.sha256, device)
        with _CACHE_LOCK:
            net = _NETWORKS.get(key)
            if net is None:
                net = _build_network(self, device)
                _NETWORKS[key] = net
                _MODELS.setdefault(self.sha256, self)
        return net

    def plot_history(self, **kwargs: Any) -> Figure:
        """Plot the training curves (losses and validation RMSE); returns the Figure."""
        from .plotting import plot_history

        return plot_history(self, **kwargs)


def _decode(name: str, view: Mapping[str, Any], source: str) -> np.ndarray:
    """A tensor of a safetensors file as numpy: weights in float32, the history as stored."""
    dtype, shape, data = view["dtype"], view["shape"], view["data"]
    if dtype == "BF16":
        # numpy has no bfloat16: its 16 bits are the upper half of a float32's
        bits = np.frombuffer(data, dtype="<u2").astype("<u4") << np.uint32(16)
        array = bits.view("<f4")
    elif dtype in FLOAT_DTYPES:
        array = np.frombuffer(data, dtype=FLOAT_DTYPES[dtype])
    else:
        raise WeightsError(
            f"{source}: tensor {name!r} has dtype {dtype}; generator weights must be floating "
            "point (F16, BF16, F32 or F64). Convert the tensors to float32 and save them again "
            "(Model.save() or safetensors.torch.save_file)."
        )
    array = array.reshape(shape)
    if name == HISTORY_KEY:
        return array
    with np.errstate(over="ignore"):  # float64 beyond float32's range: reported as infinite
        return array.astype(np.float32)


def _build_network(model: Model, device: str) -> Generator:
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is a hard dependency
        raise MissingDependencyError("xsstsr needs PyTorch: pip install torch") from err
    from .networks import build_generator

    net = build_generator(model._metadata)
    state = {k: torch.from_numpy(v) for k, v in model._state.items()}
    net.load_state_dict(state)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    # channels-last convolutions are ~1.4x faster on the CPU (oneDNN) and suit tensor cores
    net = net.to(device)
    return net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # not in stubs


def _check_state(model: Model, source: str) -> None:
    """Check tensor names and shapes against the architecture without running anything."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    from .networks import build_generator

    with torch.device("meta"):
        expected = build_generator(model._metadata).state_dict()
    state = model._state
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise MetadataError(
            f"{source}: tensors do not match the architecture in the metadata "
            f"(missing {missing[:3]}, unexpected {extra[:3]}); the metadata belongs to "
            "another network. Save the generator with Model.save() or xsstsr.fit()."
        )
    for key, tensor in expected.items():
        if tuple(tensor.shape) != state[key].shape:
            raise MetadataError(
                f"{source}: tensor {key!r} has shape {state[key].shape}, the architecture "
                f"needs {tuple(tensor.shape)}; the metadata belongs to another network. Save "
                "the generator with Model.save() or xsstsr.fit()."
            )
        if not np.all(np.isfinite(state[key])):
            raise WeightsError(
                f"{source}: tensor {key!r} holds NaN or infinite values (or float64 values "
                "beyond float32's range); the training diverged or the file is corrupt."
            )


def register(model: Model, *, persist: bool = True) -> ModelRef:
    """Make ``model`` findable in this process and, with ``persist``, in other processes
    through a file (its source, or a copy in the cache). Work computed here and now (the
    eager path) passes ``persist=False``: it needs no writable cache."""
    from .weights import cache_dir

    with _CACHE_LOCK:
        _MODELS.setdefault(model.sha256, model)
    path = model.source if model.source and os.path.isfile(model.source) else None
    if path is None and persist:
        target = cache_dir() / "models" / f"{model.sha256}.safetensors"
        if not target.exists():
            write_atomic(target, model.to_bytes())
        path = str(target)
    return ModelRef(sha256=model.sha256, path=path, name=model.name)


def resolve_ref(ref: ModelRef) -> Model:
    """The model a :class:`ModelRef` names, loaded at most once per process."""
    with _CACHE_LOCK:
        model = _MODELS.get(ref.sha256)
    if model is not None:
        return model
    from .errors import WeightsIntegrityError

    if ref.path and os.path.isfile(ref.path):
        data = Path(ref.path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        model = Model.from_bytes(data, source=ref.path)
        if ref.sha256 not in (digest, model.sha256):
            raise WeightsIntegrityError(
                f"{ref.path} changed on disk: sha256 {digest} is not the expected {ref.sha256}."
            )
    elif ref.name:
        from .weights import load_model

        model = load_model(ref.name)
    else:
        raise WeightsError(
            f"model {ref.sha256[:12]} is not available in this process; save it to a path all "
            "workers can read and pass that path as model=."
        )
    with _CACHE_LOCK:
        _MODELS.setdefault(ref.sha256, model)
    return model


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (a dead
    writer's leftover temporary is cleared first, as for :func:`xsstsr.io.write_dataset`)."""
    from .io import sweep_stale, temporary_sibling

    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(path)
    tmp = temporary_sibling(path)
    # 0o644 (less the umask): weights in a shared cache must be readable by other users
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def new_metadata(
    *,
    name: str,
    upsample: int,
    pool: int,
    window: int,
    inputs: list[str],
    mean: float,
    std: float,
    architecture: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Metadata for a fresh generator; the halo follows from the architecture."""
    from .networks import DEFAULT_ARCHITECTURE, receptive_halo

    arch = dict(DEFAULT_ARCHITECTURE)
    arch.update(architecture or {})
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "factor": upsample / pool,
        "upsample": upsample,
        "pool": pool,
        "halo": receptive_halo(arch, pool),
        "window": window,
        "inputs": list(inputs),
        "architecture": arch,
        "normalisation": {"mean": float(mean), "std": float(std), "units": "degC"},
        "xsstsr_version": __version__,
    }
    meta.update(extra)
    validate_metadata(meta, name)
    return meta


def init_model(metadata: Mapping[str, Any], seed: int = 0) -> Model:
    """A fresh generator (bicubic at start) with deterministic initial weights."""
    import torch

    from .networks import build_generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_generator(dict(metadata))
    state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    return Model(state, metadata)
