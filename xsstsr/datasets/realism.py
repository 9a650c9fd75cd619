"""Real-world ingredients for synthetic SST: a climatology background, real coastlines,
coastal upwelling and a distance to land.

:func:`xsstsr.datasets.synthetic_sst` uses them when it is given a ``background``
climatology or a ``land_mask`` (for instance the World Ocean Atlas surface temperature
and an etopo coastline, as ``scripts/build_training_data.py`` does), so that the
training boxes sit on real large-scale fields and coasts instead of an analytic gradient
and a random continent.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..errors import CoordinateError, InputDataError, InputTypeError
from ..grid.land import distance_to_land, lat_lon_dims


def _fill_land(values: np.ndarray) -> np.ndarray:
    """Each NaN cell of a 2-D field takes its nearest finite cell's value."""
    from scipy.ndimage import distance_transform_edt

    missing = ~np.isfinite(values)
    if not missing.any():
        return values
    if missing.all():
        raise InputDataError("the background climatology has a month that is NaN everywhere.")
    index = distance_transform_edt(missing, return_distances=False, return_indices=True)
    return values[tuple(index)]


def _monthly(background: xr.DataArray) -> tuple[xr.DataArray, Hashable, Hashable]:
    if not isinstance(background, xr.DataArray):
        raise InputTypeError(
            f"background must be an xarray DataArray (month, lat, lon) in degC, got "
            f"{type(background).__name__}."
        )
    lat, lon = lat_lon_dims(background)
    others = [d for d in background.dims if d not in (lat, lon)]
    if len(others) != 1 or background.sizes[others[0]] != 12:
        raise CoordinateError(
            f"background must be a monthly climatology: dims (month, lat, lon) with 12 "
            f"months, got dims {background.dims}; select one depth, e.g. .isel(depth=0)."
        )
    return background.transpose(others[0], lat, lon).sortby(lat), lat, lon


def background_field(
    background: xr.DataArray, lat: np.ndarray, lon: np.ndarray, t_days: np.ndarray
) -> np.ndarray:
    """A monthly climatology (12, lat, lon; degC; NaN on land) at the box's cells and days.

    Land is filled from the nearest ocean first (a real coast leaves no hole), then the
    field is interpolated bilinearly in space (periodic in longitude) and linearly in time
    between mid-months (cyclic). Returns (time, lat, lon) float64.
    """
    from scipy.interpolate import RegularGridInterpolator

    clim, lat_name, lon_name = _monthly(background)
    values = np.stack([_fill_land(np.asarray(m, dtype="float64")) for m in clim.values])
    src_lat = np.asarray(clim[lat_name].values, dtype="float64")
    src_lon = np.asarray(clim[lon_name].values, dtype="float64") % 360.0
    order = np.argsort(src_lon)
    src_lon, values = src_lon[order], values[:, :, order]
    # one wrapped column on each side: bilinear across the 0/360 seam
    src_lon = np.concatenate([src_lon[-1:] - 360.0, src_lon, src_lon[:1] + 360.0])
    values = np.concatenate([values[:, :, -1:], values, values[:, :, :1]], axis=2)
    yy, xx = np.meshgrid(
        np.clip(lat, src_lat[0], src_lat[-1]), np.asarray(lon) % 360.0, indexing="ij"
    )
    points = np.stack([yy.ravel(), xx.ravel()], axis=-1)
    months = np.stack(
        [
            RegularGridInterpolator((src_lat, src_lon), values[m])(points).reshape(yy.shape)
            for m in range(12)
        ]
    )
    # fractional month from the day of year: month m (0-based) is centred at (m + 0.5) / 12
    position = (np.asarray(t_days) % 365.2425) / 365.2425 * 12.0 - 0.5
    below = np.floor(position).astype(int)
    weight = (position - below)[:, None, None]
    return (1 - weight) * months[below % 12] + weight * months[(below + 1) % 12]


def upwelling(
    land: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    t_days: np.ndarray,
    amplitude: float,
    width: float = 0.5,
) -> np.ndarray:
    """Coastal upwelling: a cold anomaly of ``amplitude`` K at the coast that decays over
    ``width`` degrees offshore, strongest in local summer (time, lat, lon)."""
    distance = distance_to_land(land, lat, lon)
    shape = np.exp(-distance / width)
    hemisphere = 1.0 if float(np.mean(lat)) >= 0 else -1.0
    summer = 0.5 * (1 + hemisphere * np.cos(2 * np.pi * (np.asarray(t_days) - 200.0) / 365.25))
    return -float(amplitude) * summer[:, None, None] * shape[None, :, :]
