"""Land masks on any grid: matching a user's mask by coordinates, and distance to land."""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..cf.criteria import find_lat_lon, is_global_longitude, wrap_longitudes
from ..errors import (
    CoordinateError,
    InputDataError,
    InputTypeError,
)


def _mask_axis(mask: xr.DataArray, dim: Hashable, start: float | None) -> xr.DataArray:
    """``mask`` sorted along ``dim``; longitudes moved into ``[start, start + 360)`` and,
    when the mask is global, wrapped by one cell on each side (so nearest works at the seam)."""
    values = np.asarray(mask[dim].values, dtype="float64")
    if start is None:
        return mask.sortby(dim)
    mask = mask.assign_coords({dim: wrap_longitudes(values, start)}).sortby(dim)
    values = np.asarray(mask[dim].values)
    if values.size > 1 and is_global_longitude(values, float(np.median(np.diff(values)))):
        first = mask.isel({dim: [0]}).assign_coords({dim: values[:1] + 360.0})
        last = mask.isel({dim: [-1]}).assign_coords({dim: values[-1:] - 360.0})
        mask = xr.concat([last, mask, first], dim=dim)
    return mask


def match_by_coordinates(
    mask: xr.DataArray,
    lat: Hashable,
    lon: Hashable,
    lat_values: np.ndarray,
    lon_values: np.ndarray,
) -> xr.DataArray:
    """``mask`` (float, on dims named ``lat`` and ``lon``) at the grid's cells: the nearest
    mask cell within half a grid cell or half a mask cell, whichever is larger (so a mask
    on this grid, a coarser one or any regular grid works), in either longitude convention
    and orientation; NaN where no mask cell is that near."""
    # a window of 360 degrees centred on the grid holds all of it, global grids included
    lon_start = 0.5 * float(np.min(lon_values) + np.max(lon_values)) - 180.0
    matched = _mask_axis(_mask_axis(mask, lat, None), lon, lon_start)
    for dim, grid in ((lat, lat_values), (lon, lon_values)):
        coord = np.asarray(matched[dim].values, dtype="float64")
        half_grid = abs(float(grid[1] - grid[0])) / 2 if grid.size > 1 else 0.0
        half_mask = float(np.max(np.diff(coord))) / 2 if coord.size > 1 else 0.0
        tolerance = max(half_grid, half_mask) * (1 + 1e-6)
        matched = matched.reindex({dim: grid}, method="nearest", tolerance=tolerance)
    return matched


def fine_land_mask(
    land_mask: xr.DataArray,
    lat: Hashable,
    lon: Hashable,
    fine_lat: np.ndarray,
    fine_lon: np.ndarray,
) -> xr.DataArray:
    """``land_mask`` (True or 1 = land; NaN counts as land) on the fine grid.

    Matched by coordinates to the nearest mask cell within half a fine cell or half a
    mask cell, whichever is larger (so a mask on the fine grid, on the coarse grid or
    on another regular grid works), in either longitude convention and orientation. A
    mask without coordinates, or one that does not cover every fine cell, is refused.
    """
    m_lat, m_lon = find_lat_lon(land_mask)
    for dim, arg in ((m_lat, "lat"), (m_lon, "lon")):
        if dim not in land_mask.coords:
            raise CoordinateError(
                f"land_mask has no {arg} coordinate values on {dim!r}: it is matched to the "
                f"data by coordinates. Assign them, e.g. land_mask.assign_coords({dim}=...)."
            )
    mask = land_mask.rename({m_lat: lat, m_lon: lon}) if (m_lat, m_lon) != (lat, lon) else land_mask
    mask = mask.astype("float64") if mask.dtype == bool else mask.fillna(1).astype("float64")
    matched = match_by_coordinates(mask, lat, lon, fine_lat, fine_lon)
    uncovered = int(matched.isnull().sum())
    if uncovered:
        spans = ", ".join(
            f"{arg} {float(land_mask[dim].min()):g}..{float(land_mask[dim].max()):g}"
            for dim, arg in ((m_lat, "lat"), (m_lon, "lon"))
        )
        raise InputDataError(
            f"land_mask does not cover the data: {uncovered} of {matched.size} fine cells have "
            f"no mask cell within half a cell (the mask spans {spans}; the fine grid lat "
            f"{float(np.min(fine_lat)):g}..{float(np.max(fine_lat)):g}, lon "
            f"{float(np.min(fine_lon)):g}..{float(np.max(fine_lon)):g}). Pass a mask over the "
            "data's region, on the fine grid, the coarse grid or any regular grid."
        )
    return matched > 0.5


def lat_lon_dims(da: xr.DataArray) -> tuple[Hashable, Hashable]:
    """The lat/lon dims of a helper grid (a mask, a background), without guessing warnings."""
    with warnings.catch_warnings():  # helper grids named lat/lon need no CF attributes
        warnings.filterwarnings("ignore", message="guessed")
        return find_lat_lon(da)


def land_from_mask(land_mask: xr.DataArray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """A land mask (True/1 = land, any regular grid, either longitude convention) at the
    box's cells, nearest neighbour; (lat, lon) bool."""
    if not isinstance(land_mask, xr.DataArray):
        raise InputTypeError(
            f"land_mask must be an xarray DataArray (True = land), got {type(land_mask).__name__}."
        )
    m_lat, m_lon = lat_lon_dims(land_mask)
    mask = land_mask.transpose(m_lat, m_lon)
    src_lat = np.asarray(mask[m_lat].values, dtype="float64")
    src_lon = np.asarray(mask[m_lon].values, dtype="float64") % 360.0
    values = np.asarray(mask.values) > 0.5
    lat_order, lon_order = np.argsort(src_lat), np.argsort(src_lon)
    src_lat, src_lon = src_lat[lat_order], src_lon[lon_order]
    values = values[lat_order][:, lon_order]
    iy = np.clip(np.searchsorted(src_lat, lat), 1, src_lat.size - 1)
    iy = np.where(np.abs(lat - src_lat[iy - 1]) <= np.abs(src_lat[iy] - lat), iy - 1, iy)
    query = np.asarray(lon, dtype="float64") % 360.0
    ring = np.concatenate([src_lon - 360.0, src_lon, src_lon + 360.0])
    ix = np.abs(query[:, None] - ring[None, :]).argmin(axis=1) % src_lon.size
    return values[iy][:, ix]


def distance_to_land(land: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Distance (degrees of latitude) from each cell to the nearest land cell; inf if none."""
    from scipy.ndimage import distance_transform_edt

    if not land.any():
        return np.full(land.shape, np.inf)
    dy = abs(float(lat[1] - lat[0])) if lat.size > 1 else 1.0
    dx = abs(float(lon[1] - lon[0])) if lon.size > 1 else 1.0
    dx *= float(np.cos(np.deg2rad(np.clip(np.mean(lat), -80, 80))))
    return np.asarray(distance_transform_edt(~land, sampling=(dy, dx)))
