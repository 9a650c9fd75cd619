"""The worker-side model cache: a dask graph carries a small :class:`ModelRef`, never the model.

:func:`register` gives a model a reference (its sha256 and, for files, its path);
:func:`resolve_ref` turns one back into a :class:`~xsstsr.Model` on whichever process runs
the task, loading it once per process.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import WeightsError
from ..io import write_atomic
from ..models.container import Model

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class ModelRef:
    """What a dask task needs to find a model in its own process: hash and where to load it."""

    sha256: str
    path: str | None = None
    name: str | None = None


_MODELS: dict[str, Model] = {}
_CACHE_LOCK = threading.Lock()


def register(model: Model, *, persist: bool = True) -> ModelRef:
    """Make ``model`` findable in this process and, with ``persist``, in other processes
    through a file (its source, or a copy in the cache). Work computed here and now (the
    eager path) passes ``persist=False``: it needs no writable cache."""
    from ..models.weights import cache_dir

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
    from ..errors import WeightsIntegrityError

    if ref.path and os.path.isfile(ref.path):
        data = Path(ref.path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        model = Model.from_bytes(data, source=ref.path)
        if ref.sha256 not in (digest, model.sha256):
            raise WeightsIntegrityError(
                f"{ref.path} changed on disk: sha256 {digest} is not the expected {ref.sha256}."
            )
    else:
        model = _released_by_name(ref.name, ref.sha256) if ref.name else None
        if model is None:  # a model of the same name with other weights is not this one
            where = f" (its file {ref.path} is not readable here)" if ref.path else ""
            named = f"{ref.name} " if ref.name else ""
            raise WeightsError(
                f"model {named}{ref.sha256[:12]} is not available in this process{where}; "
                "save it to a path all workers can read and pass that path as model=."
            )
    with _CACHE_LOCK:
        _MODELS.setdefault(ref.sha256, model)
    return model


def _released_by_name(name: str, sha256: str) -> Model | None:
    """The registry's model ``name`` when it is the very model of hash ``sha256``."""
    from ..errors import ModelNotFoundError
    from ..models.weights import load_model

    try:
        model = load_model(name)
    except ModelNotFoundError:
        return None
    return model if model.sha256 == sha256 else None


def cached_models() -> list[str]:
    """The sha256 of every model this process holds (on a dask worker: what it has loaded)."""
    with _CACHE_LOCK:
        return sorted(_MODELS)
