"""What a score is computed over: periods, regions, cell weights."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from ..cf.criteria import find_lat_lon
from ..errors import GridError, InputDataError, InputTypeError, OptionError, warn_user
from ..grid.land import match_by_coordinates
from .fields import on_grid, same_points_order
from .statistics import check_weight_values

SEASONS: tuple[str, ...] = ("DJF", "MAM", "JJA", "SON")


MONTHS: tuple[str, ...] = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)


_SEASON_OF_MONTH = np.array([0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 0])  # Jan..Dec -> DJF..SON


KM_PER_DEGREE = 111.195  # great-circle km per degree on a 6371 km sphere


WEIGHTS: tuple[str, ...] = ("area", "none")


def check_weights_option(weights: object) -> None:
    if isinstance(weights, xr.DataArray) or weights is None or isinstance(weights, bool):
        return
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise OptionError(
            f"weights must be 'area' (the default), 'none' or a DataArray of weights on the "
            f"truth's (lat, lon) grid, got {weights!r}."
        )


def grid_weights(
    weights: Any,
    truth: xr.Dataset | xr.DataArray,
    truth_da: xr.DataArray,
    obj: xr.Dataset | xr.DataArray,
    like: xr.DataArray,
    lat: Hashable,
    lon: Hashable,
) -> tuple[Any, str]:
    """(lat, lon) weights on ``like``'s grid (a numpy or dask array) and how they were made.

    Area weights come from the cell bounds of ``truth`` (or else of ``obj``) where a
    Dataset has them, else from cos(latitude): on a regular grid the two are proportional,
    so bounds matter only where cells differ in height (clipped at a pole, uneven rows).
    """
    shape = (like.sizes[lat], like.sizes[lon])
    if weights is False or (isinstance(weights, str) and weights == "none"):
        return np.ones(shape), "none"
    if isinstance(weights, xr.DataArray):
        w_lat, w_lon = find_lat_lon(weights)
        extra = [d for d in weights.dims if d not in (w_lat, w_lon)]
        if extra:
            raise InputDataError(
                f"weights has dims {weights.dims}; give one (lat, lon) field of weights, e.g. "
                f"weights.isel({extra[0]}=0)."
            )
        given = on_grid(weights, like, lat, lon, "weights").transpose(lat, lon).data
        if not hasattr(given, "dask"):  # lazy weights are checked block by block
            given = np.asarray(given, dtype="float64")
            check_weight_values(given)
        return given, "given"
    t_lat, t_lon = find_lat_lon(truth_da)
    lat_bnds = _bounds(truth, t_lat, like[lat], periodic=False)
    lon_bnds = _bounds(truth, t_lon, like[lon], periodic=True)
    if lat_bnds is None and lon_bnds is None:
        lat_bnds = _bounds(obj, lat, like[lat], periodic=False)
        lon_bnds = _bounds(obj, lon, like[lon], periodic=True)
    if lat_bnds is not None:
        # the exact area of a cell on the sphere: (sin(lat1) - sin(lat0)) * (lon1 - lon0)
        s = np.sin(np.deg2rad(lat_bnds))
        lat_factor = np.abs(s[:, 1] - s[:, 0])
    else:
        lat_factor = np.cos(np.deg2rad(np.asarray(like[lat].values, dtype="float64")))
        lat_factor = np.clip(lat_factor, 0.0, None)  # no negative weights beyond a pole
    if lon_bnds is not None:
        width = np.abs(lon_bnds[:, 1] - lon_bnds[:, 0])
        lon_factor = np.where(width > 180.0, 360.0 - width, width)  # a cell across 0/360
    else:
        lon_factor = np.ones(shape[1])
    bounded = lat_bnds is not None or lon_bnds is not None
    kind = "area (cell bounds)" if bounded else "area (cos lat)"
    return lat_factor[:, None] * lon_factor[None, :], kind


def _bounds(
    obj: xr.Dataset | xr.DataArray, coord: Hashable, like: xr.DataArray, periodic: bool
) -> Any:
    """The cell bounds of ``coord`` in a Dataset (numpy or dask), one row per value of
    ``like`` in ``like``'s order (``obj`` may store the axis the other way round, or its
    longitudes in the other convention), or None.

    Found by the coordinate's CF ``bounds`` attribute, or by the names ``<coord>_bnds``
    and ``<coord>_bounds``.
    """
    size = like.size
    if not isinstance(obj, xr.Dataset) or coord not in obj.variables:
        return None
    names = [obj[coord].attrs.get("bounds"), f"{coord}_bnds", f"{coord}_bounds"]
    name = next((n for n in names if n is not None and n in obj.variables), None)
    if name is None:
        return None
    bnds = obj[name]
    if bnds.ndim != 2 or coord not in bnds.dims or bnds.shape[bnds.dims.index(coord) - 1] != 2:
        raise GridError(
            f"the cell bounds {name!r} of {str(coord)!r} have dims {bnds.dims} and shape "
            f"{bnds.shape}; CF bounds are ({str(coord)!r}, 2). Fix or drop them "
            f"(ds.drop_vars({name!r})), or pass weights='none'."
        )
    bnds = bnds.transpose(coord, ...)
    if bnds.shape[0] != size:
        raise GridError(
            f"the cell bounds {name!r} have {bnds.shape[0]} rows but the grid has {size} "
            f"values of {str(coord)!r}; fix or drop them (ds.drop_vars({name!r}))."
        )
    mine = np.asarray(like.values, dtype="float64")
    theirs = np.asarray(obj[coord].values, dtype="float64")
    step = abs(float(mine[1] - mine[0])) if mine.size > 1 else 1.0
    order = same_points_order(mine, theirs, step, periodic=periodic)
    if order is not None and not np.array_equal(order, np.arange(order.size)):
        return bnds.data[order]
    return bnds.data


def label_periods(times: Any, by: str | None) -> tuple[list[str], np.ndarray]:
    """Period labels and each time's period index (-1: in no period)."""
    times = np.asarray(times)
    if by is None or by == "all":
        return [], np.full(times.size, -1)
    if by not in ("season", "month"):
        raise OptionError(f"by must be 'season', 'month' or None, got {by!r}.")
    try:
        months = np.asarray(xr.DataArray(times, dims="t").dt.month.values, dtype=int)
    except (TypeError, AttributeError):
        warn_user("the time coordinate holds no dates; scoring the whole record only.")
        return [], np.full(times.size, -1)
    if by == "season":
        codes = _SEASON_OF_MONTH[months - 1]
        labels = list(SEASONS)
    else:
        codes = months - 1
        labels = list(MONTHS)
    present = sorted(set(codes.tolist()))
    remap = np.full(len(labels), -1)
    remap[present] = np.arange(len(present))
    return [labels[i] for i in present], remap[codes]


