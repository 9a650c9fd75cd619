"""Coarsening a fine truth into the coarse input a model sees: the training and evaluation pairs."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..errors import (
    CoordinateError,
    GridError,
)


def coarsen_truth(
    truth: xr.Dataset | xr.DataArray,
    factor: float,
    *,
    lat: Hashable = "lat",
    lon: Hashable = "lon",
) -> xr.Dataset | xr.DataArray:
    """Area-average a fine field onto a grid ``factor`` times coarser.

    Each coarse cell is the mean of the ocean (non-NaN) values of the fine cells it
    covers, or NaN when more than half of its area is land/NaN, so the coarse coastline
    follows the majority of the fine cells. A rational factor such as 2.5 = 5/2 is exact:
    each fine cell is split into 2 x 2 equal parts and 5 x 5 parts make a coarse cell.
    Coordinates are the means of the fine coordinates; attributes are kept. Variables
    without both ``lat`` and ``lon`` dims are left untouched. Plain (unweighted) means: on
    boxes of a few degrees the cos(lat) area weighting changes little. This is how
    :func:`xsstsr.fit` makes its inputs when it is given no ``target``.

    Parameters
    ----------
    truth
        Dataset or DataArray with ``lat`` and ``lon`` dimensions.
    factor
        2, 2.5, 4, 5, ...: a ratio p/q (q <= 8) whose coarse grid fits the sizes.
    lat, lon
        Names of the latitude and longitude dimensions.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type as ``truth``, on the coarse grid.

    Raises
    ------
    GridError
        If ``factor`` is not a valid factor or does not fit both sizes.
    CoordinateError
        If the ``lat`` or ``lon`` dimension is missing.

    Examples
    --------
    >>> fine = synthetic_sst(64, 64, periods=2)
    >>> coarsen_truth(fine, 4).sst.shape
    (2, 16, 16)
    >>> coarsen_truth(synthetic_sst(60, 60, periods=2), 2.5).sst.shape
    (2, 24, 24)
    """
    from fractions import Fraction

    for dim in (lat, lon):
        if dim not in truth.dims:
            raise CoordinateError(
                f"coarsen_truth needs a {dim!r} dimension; got dims {tuple(truth.dims)}. "
                "Rename the coordinates or pass lat=/lon=."
            )
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float | np.integer | np.floating | Fraction)
        or not np.isfinite(float(factor))
        or factor < 1
    ):
        raise GridError(f"factor must be a number >= 1, got {factor!r}; pass e.g. factor=4.")
    frac = Fraction(factor).limit_denominator(8)
    if abs(float(frac) - float(factor)) > 1e-9:
        raise GridError(f"factor {factor!r} is not a ratio p/q with q <= 8 (such as 2.5).")
    up, pool = frac.numerator, frac.denominator
    ny, nx = truth.sizes[lat], truth.sizes[lon]
    if (ny * pool) % up or (nx * pool) % up:
        step = up // np.gcd(up, pool)
        raise GridError(
            f"factor={float(frac):g} does not fit the grid size ({lat}={ny}, {lon}={nx}); crop "
            f"the field to a multiple of {step} (e.g. .isel({lat}=slice(0, {ny - ny % step}), "
            f"{lon}=slice(0, {nx - nx % step}))) or pick another factor."
        )
    if pool > 1:  # split each fine cell into pool x pool equal parts
        truth = truth.isel(
            {lat: np.repeat(np.arange(ny), pool), lon: np.repeat(np.arange(nx), pool)}
        )

    def _one(da: xr.DataArray) -> xr.DataArray:
        if lat not in da.dims or lon not in da.dims:
            return da
        mean = da.coarsen({lat: up, lon: up}).mean(keep_attrs=True)  # skips NaN
        n_ocean = da.notnull().coarsen({lat: up, lon: up}).sum()
        # NaN when land is the strict majority of the fine cells
        out = mean.where(2 * n_ocean >= up * up)
        out.attrs = dict(da.attrs)
        return out

    if isinstance(truth, xr.DataArray):
        result: xr.Dataset | xr.DataArray = _one(truth)
    else:
        coarse = truth.coarsen({lat: up, lon: up}).mean(keep_attrs=True)
        result = coarse.assign({name: _one(truth[name]) for name in truth.data_vars})
        result.attrs = dict(truth.attrs)
    if pool > 1:  # the means of repeated coordinates are not the centres: set them exactly
        centres = {}
        for dim, n in ((lat, ny), (lon, nx)):
            fine = np.asarray(truth[dim].values[::pool], dtype="float64")
            step = (fine[-1] - fine[0]) / (n - 1)
            centres[dim] = fine[0] - step / 2 + (np.arange(n * pool // up) + 0.5) * step * up / pool
        result = result.assign_coords(centres)
    for dim in (lat, lon):
        result[dim].attrs = dict(truth[dim].attrs)
    return result
