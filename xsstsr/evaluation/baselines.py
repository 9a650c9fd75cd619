"""Interpolation baselines on the fine grid: bicubic and nearest."""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import xarray as xr

from ..cf.criteria import find_fields, find_lat_lon, regular_spacing
from ..errors import FactorError, GridError
from ..grid.factor import parse_factor
from ..models.container import init_model
from ..models.metadata import new_metadata

#: Baselines :func:`evaluate` can compute from the coarse input.
BASELINES: tuple[str, ...] = ("bicubic", "nearest")


def _grid_factor(coarse: xr.DataArray, fine: xr.DataArray) -> float:
    c_lat, _ = find_lat_lon(coarse)
    f_lat, _ = find_lat_lon(fine)
    ratio = regular_spacing(coarse[c_lat].values, c_lat) / regular_spacing(
        fine[f_lat].values, f_lat
    )
    if abs(ratio) < 1.0 + 1.0 / 16:  # rounds to a factor of 1 (or below): not a coarse input
        raise GridError(
            f"the coarse input's grid is as fine as the downscaled field's or finer "
            f"(spacing ratio {abs(ratio):.3g}); pass the low-resolution field that was "
            "downscaled as coarse= (not the truth or the result itself)."
        )
    return float(parse_factor(round(abs(ratio) * 8) / 8))


def bicubic_baseline(
    coarse: xr.Dataset | xr.DataArray,
    like: xr.DataArray | None = None,
    factor: float | None = None,
    variable: Hashable | None = None,
) -> xr.DataArray:
    """Bicubic interpolation of ``coarse`` onto the fine grid, with xsstsr's land handling.

    It is the generator's own smooth path with the learned correction switched off, so
    a model and its baseline differ only by what was learned.

    Parameters
    ----------
    coarse : xarray.Dataset or xarray.DataArray
        The low-resolution input.
    like : xarray.DataArray, optional
        A field on the fine grid, from which the factor is read when ``factor`` is not given.
    factor : float, optional
        Refinement factor (2, 2.5, 4, 5, ...).
    variable : str, optional
        Name of the SST variable when ``coarse`` is a Dataset.

    Returns
    -------
    xarray.DataArray
        On the same fine grid as :func:`xsstsr.downscale` makes, in ``coarse``'s units.
    """
    return _zero_model_downscale(coarse, like, factor, variable)


def _zero_model_downscale(
    coarse: xr.Dataset | xr.DataArray,
    like: xr.DataArray | None,
    factor: float | None,
    variable: Hashable | None,
) -> xr.DataArray:
    from ..inference.frontend import downscale

    if factor is None:
        if like is None:
            raise FactorError(
                "the baseline needs the refinement factor: pass factor= (e.g. factor=4) "
                "or like= (a field on the fine grid)."
            )
        coarse_da, _ = find_fields(coarse, variable)
        factor = _grid_factor(coarse_da, like)
    frac = parse_factor(factor)
    meta = new_metadata(
        name=f"bicubic-x{float(frac):g}",
        upsample=frac.numerator,
        pool=frac.denominator,
        window=1,
        inputs=["sst"],
        mean=0.0,
        std=1.0,
        architecture={"blocks": 0, "features": 1, "up_features": 1},
    )
    out = downscale(coarse, model=init_model(meta), device="cpu", variable=variable)
    return out if isinstance(out, xr.DataArray) else out[next(iter(out.data_vars))]


def nearest_baseline(
    coarse: xr.Dataset | xr.DataArray,
    like: xr.DataArray | None = None,
    factor: float | None = None,
    variable: Hashable | None = None,
) -> xr.DataArray:
    """Nearest-neighbour refinement of ``coarse``: each fine cell takes its coarse cell's value.

    The fine grid is the one :func:`xsstsr.downscale` makes (the coarse cells split
    ``factor`` times along each axis). Where a fine cell's centre lies exactly on a coarse
    cell edge (factor 2.5) it takes the next coarse cell. Lazy for dask-backed input.

    Parameters
    ----------
    coarse, like, factor, variable
        As for :func:`bicubic_baseline`.

    Returns
    -------
    xarray.DataArray
        In ``coarse``'s units; land (NaN) stays NaN.
    """
    from ..grid.coords import fine_coordinate

    da, fields = find_fields(coarse, variable)
    if factor is None:
        if like is None:
            raise FactorError(
                "the baseline needs the refinement factor: pass factor= (e.g. factor=4) "
                "or like= (a field on the fine grid)."
            )
        factor = _grid_factor(da, like)
    frac = parse_factor(factor)
    up, pool = frac.numerator, frac.denominator
    indexers: dict[Hashable, np.ndarray] = {}
    centres: dict[Hashable, np.ndarray] = {}
    for dim in (fields.lat, fields.lon):
        values = np.asarray(da[dim].values, dtype="float64")
        step = regular_spacing(values, dim)
        fine, _ = fine_coordinate(da[dim], up, pool)
        pos = (fine - (values[0] - step / 2)) / step
        indexers[dim] = np.clip(np.floor(pos + 1e-9).astype(int), 0, values.size - 1)
        centres[dim] = fine
    out = da.isel(indexers)
    out = out.assign_coords(
        {dim: xr.Variable(dim, centres[dim], dict(da[dim].attrs)) for dim in centres}
    )
    out.attrs = dict(da.attrs)
    out.attrs["xsstsr_baseline"] = "nearest"
    return out
