"""In-situ station time series: reading, checking and sampling fields at stations.

Stations come as a long-form pandas DataFrame with columns ``station, time, lat,
lon, sst`` (names configurable with ``columns=``), or as an xarray Dataset with a
``station`` dimension (CF discrete sampling geometry, featureType timeSeries).
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from .cf.criteria import is_global_longitude, wrap_longitudes
from .cf.units import canonical_units, from_celsius, to_celsius
from .errors import InputDataError, StationsError, warn_user

STATION_COLUMNS: tuple[str, ...] = ("station", "time", "lat", "lon", "sst")


def read_stations(
    stations: pd.DataFrame | xr.Dataset,
    columns: Mapping[str, Hashable] | None = None,
    units: str = "degC",
) -> pd.DataFrame:
    """Return a clean station table: ``station`` (str), ``time``, ``lat``, ``lon``, ``sst`` (degC).

    Parameters
    ----------
    stations : pandas.DataFrame or xarray.Dataset
        Long-form table, or a Dataset with a ``station`` dimension.
    columns : mapping, optional
        Where the table's column names differ, e.g. ``{"sst": "temp", "station": "id"}``.
    units : {"degC", "K"}
        Units of the table's ``sst`` column (a Dataset's units attribute wins). Values
        implausible for them (outside -5..45 degC once converted) are refused.

    Times may be naive (taken as UTC), timezone-aware (converted to UTC) or cftime dates.
    A Dataset made from a table with ``set_index`` and ``to_xarray`` works as is.

    Examples
    --------
    >>> table = read_stations(df, columns={"sst": "water_temp"})  # doctest: +SKIP
    """
    if isinstance(stations, xr.Dataset):
        stations, units = _from_dsg(stations, columns)
        columns = None
    if not isinstance(stations, pd.DataFrame):
        raise StationsError(
            f"stations must be a pandas DataFrame (columns {STATION_COLUMNS}) or an xarray "
            f"Dataset with a 'station' dimension, got {type(stations).__name__}."
        )
    names = {key: (columns or {}).get(key, key) for key in STATION_COLUMNS}
    missing = [
        f"{key!r}" + (f" (as {name!r})" if name != key else "")
        for key, name in names.items()
        if name not in stations.columns
    ]
    if missing:
        raise StationsError(
            f"the station table has no column {', '.join(missing)}; its columns are "
            f"{list(stations.columns)}. Rename them or pass columns={{'sst': '<your name>', ...}}."
        )
    table = pd.DataFrame({key: stations[name].to_numpy() for key, name in names.items()})
    if table.empty:
        raise StationsError("the station table is empty.")
    table["station"] = table["station"].astype(str)
    table["time"] = _utc_times(table["time"])
    for key in ("lat", "lon", "sst"):
        try:
            table[key] = pd.to_numeric(table[key]).astype("float64")
        except (ValueError, TypeError) as err:
            raise StationsError(f"the station column {key!r} is not numeric ({err}).") from err
    bad = table.loc[table[["lat", "lon"]].isna().any(axis=1), "station"].unique()
    if len(bad):
        raise StationsError(
            f"stations {list(bad)[:5]} have NaN positions; fill their lat/lon or drop them."
        )
    if table["lat"].abs().max() > 90:
        raise StationsError("station latitudes must lie in [-90, 90]; are lat and lon swapped?")
    dup = table.duplicated(["station", "time"])
    if dup.any():
        first = table.loc[dup].iloc[0]
        raise StationsError(
            f"{int(dup.sum())} duplicated station/time rows (e.g. {first['station']!r} at "
            f"{first['time']}); drop them with df.drop_duplicates(['station', 'time'])."
        )
    moving = table.groupby("station")[["lat", "lon"]].nunique().max(axis=1) > 1
    if moving.any():
        raise StationsError(
            f"stations {list(moving[moving].index)[:5]} change position over time; fixed "
            "stations only (give each position its own station id)."
        )
    stated = canonical_units(units, "the station sst")
    table["sst"] = to_celsius(table["sst"], stated)
    table = table.dropna(subset=["sst"])
    if table.empty:
        raise StationsError("every station sst value is NaN.")
    _check_plausible(table["sst"].to_numpy(), stated)
    return table.sort_values(["station", "time"]).reset_index(drop=True)


def _utc_times(column: pd.Series) -> pd.Series:
    """Station times as naive UTC datetimes: timezone-aware times are converted to UTC,
    cftime dates (of calendars whose dates all exist in the Gregorian one) become
    datetimes."""
    values = column.to_numpy()
    if values.dtype == object and values.size:
        first = next((v for v in values if v is not None and v == v), None)
        if first is not None and hasattr(first, "calendar"):  # a cftime date
            try:
                index = _to_datetimeindex(xr.CFTimeIndex(values))
            except ValueError as err:
                raise StationsError(
                    f"the station times are {first.calendar!r} cftime dates that do not all "
                    f"exist in the Gregorian calendar ({err}); convert them with "
                    "xr.CFTimeIndex(times).to_datetimeindex() after dropping those dates."
                ) from err
            return pd.Series(index, index=column.index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # pandas 2: mixed offsets
            times = pd.to_datetime(column)
        if times.dtype == object:  # pandas 2: offsets that differ row by row
            raise ValueError("mixed time zones")
    except (ValueError, TypeError):
        try:  # offsets that differ row by row (e.g. across a daylight-saving change)
            times = pd.to_datetime(column, utc=True)
        except (ValueError, TypeError) as err:
            raise StationsError(
                f"the station 'time' column cannot be read as dates ({err}); give ISO 8601 "
                "strings, datetimes or cftime dates."
            ) from err
    if getattr(times.dt, "tz", None) is not None:
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times


def _to_datetimeindex(index: xr.CFTimeIndex) -> pd.DatetimeIndex:
    """``index.to_datetimeindex()`` without the calendar warning, on old and new xarray."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # non-standard calendars, on purpose
        try:
            return index.to_datetimeindex(unsafe=True, time_unit="ns")
        except TypeError:  # xarray before time_unit=
            return index.to_datetimeindex(unsafe=True)


