"""Detection: which variable is the SST, which coordinates are lat, lon and time, its units.

Criteria are plain data (:mod:`xsstsr.cf.criteria`); units, fill values and the physical
range live in :mod:`xsstsr.cf.units`, the one kelvin conversion included.
"""

from __future__ import annotations

from .attrs import (
    LAT_ATTRS,
    LON_ATTRS,
    SST_ATTRS,
    TIME_ATTRS,
)
from .criteria import (
    AXIS_RANGES,
    COORD_CRITERIA,
    LENGTH_UNITS,
    SST_STANDARD_NAMES,
    TIME_NAMES,
    SSTFields,
    find_fields,
    find_lat_lon,
    find_sst_variable,
    find_time,
    is_global_longitude,
    is_time_coordinate,
    regular_spacing,
    warn_guess,
)
from .units import (
    FILL_ATTRS,
    KELVIN_OFFSET,
    OUTPUT_BOUNDS_DEGC,
    PHYSICAL_RANGE_DEGC,
    UNIT_ALIASES,
    canonical_units,
    check_physical_range,
    check_physical_range_of,
    from_celsius,
    mask_fill_values,
    to_celsius,
)

__all__ = [
    "AXIS_RANGES",
    "COORD_CRITERIA",
    "FILL_ATTRS",
    "KELVIN_OFFSET",
    "LAT_ATTRS",
    "LENGTH_UNITS",
    "LON_ATTRS",
    "OUTPUT_BOUNDS_DEGC",
    "PHYSICAL_RANGE_DEGC",
    "SST_ATTRS",
    "SST_STANDARD_NAMES",
    "TIME_ATTRS",
    "TIME_NAMES",
    "UNIT_ALIASES",
    "SSTFields",
    "canonical_units",
    "check_physical_range",
    "check_physical_range_of",
    "find_fields",
    "find_lat_lon",
    "find_sst_variable",
    "find_time",
    "from_celsius",
    "is_global_longitude",
    "is_time_coordinate",
    "mask_fill_values",
    "regular_spacing",
    "to_celsius",
    "warn_guess",
]
