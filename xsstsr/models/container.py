"""The :class:`Model`: generator weights plus their metadata, stored as safetensors.

Weights are read with ``safetensors`` only (never pickle). The JSON metadata is
size-bounded and type-checked before anything else is trusted. Networks are
built lazily, once per process and device, keyed by the weights' sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import MetadataError, MissingDependencyError, OptionError, WeightsError, WriteError
from ..io import write_atomic
from .metadata import (
    DOMAIN_KEYS,
    FLOAT_DTYPES,
    HISTORY_KEY,
    METADATA_KEY,
    parse_metadata,
    read_header,
    required_format_version,
    validate_metadata,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..nn.networks import Generator


_NETWORKS: dict[tuple[str, str], Generator] = {}
_NETWORKS_LOCK = threading.Lock()


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
        for key, tensor in self._state.items():  # a NaN model would give NaN ocean, silently
            if not np.all(np.isfinite(tensor)):
                raise WeightsError(
                    f"{source or 'model'}: tensor {key!r} holds NaN or infinite values (or "
                    "float64 values beyond float32's range); the training diverged or the file "
                    "is corrupt."
                )
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
        """Serialise to safetensors bytes (``precision`` "float32" or "float16").

        The training history is stored in float64, or in float32 in a float16 file (a
        released model's 24,000-step history would otherwise be most of its size)."""
        from safetensors.numpy import save

        if precision not in ("float32", "float16"):
            raise OptionError(
                f"precision must be 'float32' or 'float16', got {precision!r}; pass "
                "precision='float16' for a file half the size, or leave the float32 default."
            )
        tensors = {k: v.astype(precision) for k, v in sorted(self._state.items())}
        meta = dict(self._metadata)
        meta["format_version"] = max(
            meta["format_version"], required_format_version(meta["architecture"])
        )
        if not self.history.empty:
            numeric = self.history.select_dtypes("number")
            # safetensors writes arrays in memory order: DataFrame.to_numpy() is often
            # Fortran-ordered, which would scramble the history on reading
            history_dtype = "float32" if precision == "float16" else "float64"
            with np.errstate(over="ignore"):  # a diverged loss beyond float32: stored as inf
                table = numeric.to_numpy(dtype=history_dtype)
            tensors[HISTORY_KEY] = np.ascontiguousarray(table)
            meta["history_columns"] = [str(c) for c in numeric.columns]
        return save(tensors, metadata={METADATA_KEY: json.dumps(meta, sort_keys=True)})

    def save(self, path: str | os.PathLike[str], precision: str = "float32") -> Path:
        """Write the model to a safetensors file atomically; return the path.

        Examples
        --------
        >>> model.save("korea_x5.safetensors")  # doctest: +SKIP
        """
        path = Path(path)
        if path.name in ("", ".", "..") or path.is_dir():
            raise WriteError(
                f"cannot save the model to {str(path)!r}: it names a folder; give a file name, "
                f"e.g. {str(path / (self.name + '.safetensors'))!r}."
            )
        data = self.to_bytes(precision)
        try:
            write_atomic(path, data)
        except OSError as err:
            raise WriteError(
                f"cannot save the model to {str(path)!r} ({err.strerror or err}); choose a "
                "path in a folder you can write to (nothing was written)."
            ) from err
        return path

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "weights", sha256: str | None = None) -> Model:
        """Read a model from safetensors bytes; metadata is checked before tensors are read."""
        from safetensors import SafetensorError, deserialize

        header = read_header(data, source)
        metadata = parse_metadata(header, source)
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
                history = pd.DataFrame(values.astype("float64"), columns=columns)
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
        with _NETWORKS_LOCK:
            net = _NETWORKS.get(key)
            if net is None:
                net = _build_network(self, device)
                _NETWORKS[key] = net
        return net

    def plot_history(self, **kwargs: Any) -> Figure:
        """Plot the training curves (losses and validation RMSE); returns the Figure."""
        from .history import plot_history

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
    from ..nn.networks import build_generator

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
    from ..nn.networks import build_generator

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


def init_model(metadata: Mapping[str, Any], seed: int = 0) -> Model:
    """A fresh generator (bicubic at start) with deterministic initial weights."""
    import torch

    from ..nn.networks import build_generator

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_generator(dict(metadata))
    state = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    return Model(state, metadata)