def _check_plausible(celsius: np.ndarray, stated: str) -> None:
    """Refuse station SST implausible for the stated units (after conversion to degC)."""
    from .cf.units import PHYSICAL_RANGE_DEGC

    lo, hi = PHYSICAL_RANGE_DEGC
    outside = (celsius < lo) | (celsius > hi)
    if not outside.any():
        return
    raw = from_celsius(celsius, stated)
    median = float(np.median(raw))
    if stated == "degC" and 250.0 <= median <= 320.0:
        fix = (
            "they look like kelvin: pass station_units='K' to fit or evaluate "
            "(read_stations(table, units='K') on its own)"
        )
    elif stated == "K" and lo <= median <= hi:
        fix = "they look like degC: pass units='degC' (the default)"
    else:
        fix = "drop or mask the invalid rows (fill values such as -999?)"
    raise StationsError(
        f"{int(outside.sum())} of {celsius.size} station sst values lie outside "
        f"{lo:g}..{hi:g} degC for units {stated!r} (median {median:g} {stated}); {fix}."
    )


def _from_dsg(ds: xr.Dataset, columns: Mapping[str, Hashable] | None) -> tuple[pd.DataFrame, str]:
    names = {key: (columns or {}).get(key, key) for key in STATION_COLUMNS}
    if names["station"] not in ds.dims:
        raise StationsError(
            f"a station Dataset needs a {names['station']!r} dimension (CF timeSeries); its "
            f"dims are {tuple(ds.dims)}."
        )
    for key in ("lat", "lon", "sst"):
        if names[key] not in ds.variables:
            raise StationsError(
                f"the station Dataset has no {names[key]!r} variable; pass columns={{{key!r}: "
                "'<name>'}}."
            )
    units = ds[names["sst"]].attrs.get("units", "degC")
    frame = ds[[names["sst"], names["lat"], names["lon"]]].to_dataframe().reset_index()
    if names["station"] not in frame.columns:
        frame[names["station"]] = frame.index
    # df.set_index(["station", "time"]).to_xarray() spreads lat/lon over (station, time),
    # NaN where a station has no row at that time: keep each station's position
    lat_lon = [names["lat"], names["lon"]]
    frame = frame.dropna(subset=[names["sst"], *lat_lon], how="all")
    firsts = frame.groupby(names["station"])[lat_lon].transform("first")
    frame[lat_lon] = frame[lat_lon].fillna(firsts)  # fill the holes; a move is still refused
    # the caller reads the frame with the canonical names (its columns= mapping is used up)
    frame = frame.rename(columns={name: key for key, name in names.items()})
    return frame, units


