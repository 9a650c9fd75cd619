"""Tutorial and sample data: the bundled sample, synthetic SST and its stations, and
readers for the real data sets of ferret (COADS, the ocean atlas subset) when installed.

Everything here is deterministic and needs no network.
"""

from __future__ import annotations

from typing import Any

from ..deprecation import moved
from . import realism
from .files import open_coads_sst, open_ocean_atlas, open_sample, open_sample_stations
from .stations import synthetic_stations
from .synthetic import synthetic_sst

__all__ = [
    "open_coads_sst",
    "open_ocean_atlas",
    "open_sample",
    "open_sample_stations",
    "realism",
    "synthetic_sst",
    "synthetic_stations",
]

_moved = moved("xsstsr.datasets", ("xsstsr.grid.coarsen",))


def __getattr__(name: str) -> Any:
    # coarsen_truth is a library operation, not data: it lives in xsstsr.grid now
    if name == "coarsen_truth":
        return _moved(name)
    raise AttributeError(f"module 'xsstsr.datasets' has no attribute {name!r}")
