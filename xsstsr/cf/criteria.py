"""Finding the SST variable and its coordinates: criteria tables, then detection.

Detection follows a ladder: explicit arguments, then CF attributes (through
cf-xarray), then well-known names, then a typed error that names what was found
and how to fix it. The criteria are plain data at the top of the module.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..errors import (
    AmbiguousVariableError,
    CoordinateError,
    GridError,
    InputDataError,
    InputTypeError,
    VariableNotFoundError,
    warn_user,
)
from .units import canonical_units, mask_fill_values

SST_STANDARD_NAMES: tuple[str, ...] = (
    "sea_surface_temperature",
    "sea_surface_foundation_temperature",
    "sea_surface_skin_temperature",
    "sea_surface_subskin_temperature",
    "sea_water_temperature",
    "sea_water_potential_temperature",
)


COORD_CRITERIA: dict[str, dict[str, tuple[str, ...]]] = {
    "latitude": {
        "standard_name": ("latitude", "grid_latitude"),
        "units": ("degrees_north", "degree_north", "degree_N", "degrees_N", "degreeN", "degreesN"),
        "axis": ("Y",),
        "names": ("lat", "latitude", "nav_lat", "y", "lat_0", "LAT", "Latitude", "LATITUDE"),
    },
    "longitude": {
        "standard_name": ("longitude", "grid_longitude"),
        "units": ("degrees_east", "degree_east", "degree_E", "degrees_E", "degreeE", "degreesE"),
        "axis": ("X",),
        "names": ("lon", "longitude", "nav_lon", "x", "lon_0", "LON", "Longitude", "LONGITUDE"),
    },
}


TIME_NAMES: tuple[str, ...] = ("time", "TIME", "t", "Time", "valid_time", "date")


@dataclass(frozen=True)
class SSTFields:
    """What was found: the variable, its spatial/time dims and its units."""

    variable: Hashable | None
    lat: Hashable
    lon: Hashable
    time: Hashable | None
    units: str


def find_sst_variable(ds: xr.Dataset, variable: Hashable | None = None) -> Hashable:
    """Return the name of the SST variable in ``ds``.

    Explicit ``variable``, then a CF standard_name from :data:`SST_STANDARD_NAMES` (among
    several, the one field: two dims or more, no variable's cell bounds), then the only
    data variable, then the only field.
    """
    names = list(ds.data_vars)
    if variable is not None:
        if variable not in ds.data_vars:
            raise VariableNotFoundError(
                f"variable {variable!r} is not in the dataset; its data variables are "
                f"{tuple(names)}. Pass one of them as variable=..."
            )
        return variable
    # a field has two dims or more and bounds nothing: NCL's lat/lon data variables, a time
    # series or time bounds beside it are not SST candidates
    bounds = {var.attrs.get("bounds") for var in ds.variables.values()}
    fields = [name for name in names if ds[name].ndim >= 2 and name not in bounds]
    by_standard_name = [
        name for name in names if ds[name].attrs.get("standard_name") in SST_STANDARD_NAMES
    ]
    if len(by_standard_name) > 1:  # e.g. the SST and its area mean: the field
        by_standard_name = [name for name in by_standard_name if name in fields] or (
            by_standard_name
        )
    if len(by_standard_name) == 1:
        return by_standard_name[0]
    if len(by_standard_name) > 1:
        raise AmbiguousVariableError(
            f"several variables have an SST standard_name: {tuple(by_standard_name)}; "
            f"pass variable={by_standard_name[0]!r} (or another) to choose."
        )
    if len(names) == 1:
        return names[0]
    if not names:
        raise VariableNotFoundError(
            "the dataset has no data variables; nothing to downscale. Pass the Dataset that "
            "holds the SST, or the SST DataArray itself."
        )
    if len(fields) == 1:
        return fields[0]
    raise AmbiguousVariableError(
        f"cannot tell which variable is the SST among {tuple(fields or names)}: none has a "
        f"standard_name in {SST_STANDARD_NAMES}. Pass variable=... or set "
        "standard_name='sea_surface_temperature' on it."
    )


def _matches(coord: xr.DataArray, key: str, criteria: Mapping[str, tuple[str, ...]]) -> bool:
    value = coord.attrs.get(key)
    return isinstance(value, str) and value in criteria[key]


def _candidates(da: xr.DataArray, axis: str) -> tuple[list[Hashable], bool]:
    """Coordinates of ``da`` that look like ``axis`` by CF attributes, then by name.

    The flag says whether the match was a guess by name only.
    """
    criteria = COORD_CRITERIA[axis]
    coords = {name: da.coords[name] for name in da.coords}
    try:  # cf-xarray knows more spellings (e.g. _CoordinateAxisType)
        found: list[Hashable] = list(da.cf.coordinates.get(axis, []))
    except Exception:  # cf-xarray may reject odd attrs; the tables below still apply
        found = []
    for key in ("standard_name", "units", "axis"):
        for name, coord in coords.items():
            if name not in found and _matches(coord, key, criteria):
                found.append(name)
    if found:  # in the data's dimension order: cf-xarray's sets iterate by string hash
        position = {name: i for i, name in enumerate([*da.dims, *coords])}
        return sorted(found, key=lambda name: position.get(name, len(position))), False
    names: list[Hashable] = [n for n in criteria["names"] if n in coords or n in da.dims]
    return names, True


#: Units of projected (x/y in length) coordinates, which are not latitude/longitude.
LENGTH_UNITS: tuple[str, ...] = (
    "m",
    "km",
    "metre",
    "metres",
    "meter",
    "meters",
    "kilometre",
    "kilometres",
    "kilometer",
    "kilometers",
)


#: The values a latitude or longitude coordinate can take (longitude: either convention).
AXIS_RANGES: dict[str, tuple[float, float]] = {
    "latitude": (-90.0, 90.0),
    "longitude": (-360.0, 720.0),
}


def _refuse_not_geographic(da: xr.DataArray, dim: Hashable, axis: str, arg: str) -> None:
    """Refuse a dimension chosen as ``axis`` that cannot be it: a projected x/y in metres,
    values outside the axis's range, or an index whose grid is given by 2-D coordinates."""
    two_d = [
        name
        for name in da.coords
        if da[name].ndim > 1
        and dim in da[name].dims
        and (
            str(name).lower() in {n.lower() for n in COORD_CRITERIA[axis]["names"][:3]}
            or da[name].attrs.get("standard_name") in COORD_CRITERIA[axis]["standard_name"]
            or da[name].attrs.get("units") in COORD_CRITERIA[axis]["units"]
        )
    ]
    if two_d:
        raise GridError(
            f"{dim!r} indexes a curvilinear grid whose {axis} is the 2-D coordinate "
            f"{two_d[0]!r} (dims {da[two_d[0]].dims}); curvilinear or 2-D grids are not "
            "supported. Regrid to a regular 1-D latitude/longitude grid first (e.g. with xESMF)."
        )
    if dim not in da.coords:
        return
    coord = da.coords[dim]
    units = coord.attrs.get("units")
    if isinstance(units, str) and units.strip().lower() in LENGTH_UNITS:
        raise GridError(
            f"{dim!r} is in {units!r}: a projected grid, not latitude/longitude. Reproject to "
            "a regular latitude/longitude grid first (e.g. rioxarray's "
            "da.rio.reproject('EPSG:4326') or xESMF)."
        )
    if coord.dtype.kind not in "iuf" or coord.size == 0:
        return  # the spacing check names a non-numeric coordinate
    lo, hi = AXIS_RANGES[axis]
    values = np.asarray(coord.values, dtype="float64")
    finite = values[np.isfinite(values)]
    if finite.size and (finite.min() < lo or finite.max() > hi):
        raise GridError(
            f"{dim!r} runs from {finite.min():g} to {finite.max():g}, outside any {axis} "
            f"({lo:g}..{hi:g}); it is not a {axis} in degrees (a projected x/y?). Reproject "
            f"to a regular latitude/longitude grid, or pass {arg}= the right dimension."
        )


def find_lat_lon(
    da: xr.DataArray, lat: Hashable | None = None, lon: Hashable | None = None
) -> tuple[Hashable, Hashable]:
    """Return the names of the latitude and longitude dimensions of ``da``."""
    result = []
    for axis, given, arg in (("latitude", lat, "lat"), ("longitude", lon, "lon")):
        if given is not None:
            if given not in da.dims:
                raise CoordinateError(
                    f"{arg}={given!r} is not a dimension of the data; its dims are {da.dims}: "
                    f"pass {arg}= one of them."
                )
            result.append(given)
            continue
        found, guessed = _candidates(da, axis)
        one_d = [name for name in found if name in da.dims]
        if len(one_d) == 1:
            if guessed:
                warn_guess(
                    f"guessed {one_d[0]!r} as the {axis} dimension from its name; pass "
                    f"{arg}={one_d[0]!r} or set its standard_name to silence this."
                )
            result.append(one_d[0])
            continue
        if not one_d and found:
            ndims = {name: da[name].dims for name in found if name in da.coords}
            one_d_coords = [n for n in found if n in da.coords and da[n].ndim == 1]
            if one_d_coords:
                name = one_d_coords[0]
                raise GridError(
                    f"the {axis} coordinate {name!r} is not a dimension coordinate (it lies "
                    f"along {da[name].dims[0]!r}); make it one with "
                    f"da.swap_dims({{{str(da[name].dims[0])!r}: {str(name)!r}}})."
                )
            raise GridError(
                f"the {axis} coordinate {found[0]!r} is not a dimension coordinate "
                f"(dims {ndims}); curvilinear or 2-D grids are not supported. Regrid to a "
                "regular 1-D latitude/longitude grid first (e.g. with xESMF)."
            )
        if len(one_d) > 1:
            raise CoordinateError(
                f"several {axis} coordinates: {tuple(one_d)}; pass {arg}={one_d[0]!r} to choose."
            )
        raise CoordinateError(
            f"no {axis} coordinate among {da.dims}; pass {arg}='<dim name>' or add "
            f"standard_name='{axis}' (units '{COORD_CRITERIA[axis]['units'][0]}') to it."
        )
    if result[0] == result[1]:
        raise CoordinateError(
            f"latitude and longitude resolve to the same dimension {result[0]!r}; pass lat= and "
            "lon= explicitly."
        )
    _refuse_not_geographic(da, result[0], "latitude", "lat")
    _refuse_not_geographic(da, result[1], "longitude", "lon")
    return result[0], result[1]


def is_time_coordinate(coord: xr.DataArray) -> bool:
    """Datetime or cftime values, CF ``axis: T`` / ``standard_name: time``, or undecoded
    CF time (units ``"<unit> since <date>"``)."""
    if coord.attrs.get("axis") == "T" or coord.attrs.get("standard_name") == "time":
        return True
    if np.issubdtype(coord.dtype, np.datetime64):
        return True
    units = coord.attrs.get("units", coord.encoding.get("units"))
    if isinstance(units, str) and " since " in units:
        return True
    if coord.dtype == object and coord.size:
        try:
            import cftime
        except ImportError:  # pragma: no cover - cftime comes with xarray's netCDF stack
            return False
        return isinstance(np.ravel(coord.values)[0], cftime.datetime)
    return False


def find_time(
    da: xr.DataArray, lat: Hashable, lon: Hashable, time: Hashable | None = None
) -> Hashable | None:
    """Return the time dimension of ``da``, or None.

    An explicit ``time`` wins; otherwise the one dimension whose coordinate is a time
    (:func:`is_time_coordinate`). A dimension merely *named* like time, without such a
    coordinate, is not taken as time (a warning says how to make it one).
    """
    if time is not None:
        if time not in da.dims or time in (lat, lon):
            raise CoordinateError(
                f"time={time!r} is not a dimension of the data other than latitude/longitude; "
                f"its dims are {da.dims}: pass time= one of them (or None)."
            )
        return time
    found = [
        dim
        for dim in da.dims
        if dim not in (lat, lon) and dim in da.coords and is_time_coordinate(da.coords[dim])
    ]
    if len(found) > 1:
        raise CoordinateError(
            f"several time dimensions: {tuple(found)}; pass time={found[0]!r} to choose."
        )
    if found:
        return found[0]
    named = [name for name in TIME_NAMES if name in da.dims]
    if named:
        warn_user(
            f"dimension {named[0]!r} has no datetime, cftime or CF time coordinate, so it is "
            f"not taken as time (each step is downscaled on its own); pass time={named[0]!r} "
            "or assign datetime coordinates to use it as time."
        )
    return None


def regular_spacing(values: np.ndarray, name: Hashable, rtol: float = 1e-3) -> float:
    """Return the constant spacing of a 1-D coordinate, or raise GridError."""
    values = np.asarray(values)
    try:
        if values.dtype.kind in "bcmM":
            raise TypeError
        values = values.astype("float64")
    except (TypeError, ValueError):
        raise GridError(
            f"{name!r} has {values.dtype} values, not numbers in degrees; assign numeric "
            f"coordinates, e.g. ds.assign_coords({name}=ds[{str(name)!r}].astype(float))."
        ) from None
    if values.size < 2:
        raise GridError(
            f"{name!r} has {values.size} point(s); at least 2 are needed to know the grid spacing."
        )
    if not np.all(np.isfinite(values)):
        raise GridError(f"{name!r} has NaN or infinite coordinate values; fix or drop them.")
    steps = np.diff(values)
    if np.any(steps == 0):
        dup = values[1:][steps == 0][0]
        raise GridError(
            f"{name!r} has duplicated values (e.g. {dup}); drop them with "
            f"ds.drop_duplicates({str(name)!r})."
        )
    seam = _seam_fix(values, name, rtol)
    if not (np.all(steps > 0) or np.all(steps < 0)):
        raise GridError(
            seam or f"{name!r} is not monotonic; sort it with ds.sortby({str(name)!r})."
        )
    step = float(np.median(steps))
    if np.max(np.abs(steps - step)) > rtol * abs(step):
        if seam:
            raise GridError(seam)
        raise GridError(
            f"{name!r} is not regularly spaced (steps from {steps.min():.6g} to "
            f"{steps.max():.6g}); interpolate onto a regular grid first, e.g. "
            f"ds.interp({name}=np.linspace(...))."
        )
    return step


def _seam_fix(values: np.ndarray, name: Hashable, rtol: float) -> str | None:
    """A fix for longitudes that are regular but cut at the 0/360 or -180/180 seam, e.g. a
    box over the prime meridian stored as 1..19, 321..359; None when that is not the case."""
    name_str = str(name)
    for convert, text in (
        (lambda v: (v + 180.0) % 360.0 - 180.0, f"(ds[{name_str!r}] + 180) % 360 - 180"),
        (lambda v: v % 360.0, f"ds[{name_str!r}] % 360"),
    ):
        moved = np.sort(convert(values))
        steps = np.diff(moved)
        if steps.size and np.all(steps > 0):
            step = float(np.median(steps))
            if np.max(np.abs(steps - step)) <= rtol * step and not np.allclose(moved, values):
                return (
                    f"{name_str!r} is regular but cut at the longitude seam (it jumps from "
                    f"{values[np.argmax(np.abs(np.diff(values)))]:g} to "
                    f"{values[np.argmax(np.abs(np.diff(values))) + 1]:g}); make it continuous "
                    f"with ds.assign_coords({name_str}={text}).sortby({name_str!r})."
                )
    return None


def is_global_longitude(lon: np.ndarray, step: float) -> bool:
    """True when the longitudes wrap around the globe (n * step == 360)."""
    return bool(abs(abs(step) * lon.size - 360.0) < 1e-6 * 360.0)


def has_cyclic_point(lon: np.ndarray, step: float) -> bool:
    """True when the last longitude repeats the first 360 degrees on (``0, ..., 358, 360``,
    as added for plotting): the grid is global without it."""
    return lon.size > 2 and is_global_longitude(lon[1:], step)


def wrap_longitudes(values: np.ndarray, start: float) -> np.ndarray:
    """Longitudes shifted by multiples of 360 into ``[start, start + 360)``."""
    return (np.asarray(values, dtype="float64") - start) % 360.0 + start


def find_fields(
    obj: xr.Dataset | xr.DataArray,
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
    time: Hashable | None = None,
) -> tuple[xr.DataArray, SSTFields]:
    """Locate the SST DataArray and describe it; validate grid, dtype and units."""
    if isinstance(obj, xr.Dataset):
        name = find_sst_variable(obj, variable)
        da = obj[name]
    elif isinstance(obj, xr.DataArray):
        name = obj.name
        da = obj
    else:
        raise InputTypeError(
            f"expected an xarray Dataset or DataArray, got {type(obj).__name__}; wrap the "
            "values with xr.DataArray(values, dims=..., coords=...) or open a file with "
            "xr.open_dataset()."
        )
    lat_dim, lon_dim = find_lat_lon(da, lat, lon)
    for dim in (lat_dim, lon_dim):
        if da.sizes[dim] == 0:
            raise InputDataError(
                f"dimension {dim!r} is empty; there is nothing to downscale. Check the "
                ".sel()/.isel() that selected the data."
            )
        if dim not in da.coords:
            curvilinear = [name for name in da.coords if da[name].ndim > 1 and dim in da[name].dims]
            if curvilinear:
                raise GridError(
                    f"dimension {dim!r} has no coordinate values but the 2-D coordinate(s) "
                    f"{tuple(curvilinear)} span it; curvilinear or 2-D grids are not supported. "
                    "Regrid to a regular 1-D latitude/longitude grid first (e.g. with xESMF)."
                )
            along = (
                [n for n, v in obj.data_vars.items() if v.dims == (dim,)]
                if isinstance(obj, xr.Dataset)
                else []
            )
            if along:  # e.g. NCL's files: lat(latitude) stored as a data variable
                var = str(along[0])
                fix = f"ds.set_coords({var!r}).swap_dims({{{str(dim)!r}: {var!r}}})"
                raise CoordinateError(
                    f"dimension {dim!r} has no coordinate values, but the data variable(s) "
                    f"{[str(n) for n in along]} lie along it; make one its coordinate with "
                    f"ds = {fix}."
                )
            raise CoordinateError(
                f"dimension {dim!r} has no coordinate values; assign them, e.g. "
                f"da.assign_coords({dim}=...)."
            )
        step = regular_spacing(da[dim].values, dim)
        if dim == lon_dim and has_cyclic_point(np.asarray(da[dim].values), step):
            first, last = float(da[dim][0]), float(da[dim][-1])
            raise GridError(
                f"{dim!r} runs from {first:g} to {last:g}: its last meridian repeats the first "
                f"(a cyclic point, as added for plotting), so the two copies would be "
                f"downscaled apart; drop it with ds.isel({dim}=slice(0, -1)) (the grid is "
                "global without it)."
            )
    for dim, size in da.sizes.items():
        if size == 0:
            raise InputDataError(
                f"dimension {dim!r} is empty; there is nothing to downscale. Check the "
                ".sel()/.isel() that selected the data."
            )
    if not (np.issubdtype(da.dtype, np.floating)):
        if np.issubdtype(da.dtype, np.integer) or np.issubdtype(da.dtype, np.bool_):
            raise InputDataError(
                f"the SST has integer dtype {da.dtype}; open the file with mask_and_scale=True "
                "(the default) or convert with da.astype('float32') after applying scale_factor."
            )
        raise InputDataError(
            f"the SST has dtype {da.dtype}, not a floating-point number; convert it with "
            "da.astype('float32')."
        )
    units = canonical_units(da.attrs.get("units"), name if name is not None else "the SST")
    da = mask_fill_values(da)
    time_dim = find_time(da, lat_dim, lon_dim, time)
    return da, SSTFields(variable=name, lat=lat_dim, lon=lon_dim, time=time_dim, units=units)


def warn_guess(message: str) -> None:
    warn_user(message)
