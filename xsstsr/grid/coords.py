"""Fine-grid geometry: the fine coordinates of a coarse axis and sources aligned to a grid."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..cf.criteria import find_lat_lon, regular_spacing
from ..cf.units import to_celsius
from ..errors import (
    GridError,
    InputTypeError,
)


def fine_coordinate(coord: xr.DataArray, upsample: int, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres and bounds of the fine grid for one regular 1-D coordinate.

    The fine cells tile the coarse cells' extent exactly: spacing divided by the
    factor, starting at the outer edge of the first coarse cell.
    """
    values = np.asarray(coord.values, dtype="float64")
    step = regular_spacing(values, coord.name)
    n = values.size
    if (n * upsample) % pool:
        raise GridError(
            f"factor {upsample}/{pool} needs a number of {coord.name!r} cells divisible by "
            f"{pool} (found {n}); drop one with .isel({coord.name}=slice(0, {n - n % pool}))."
        )
    fine_step = step * pool / upsample
    edge = values[0] - step / 2
    centres = edge + (np.arange(n * upsample // pool) + 0.5) * fine_step
    bounds = np.stack([centres - fine_step / 2, centres + fine_step / 2], axis=-1)
    return centres, bounds


def align_source(
    source: xr.DataArray, like: xr.DataArray, lat: Hashable, lon: Hashable, index: int
) -> xr.DataArray:
    """A fusion source in degC on the SST's grid (linear interpolation when grids differ)."""
    from ..cf.units import canonical_units

    if not isinstance(source, xr.DataArray):
        raise InputTypeError(
            f"sources[{index}] must be an xarray DataArray, got {type(source).__name__}; pass "
            "sources=[da1, ...] with one DataArray per extra model input."
        )
    units = canonical_units(source.attrs.get("units"), f"sources[{index}]")
    s_lat, s_lon = find_lat_lon(source)
    source = source.rename({s_lat: lat, s_lon: lon}) if (s_lat, s_lon) != (lat, lon) else source
    if not (source[lat].equals(like[lat]) and source[lon].equals(like[lon])):
        source = source.interp({lat: like[lat], lon: like[lon]}, method="linear")
    source = source.broadcast_like(like).transpose(*like.dims)
    return to_celsius(source, units).astype(like.dtype)
