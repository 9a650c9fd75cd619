"""Stations sampled from a synthetic truth: the cell values at chosen points, with noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import (
    CoordinateError,
    StationsError,
)


def _as_dataarray(truth: xr.Dataset | xr.DataArray, variable: str) -> xr.DataArray:
    if isinstance(truth, xr.DataArray):
        return truth
    if variable not in truth.data_vars:
        raise StationsError(
            f"variable {variable!r} not in the dataset (has {sorted(map(str, truth.data_vars))});"
            " pass variable=..."
        )
    return truth[variable]


def synthetic_stations(
    truth: xr.Dataset | xr.DataArray,
    n: int = 16,
    *,
    noise: float = 0.1,
    seed: int = 0,
    variable: str = "sst",
    min_distance_cells: int = 2,
) -> pd.DataFrame:
    """Sample noisy in-situ "stations" from a gridded truth.

    Stations sit at the centres of ``n`` random ocean cells (no NaN at any time) that are
    at least ``min_distance_cells`` cells away from the domain edge and from each other
    (Chebyshev distance). Each reports the truth at every time step plus Gaussian
    measurement noise of standard deviation ``noise`` (K).

    Parameters
    ----------
    truth
        Dataset holding ``variable``, or a DataArray, with dims ``time``, ``lat``, ``lon``.
    n
        Number of stations.
    noise
        Standard deviation of the measurement noise, in the units of the truth.
    seed
        Seed of station positions and noise.
    variable
        Variable of ``truth`` to sample; also the name of the value column.
    min_distance_cells
        Minimum distance, in cells, from the edge and between stations.

    Returns
    -------
    pandas.DataFrame
        Long-form table, one row per station and time, sorted by station then time, with
        columns ``station`` (``"ST01"``...), ``time`` (datetime64), ``lat``, ``lon`` and
        ``variable`` (float64).

    Raises
    ------
    StationsError
        If the truth has too few eligible ocean cells for ``n`` stations, or arguments are
        invalid.
    CoordinateError
        If the truth lacks ``time``, ``lat`` or ``lon`` dimensions.

    Examples
    --------
    >>> truth = synthetic_sst(32, 32, periods=2)
    >>> df = synthetic_stations(truth, n=4, seed=1)
    >>> list(df.columns), len(df)
    (['station', 'time', 'lat', 'lon', 'sst'], 8)
    """
    da = _as_dataarray(truth, variable)
    missing = {"time", "lat", "lon"} - set(map(str, da.dims))
    if missing:
        raise CoordinateError(
            f"truth needs dims ('time', 'lat', 'lon'); missing {sorted(missing)} in {da.dims}."
            " Rename its coordinates first."
        )
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise StationsError(f"n must be a positive integer, got {n!r}.")
    if not np.isfinite(noise) or noise < 0:
        raise StationsError(f"noise must be a finite standard deviation >= 0, got {noise!r}.")
    margin = int(min_distance_cells)
    if margin < 0:
        raise StationsError(f"min_distance_cells must be >= 0, got {min_distance_cells!r}.")

    da = da.transpose("time", "lat", "lon")
    ocean = np.asarray(da.notnull().all("time").values)
    interior = np.zeros_like(ocean)
    ny, nx = ocean.shape
    interior[margin : ny - margin, margin : nx - margin] = True
    candidates = np.flatnonzero(ocean & interior)
    if candidates.size < n:
        raise StationsError(
            f"truth has only {candidates.size} ocean cells at least {margin} cells from the "
            f"edge, fewer than n={n} stations; lower n or min_distance_cells, or use a larger "
            "or less land-covered domain."
        )

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5]))
    chosen: list[tuple[int, int]] = []
    for flat in rng.permutation(candidates):
        iy, ix = divmod(int(flat), nx)
        if all(max(abs(iy - cy), abs(ix - cx)) >= margin for cy, cx in chosen):
            chosen.append((iy, ix))
            if len(chosen) == n:
                break
    if len(chosen) < n:
        raise StationsError(
            f"could place only {len(chosen)} of n={n} stations {margin} cells apart in the "
            "ocean; lower n or min_distance_cells."
        )

    iy_arr = np.array([c[0] for c in chosen])
    ix_arr = np.array([c[1] for c in chosen])
    points = da.isel(
        lat=xr.DataArray(iy_arr, dims="station"), lon=xr.DataArray(ix_arr, dims="station")
    )
    values = np.asarray(points.transpose("station", "time").values, dtype=np.float64)
    values = values + rng.normal(0.0, noise, size=values.shape)

    nt = da.sizes["time"]
    width = max(2, len(str(n)))
    names = [f"ST{i + 1:0{width}d}" for i in range(n)]
    times = pd.DatetimeIndex(np.asarray(da["time"].values)).as_unit("ns")
    return pd.DataFrame(
        {
            "station": np.repeat(names, nt),
            "time": np.tile(times.values, n),
            "lat": np.repeat(np.asarray(da["lat"].values, dtype=np.float64)[iy_arr], nt),
            "lon": np.repeat(np.asarray(da["lon"].values, dtype=np.float64)[ix_arr], nt),
            variable: values.ravel(),
        }
    )
