"""Inference: the device, tiled generator runs over dask blocks, the worker-side model cache,
and :func:`downscale` that puts them together.
"""

from __future__ import annotations

from .cache import (
    ModelRef,
    cached_models,
    register,
    resolve_ref,
)
from .devices import (
    resolve_device,
    resolve_precision,
    worker_device,
)
from .frontend import (
    domain_departures,
    downscale,
)
from .tiling import (
    DEFAULT_TILE,
    TileSpec,
    compute_blocks,
    compute_chunks,
    downscale_dask,
    downscale_numpy,
)

__all__ = [
    "DEFAULT_TILE",
    "ModelRef",
    "TileSpec",
    "cached_models",
    "compute_blocks",
    "compute_chunks",
    "domain_departures",
    "downscale",
    "downscale_dask",
    "downscale_numpy",
    "register",
    "resolve_device",
    "resolve_precision",
    "resolve_ref",
    "worker_device",
]
