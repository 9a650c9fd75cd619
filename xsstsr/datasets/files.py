"""Sample and real data files: the bundled sample, and the ferret data sets when installed."""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr

from ..cf.attrs import LAT_ATTRS, LON_ATTRS, SST_ATTRS, TIME_ATTRS
from ..errors import (
    DataFileNotFoundError,
    InputDataError,
    OptionError,
)
from ..options import ENVIRONMENT, get_option

#: Where Debian's ``ferret-datasets`` package installs its NetCDF files.
FERRET_DATA_DIR = "/usr/share/ferret-vis/data"


#: Environment variable naming a directory that holds the ferret data files.
FERRET_ENV_VAR = ENVIRONMENT["ferret_dir"]


_SAMPLE_FILES = {"coarse": "sample_coarse.nc", "truth": "sample_truth.nc"}


_SAMPLE_STATIONS = "sample_stations.csv"


def _open_bundled_netcdf(name: str) -> xr.Dataset:
    ref = importlib.resources.files("xsstsr") / "data" / name
    with importlib.resources.as_file(ref) as path:
        if not path.is_file():
            raise DataFileNotFoundError(
                f"bundled sample {name!r} is missing from the xsstsr package; reinstall "
                "xsstsr or regenerate it with `python scripts/make_sample.py`."
            )
        with xr.open_dataset(path) as ds:
            return ds.load()  # in memory, so the file can be closed


def open_sample(kind: Literal["coarse", "truth"] = "coarse") -> xr.Dataset:
    """Open the bundled sample: a coarse input and its fine truth.

    Made by ``scripts/make_sample.py``: :func:`synthetic_sst` at 1/16 deg over
    33-41N, 124-132E (128 x 128 cells), 16 daily steps from 2021-08-01, ``seed=2021``
    (``"truth"``), averaged over 4 x 4 blocks with :func:`coarsen_truth` to 1/4 deg
    (32 x 32, ``"coarse"``). Both hold ``sst`` (degC) on ``time``, ``lat``, ``lon``.

    Parameters
    ----------
    kind
        ``"coarse"`` (the low-resolution input) or ``"truth"`` (the high-resolution field).

    Returns
    -------
    xarray.Dataset
        Loaded into memory; no file stays open.

    Raises
    ------
    OptionError
        If ``kind`` is unknown.

    Examples
    --------
    >>> open_sample("coarse").sst.shape
    (16, 32, 32)
    >>> open_sample("truth").sst.shape
    (16, 128, 128)
    """
    if not isinstance(kind, str) or kind not in _SAMPLE_FILES:
        raise OptionError(
            f"kind must be one of {sorted(_SAMPLE_FILES)}, got {kind!r}; e.g. "
            'open_sample("coarse") for the input, open_sample("truth") for the fine field.'
        )
    return _open_bundled_netcdf(_SAMPLE_FILES[kind])


def open_sample_stations() -> pd.DataFrame:
    """Open the bundled station table that goes with :func:`open_sample`.

    16 stations drawn by :func:`synthetic_stations` from the sample truth with 0.1 K noise
    (``seed=2021``).

    Returns
    -------
    pandas.DataFrame
        Columns ``station``, ``time`` (datetime64[ns]), ``lat``, ``lon``, ``sst``.

    Examples
    --------
    >>> df = open_sample_stations()
    >>> df["station"].nunique(), len(df)
    (16, 256)
    """
    ref = importlib.resources.files("xsstsr") / "data" / _SAMPLE_STATIONS
    with importlib.resources.as_file(ref) as path:
        if not path.is_file():
            raise DataFileNotFoundError(
                f"bundled sample {_SAMPLE_STATIONS!r} is missing from the xsstsr package; "
                "reinstall xsstsr or regenerate it with `python scripts/make_sample.py`."
            )
        df = pd.read_csv(path, dtype={"station": str}, parse_dates=["time"])
    df["time"] = df["time"].astype("datetime64[ns]")
    return df


def find_ferret_file(name: str, path: str | os.PathLike[str] | None) -> Path:
    """Locate a ferret data file: ``path``, then ``$XSSTSR_FERRET_DIR``, then Debian's dir."""
    if path is not None:
        candidate = Path(path)
        if candidate.is_dir():
            candidate = candidate / name
        if not candidate.is_file():
            raise DataFileNotFoundError(f"no such file: {str(candidate)!r} (looking for {name}).")
        return candidate
    tried = []
    env_dir = get_option("ferret_dir")
    if env_dir:
        tried.append(Path(env_dir) / name)
    tried.append(Path(FERRET_DATA_DIR) / name)
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise DataFileNotFoundError(
        f"{name} not found (tried {', '.join(map(str, tried))}). Install it with "
        f"`apt-get install ferret-datasets`, set {FERRET_ENV_VAR} to the directory holding "
        "it, or pass path=."
    )