def drop_outside(
    table: pd.DataFrame,
    lat: np.ndarray,
    lon: np.ndarray,
    times: np.ndarray,
    ocean: np.ndarray | None = None,
) -> pd.DataFrame:
    """Drop stations outside the grid's extent or on land, and rows outside the record.

    Warns naming what was dropped; raises StationsError if nothing is left.
    """
    dlat, dlon = lat[1] - lat[0], lon[1] - lon[0]
    lat_lo, lat_hi = sorted((lat[0] - dlat / 2, lat[-1] + dlat / 2))
    lon_lo, lon_hi = sorted((lon[0] - dlon / 2, lon[-1] + dlon / 2))
    positions = table.groupby("station")[["lat", "lon"]].first()
    slon = wrap_longitudes(positions["lon"].to_numpy(), lon_lo)
    inside = (
        (positions["lat"] >= lat_lo)
        & (positions["lat"] <= lat_hi)
        & (slon >= lon_lo)
        & (slon <= lon_hi)
    )
    outside = list(positions.index[~inside])
    if outside:
        _warn(f"dropped {len(outside)} station(s) outside the grid's extent: {outside[:10]}")
    keep = set(positions.index[inside])
    if ocean is not None and keep:
        # positional arrays (slon is a plain ndarray: indexing it by station id fails)
        iy = np.clip(
            np.round((positions["lat"].to_numpy() - lat[0]) / dlat).astype(int), 0, lat.size - 1
        )
        ix = np.clip(np.round((slon - lon[0]) / dlon).astype(int), 0, lon.size - 1)
        land = ~np.asarray(ocean, dtype=bool)[iy, ix]
        on_land = list(positions.index[inside.to_numpy() & land])
        if on_land:
            _warn(f"dropped {len(on_land)} station(s) on land (NaN in the data): {on_land[:10]}")
            keep -= set(on_land)
    table = table[table["station"].isin(keep)]
    t0, t1 = times.min(), times.max()
    in_record = (table["time"] >= t0) & (table["time"] <= t1)
    if not in_record.all():
        _warn(f"dropped {int((~in_record).sum())} station row(s) outside the record {t0}..{t1}")
        table = table[in_record]
    if table.empty:
        raise StationsError(
            "no station is left inside the grid, on ocean and within the record; check the "
            "stations' positions (lat/lon), times and the data's region."
        )
    table = table.copy()
    table["lon"] = wrap_longitudes(table["lon"].to_numpy(), lon_lo)
    return table


def _across_the_seam(field: xr.DataArray, lon: Hashable, values: np.ndarray) -> xr.DataArray:
    """A global field with its last and first columns repeated beyond its ends, so that a
    station between them (near the seam the grid's longitudes start from) is interpolated
    across it instead of falling outside the axis."""
    step = float(values[1] - values[0]) if values.size > 1 else 0.0
    if not (values.size > 2 and is_global_longitude(values, step)):
        return field
    before = field.isel({lon: [-1]}).assign_coords({lon: [values[0] - step]})
    after = field.isel({lon: [0]}).assign_coords({lon: [values[-1] + step]})
    return xr.concat([before, field, after], dim=lon)


def _scalar_time(field: xr.DataArray) -> np.datetime64 | None:
    """The time of a field that kept one time step as a scalar coordinate, else None."""
    for coord in field.coords.values():
        if coord.ndim == 0 and np.issubdtype(coord.dtype, np.datetime64):
            return np.datetime64(coord.values, "ns")
    return None


def _warn(message: str) -> None:
    warn_user(message)


