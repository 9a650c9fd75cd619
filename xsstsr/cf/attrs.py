"""CF attributes of the variables and coordinates xsstsr writes itself (samples, synthetic data)."""

from __future__ import annotations

SST_ATTRS = {
    "standard_name": "sea_surface_temperature",
    "long_name": "sea surface temperature",
    "units": "degC",
}

LAT_ATTRS = {
    "standard_name": "latitude",
    "long_name": "latitude",
    "units": "degrees_north",
    "axis": "Y",
}

LON_ATTRS = {
    "standard_name": "longitude",
    "long_name": "longitude",
    "units": "degrees_east",
    "axis": "X",
}

TIME_ATTRS = {"standard_name": "time", "long_name": "time", "axis": "T"}