def _ferret_time(hours: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode a ferret climatological axis ("hour since 0000-01-01") onto a nominal year.

    Year 0 does not exist in the standard calendar, so the offsets within the year are
    added to 1 January of ``year`` (default 2000, a leap year like ferret's year 0).
    Returns datetime64[ns] times and month numbers.
    """
    offsets = pd.to_timedelta(np.asarray(hours, dtype=np.float64), unit="h")
    times = pd.Timestamp(year=year, month=1, day=1) + offsets
    times = pd.DatetimeIndex(times).as_unit("ns")
    return times.values, np.asarray(times.month, dtype=np.int64)


def _open_ferret_raw(file: Path, variables: list[str] | None, year: int) -> xr.Dataset:
    """Open a ferret file with its original names; decode its TIME axis; load and close."""
    with xr.open_dataset(file, decode_times=False) as ds:
        if variables is not None:
            missing = sorted(set(variables) - set(map(str, ds.data_vars)))
            if missing:
                raise InputDataError(
                    f"{file} has no {missing} variable (has {sorted(map(str, ds.data_vars))})."
                )
            ds = ds[variables]  # load only what is needed
        ds = ds.load()
    if "TIME" in ds.coords:
        times, _ = _ferret_time(ds["TIME"].values, year)
        attrs = {k: v for k, v in ds["TIME"].attrs.items() if k not in ("units", "time_origin")}
        attrs.update(
            {
                "standard_name": "time",
                "axis": "T",
                "long_name": f"climatological month (nominal year {year})",
            }
        )
        ds = ds.assign_coords(TIME=("TIME", times, attrs))
    return ds


def _normalise_lon(ds: xr.Dataset) -> xr.Dataset:
    """Wrap longitudes to [0, 360) and sort (ferret axes run e.g. 21..379)."""
    lon = np.mod(ds["lon"].values, 360.0)
    ds = ds.assign_coords(lon=("lon", lon, ds["lon"].attrs))
    return ds.sortby(["lat", "lon"])


def _tidy_ferret(ds: xr.Dataset, rename: dict[str, str], year: int) -> xr.Dataset:
    """Rename to lat/lon/time (+depth), add CF attributes and a ``month`` coordinate."""
    ds = ds.rename({k: v for k, v in rename.items() if k in ds.variables})
    for name, attrs in (("lat", LAT_ATTRS), ("lon", LON_ATTRS)):
        extra = {k: v for k, v in ds[name].attrs.items() if k not in ("modulo", "point_spacing")}
        ds[name].attrs = {**extra, **attrs}
    ds = _normalise_lon(ds)
    month = np.asarray(pd.DatetimeIndex(ds["time"].values).month, dtype=np.int64)
    ds = ds.assign_coords(month=("time", month, {"long_name": "month of the year"}))
    ds["time"].attrs = {
        **TIME_ATTRS,
        "long_name": f"climatological month (nominal year {year})",
        "comment": "ferret axis 'hour since 0000-01-01' decoded onto the nominal year",
    }
    return ds


def open_coads_sst(
    path: str | os.PathLike[str] | None = None,
    *,
    raw: bool = False,
    year: int = 2000,
) -> xr.Dataset:
    """Open the NOAA COADS monthly SST climatology from Debian's ``ferret-datasets``.

    The file ``coads_climatology.cdf`` is searched in ``path`` (a file or a directory),
    then in ``$XSSTSR_FERRET_DIR``, then in ``/usr/share/ferret-vis/data``.

    Its ``TIME`` axis is a ferret climatology in "hour since 0000-01-01"; year 0 is not
    valid in the standard calendar, so it is decoded as mid-month datetime64 dates of the
    nominal ``year`` (2000 by default, e.g. 2000-01-16T06:00), with a ``month`` coordinate
    (1-12) along ``time``.

    Parameters
    ----------
    path
        The file, or a directory holding it. Default: search as above.
    raw
        Return every variable with its original names (``COADSX``, ``COADSY``, ``TIME``,
        ``SST``...), original longitudes (21-379) and attributes; only ``TIME`` is decoded.
    year
        Nominal year of the decoded climatological time axis.

    Returns
    -------
    xarray.Dataset
        By default ``sst`` (degC, CF attributes) on ``time``, ``lat`` (ascending), ``lon``
        (wrapped to [0, 360) and sorted), plus ``month``. Loaded; no file stays open.

    Raises
    ------
    DataFileNotFoundError
        If the file cannot be found (install ``ferret-datasets`` or set
        ``XSSTSR_FERRET_DIR``).
    InputDataError
        If the file has no ``SST`` variable.

    Examples
    --------
    >>> ds = open_coads_sst()  # doctest: +SKIP
    >>> ds.sst.dims, float(ds.lon.max()) < 360  # doctest: +SKIP
    (('time', 'lat', 'lon'), True)
    """
    file = find_ferret_file("coads_climatology.cdf", path)
    if raw:
        return _open_ferret_raw(file, None, year)
    ds = _open_ferret_raw(file, ["SST"], year)
    ds = _tidy_ferret(ds, {"SST": "sst", "COADSX": "lon", "COADSY": "lat", "TIME": "time"}, year)
    history = ds["sst"].attrs.get("history")
    ds["sst"].attrs = dict(SST_ATTRS)
    if history:
        ds["sst"].attrs["history"] = history
    ds.attrs = {
        **ds.attrs,
        "title": "COADS monthly climatology of sea surface temperature",
        "source": "NOAA COADS climatology, Debian package ferret-datasets (public domain)",
    }
    return ds


def open_ocean_atlas(
    path: str | os.PathLike[str] | None = None,
    depth: float | Sequence[float] | None = None,
    *,
    raw: bool = False,
    year: int = 2000,
) -> xr.Dataset:
    """Open the NOAA ocean atlas temperature subset from Debian's ``ferret-datasets``.

    The file ``ocean_atlas_subset.nc`` (a 2-degree monthly World Ocean Atlas
    temperature climatology, 19 levels from 0 to 1000 m) is searched like in
    :func:`open_coads_sst`, and its time axis decoded the same way.

    Parameters
    ----------
    path
        The file, or a directory holding it. Default: search ``$XSSTSR_FERRET_DIR`` then
        ``/usr/share/ferret-vis/data``.
    depth
        Depth(s) in metres to keep (nearest levels); the ``depth`` dimension is kept even
        for a single value. Default: all levels.
    raw
        Return the file with its original names (``XAX_SUBSET``, ``YAX_SUBSET``,
        ``ZAXLEVIT19``, ``TIME``, ``TEMP``); only ``TIME`` is decoded. ``depth`` is ignored.
    year
        Nominal year of the decoded climatological time axis.

    Returns
    -------
    xarray.Dataset
        ``temp`` (degC, ``sea_water_temperature``) on ``time``, ``depth`` (m, positive
        down), ``lat``, ``lon`` (wrapped to [0, 360) and sorted), plus ``month``.

    Raises
    ------
    DataFileNotFoundError
        If the file cannot be found.
    InputDataError
        If the file has no ``TEMP`` variable.

    Examples
    --------
    >>> ds = open_ocean_atlas(depth=0)  # doctest: +SKIP
    >>> ds.temp.dims  # doctest: +SKIP
    ('time', 'depth', 'lat', 'lon')
    """
    file = find_ferret_file("ocean_atlas_subset.nc", path)
    if raw:
        return _open_ferret_raw(file, None, year)
    ds = _open_ferret_raw(file, ["TEMP"], year)
    rename = {
        "TEMP": "temp",
        "XAX_SUBSET": "lon",
        "YAX_SUBSET": "lat",
        "ZAXLEVIT19": "depth",
        "TIME": "time",
    }
    ds = _tidy_ferret(ds, rename, year)
    ds["depth"].attrs = {
        "standard_name": "depth",
        "long_name": "depth below the sea surface",
        "units": "m",
        "positive": "down",
        "axis": "Z",
    }
    history = ds["temp"].attrs.get("history")
    ds["temp"].attrs = {
        "standard_name": "sea_water_temperature",
        "long_name": "sea water temperature",
        "units": "degC",
    }
    if history:
        ds["temp"].attrs["history"] = history
    ds = ds.transpose("time", "depth", "lat", "lon")
    if depth is not None:
        ds = ds.sel(depth=np.atleast_1d(np.asarray(depth, dtype=np.float64)), method="nearest")
    ds.attrs = {
        **ds.attrs,
        "title": "NOAA ocean atlas monthly temperature climatology (subset)",
        "source": "NOAA World Ocean Atlas subset, Debian package ferret-datasets (public domain)",
    }
    return ds