def nearest_steps(times: np.ndarray, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each observation time, the index of the nearest of ``times`` (in any order) and
    whether it lies within half a time step (the median step) of it. One time step takes
    every observation: there is no step to measure against."""
    times = np.asarray(times).astype("datetime64[ns]")
    obs = np.asarray(obs).astype("datetime64[ns]")
    if times.size == 1:
        return np.zeros(obs.size, dtype=int), np.ones(obs.size, dtype=bool)
    order = np.argsort(times, kind="stable")
    ordered = times[order]
    pos = np.clip(np.searchsorted(ordered, obs), 1, times.size - 1)
    left, right = ordered[pos - 1], ordered[pos]
    nearest = np.where(obs - left <= right - obs, pos - 1, pos)
    half = np.median(np.diff(ordered)) / 2
    return order[nearest], np.abs(obs - ordered[nearest]) <= half


def align_to_times(table: pd.DataFrame, times: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Station ids and a (time, station) array of observations at the data's time steps.

    Each observation goes to the nearest time step within half a step; later ones at
    the same step are averaged.
    """
    times = np.asarray(times).astype("datetime64[ns]")
    ids = sorted(table["station"].unique())
    values = np.full((times.size, len(ids)), np.nan)
    index, ok = nearest_steps(times, table["time"].to_numpy())
    column = {s: i for i, s in enumerate(ids)}
    sums = np.zeros_like(values)
    counts = np.zeros_like(values)
    cols = table["station"].map(column).to_numpy()
    np.add.at(sums, (index[ok], cols[ok]), table["sst"].to_numpy()[ok])
    np.add.at(counts, (index[ok], cols[ok]), 1)
    with np.errstate(invalid="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return ids, values


def sample_field(
    field: xr.DataArray,
    table: pd.DataFrame,
    lat: Hashable,
    lon: Hashable,
    time: Hashable | None,
) -> pd.DataFrame:
    """Bilinear values of ``field`` at the stations' positions and nearest times.

    Returns the table with a ``model`` column beside ``sst``.
    """
    sampler = StationSampler({"model": field}, table, lat, lon, time)
    (values,) = dask.compute(*sampler.lazy)
    return sampler.finish([values])


class StationSampler:
    """Fields sampled bilinearly at stations, lazily, matched to observations by nearest time.

    ``lazy`` holds one (time, station) DataArray per field (dask-backed fields stay lazy);
    compute them (``dask.compute(*sampler.lazy)``) and pass the results to :meth:`finish`,
    which returns the station table with one column per field. This is the sampling of
    :func:`xsstsr.stations.sample_field`, split so that many fields and the grid scores
    share one :func:`dask.compute`.
    """

    def __init__(
        self,
        fields: Mapping[str, xr.DataArray],
        stations: Any,
        lat: Hashable,
        lon: Hashable,
        time: Hashable | None,
        columns: Mapping[str, Hashable] | None = None,
        units: str = "degC",
    ) -> None:
        first = next(iter(fields.values()))
        extra = [d for d in first.dims if d not in (lat, lon, time)]
        if extra:
            raise InputDataError(
                f"station scores need a (time, lat, lon) field; select the extra dims {extra} "
                "first, e.g. result.isel(member=0)."
            )
        table = read_stations(stations, columns=columns, units=units)
        lat_values = np.asarray(first[lat].values, dtype="float64")
        lon_values = np.asarray(first[lon].values, dtype="float64")
        if time is not None:
            try:
                times = np.asarray(first[time].values).astype("datetime64[ns]")
            except (TypeError, ValueError) as err:
                raise InputDataError(
                    f"the time coordinate {time!r} cannot be compared with the stations' dates "
                    "(a non-standard calendar?); convert it first, e.g. "
                    "ds.convert_calendar('standard')."
                ) from err
        else:
            times = table["time"].to_numpy()
        table = drop_outside(table, lat_values, lon_values, times)
        when = _scalar_time(first) if time is None else None
        if when is not None:  # one time step kept as a coordinate: its day, not every day
            same_day = np.abs(table["time"].to_numpy() - when) <= np.timedelta64(12, "h")
            if not same_day.all():
                _warn(
                    f"dropped {int((~same_day).sum())} station row(s) more than 12 hours from "
                    f"the field's one time {when}; to score every observation against this "
                    "one field, drop its time coordinate first (field.drop_vars('time'))"
                )
                table = table[same_day]
                if table.empty:
                    raise StationsError(
                        f"no station row is within 12 hours of the field's time {when}; "
                        "check the stations' times, or drop the field's time coordinate."
                    )
        if time is not None:
            self.rows, near = nearest_steps(times, table["time"].to_numpy())
            if not near.all():  # a gap in the field's steps: no step to score them against
                _warn(
                    f"dropped {int((~near).sum())} station row(s) more than half a time step "
                    "from any of the field's time steps (the field has gaps, e.g. a selection "
                    "of days); score the whole record to keep them"
                )
                table, self.rows = table[near], self.rows[near]
                if table.empty:
                    raise StationsError(
                        "no station row is within half a time step of the field's time steps; "
                        "check the stations' times against the field's."
                    )
        self.table = table.reset_index(drop=True)
        self.names = list(fields)
        self.times = times if time is not None else None
        positions = self.table.groupby("station")[["lat", "lon"]].first()
        self.station_ids = positions.index.to_numpy()
        points = {
            lat: xr.DataArray(positions["lat"].to_numpy(), dims="station"),
            lon: xr.DataArray(positions["lon"].to_numpy(), dims="station"),
        }
        self.lazy = []
        for f in fields.values():
            at = _across_the_seam(f, lon, lon_values).interp(points, method="linear")
            order = ([time] if time is not None else []) + ["station"]
            self.lazy.append(at.transpose(*order).drop_vars([lat, lon], errors="ignore"))
        self.lat, self.lon, self.time = lat, lon, time

    def finish(self, computed: Sequence[xr.DataArray]) -> pd.DataFrame:
        """The station table with one column of sampled values per field."""
        table = self.table.copy()
        col = pd.Index(self.station_ids).get_indexer(table["station"])
        row = np.zeros(len(table), dtype=int) if self.time is None else self.rows
        for name, values in zip(self.names, computed, strict=True):
            arr = np.asarray(values.values, dtype="float64").reshape(-1, len(self.station_ids))
            table[name] = arr[row, col]
        return table
