"""Fields to score: the SST of a source in degC, matched onto the reference grid."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..cf.criteria import find_fields, find_lat_lon, find_time, regular_spacing, wrap_longitudes
from ..cf.units import to_celsius
from ..errors import GridError, InputTypeError


def celsius(da: xr.DataArray, units: str) -> xr.DataArray:
    """``da`` in degC, as float64 (scores accumulate in double precision)."""
    out = to_celsius(da, units)
    return out.astype("float64") if out.dtype != np.float64 else out


def on_grid(
    other: xr.DataArray,
    like: xr.DataArray,
    lat: Hashable,
    lon: Hashable,
    what: str,
    fix: str | None = None,
) -> xr.DataArray:
    """``other`` with ``like``'s lat/lon names and values, or a GridError saying how to fix it
    (``fix``: the advice, when ``what`` is not something the user can interpolate)."""
    o_lat, o_lon = find_lat_lon(other)
    if (o_lat, o_lon) != (lat, lon):
        other = other.rename({o_lat: lat, o_lon: lon})
    for dim in (lat, lon):
        mine = np.asarray(like[dim].values, dtype="float64")
        theirs = np.asarray(other[dim].values, dtype="float64")
        step = abs(regular_spacing(mine, dim))
        order = same_points_order(mine, theirs, step, periodic=dim == lon)
        if order is not None:  # the same grid, maybe stored the other way round
            if not np.array_equal(order, np.arange(order.size)):
                other = other.isel({dim: order})
            theirs = mine
        if mine.size != theirs.size or not np.allclose(mine, theirs, rtol=0, atol=1e-3 * step):
            raise GridError(
                f"{what} is not on the downscaled field's grid: {dim!r} has {theirs.size} "
                f"points from {theirs.min() if theirs.size else 'nan'} to "
                f"{theirs.max() if theirs.size else 'nan'}, the downscaled field {mine.size} "
                f"from {mine.min()} to {mine.max()}. "
                + (
                    fix
                    or f"Interpolate it onto that grid first, e.g. {what}.interp({lat}="
                    f"result[{str(lat)!r}], {lon}=result[{str(lon)!r}]), or pass the field on "
                    "the matching grid."
                )
            )
    return other.assign_coords({lat: like[lat], lon: like[lon]})


def same_points_order(
    mine: np.ndarray, theirs: np.ndarray, step: float, periodic: bool
) -> np.ndarray | None:
    """Indices that put ``theirs`` in ``mine``'s order when both hold the same points (stored
    the other way round, or, for longitudes, in the other convention or from another
    meridian), else None."""
    if mine.size != theirs.size or mine.size == 0:
        return None
    if periodic:  # into mine's window of 360 degrees
        theirs = wrap_longitudes(theirs, float(mine.min()) - step / 2)
    order = np.argsort(theirs, kind="stable")
    if mine.size > 1 and mine[0] > mine[-1]:
        order = order[::-1]
    if np.allclose(mine, theirs[order], rtol=0, atol=1e-3 * step):
        return order
    return None


def rename_time(other: xr.DataArray, time: Hashable | None) -> xr.DataArray:
    """``other`` with its time dim named ``time``."""
    o_lat, o_lon = find_lat_lon(other)
    o_time = find_time(other, o_lat, o_lon)
    if time is not None and o_time is not None and o_time != time:
        other = other.rename({o_time: time})
    return other


def field_of(
    obj: xr.Dataset | xr.DataArray, variable: Hashable | None, what: str
) -> tuple[xr.DataArray, str]:
    """The SST of ``obj`` and its units, with ``what`` naming it in errors."""
    if isinstance(obj, xr.Dataset) and variable is not None and variable not in obj.data_vars:
        variable = None  # the truth or coarse file may name its SST differently
    if not isinstance(obj, xr.Dataset | xr.DataArray):
        raise InputTypeError(
            f"{what} must be an xarray Dataset or DataArray, got {type(obj).__name__}; "
            "open it first, e.g. xr.open_dataset(path)."
        )
    da, fields = find_fields(obj, variable)
    return da, fields.units
