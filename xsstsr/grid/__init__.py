"""Grid geometry: refinement factors, fine coordinates, canonical layout, coarsening, land."""

from __future__ import annotations

from .coarsen import (
    coarsen_truth,
)
from .coords import (
    align_source,
    fine_coordinate,
)
from .factor import (
    parse_factor,
)
from .land import (
    distance_to_land,
    fine_land_mask,
    land_from_mask,
    lat_lon_dims,
)
from .layout import (
    Layout,
    canonical_layout,
    time_as_days,
)

__all__ = [
    "Layout",
    "align_source",
    "canonical_layout",
    "coarsen_truth",
    "distance_to_land",
    "fine_coordinate",
    "fine_land_mask",
    "land_from_mask",
    "lat_lon_dims",
    "parse_factor",
    "time_as_days",
]