Box = tuple[float, float, float, float]


def in_box(lat: np.ndarray, lon: np.ndarray, box: Box, name: str) -> np.ndarray:
    try:
        if isinstance(box, str | bytes):  # a name such as "Atlantic": xsstsr knows no names
            raise TypeError
        lat0, lat1, lon0, lon1 = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (lat0, lat1, lon0, lon1)):
            raise TypeError
    except (TypeError, ValueError):
        raise InputTypeError(
            f"region {name!r} must be a (lat0, lat1, lon0, lon1) box of finite numbers or a "
            f"boolean mask DataArray, got {box!r}; regions are not looked up by name, give "
            f'the box itself, e.g. regions={{"{name}": (30, 45, 120, 140)}}.'
        ) from None
    lat_lo, lat_hi = sorted((lat0, lat1))
    inside_lat = (lat >= lat_lo) & (lat <= lat_hi)
    if lon1 - lon0 >= 360:
        return inside_lat
    width = (lon1 - lon0) % 360.0  # a box may cross the date line: (170, -170)
    inside_lon = ((lon - lon0) % 360.0) <= width + 1e-9
    return inside_lat & inside_lon


def _maskon_grid(
    mask: xr.DataArray,
    lat: Hashable,
    lon: Hashable,
    lat_values: np.ndarray,
    lon_values: np.ndarray,
    name: str,
) -> np.ndarray:
    m_lat, m_lon = find_lat_lon(mask)
    extra = [d for d in mask.dims if d not in (m_lat, m_lon)]
    if extra:
        raise InputDataError(
            f"region mask {name!r} has dims {mask.dims}; give one (lat, lon) mask per region "
            "(e.g. a dict of masks)."
        )
    mask = (mask if mask.dtype == bool else mask.fillna(0) > 0.5).astype("float64")
    mask = mask.rename({m_lat: lat, m_lon: lon}) if (m_lat, m_lon) != (lat, lon) else mask
    try:  # either longitude convention; cells beyond the mask's extent are outside it
        matched = match_by_coordinates(mask, lat, lon, lat_values, lon_values)
    except (ValueError, KeyError) as err:  # pandas: duplicated coordinates
        raise GridError(
            f"region mask {name!r} cannot be matched to the grid ({err}); give it unique "
            f"coordinates, e.g. mask.drop_duplicates([{str(lat)!r}, {str(lon)!r}])."
        ) from None
    return np.asarray(matched.fillna(0).transpose(lat, lon).values > 0.5)


def parse_regions(regions: Any) -> list[tuple[str, Any]]:
    if regions is None:
        return []
    if isinstance(regions, xr.DataArray):
        return [(str(regions.name) if regions.name is not None else "mask", regions)]
    if isinstance(regions, Mapping):
        out = []
        for name, value in regions.items():
            if str(name) == "all":
                raise OptionError(
                    "the region name 'all' is reserved for the whole domain; rename that region."
                )
            out.append((str(name), value))
        return out
    raise InputTypeError(
        "regions must be a boolean mask DataArray or a dict {name: (lat0, lat1, lon0, lon1) "
        f'or mask}}, got {type(regions).__name__}; e.g. regions={{"north": (40, 50, 130, 150)}}.'
    )


def region_grid_masks(
    regions: list[tuple[str, Any]],
    lat: Hashable,
    lon: Hashable,
    lat_values: np.ndarray,
    lon_values: np.ndarray,
) -> np.ndarray:
    masks = np.zeros((len(regions), lat_values.size, lon_values.size), dtype=bool)
    yy, xx = np.meshgrid(lat_values, lon_values, indexing="ij")
    for i, (name, value) in enumerate(regions):
        if isinstance(value, xr.DataArray):
            masks[i] = _maskon_grid(value, lat, lon, lat_values, lon_values, name)
        else:
            masks[i] = in_box(yy, xx, value, name)
    return masks


def region_station_members(
    regions: list[tuple[str, Any]],
    lat: Hashable,
    lon: Hashable,
    lat_values: np.ndarray,
    lon_values: np.ndarray,
    s_lat: np.ndarray,
    s_lon: np.ndarray,
) -> np.ndarray:
    members = np.zeros((len(regions), s_lat.size), dtype=bool)
    for i, (name, value) in enumerate(regions):
        if isinstance(value, xr.DataArray):
            grid = _maskon_grid(value, lat, lon, lat_values, lon_values, name)
            iy = np.abs(lat_values[None, :] - s_lat[:, None]).argmin(axis=1)
            ix = np.abs(lon_values[None, :] - s_lon[:, None]).argmin(axis=1)
            members[i] = grid[iy, ix]
        else:
            members[i] = in_box(s_lat, s_lon, value, name)
    return members
