"""Skill scores of a downscaled field against gridded truth and stations, beside baselines."""

from __future__ import annotations

from collections.abc import Hashable

import xarray as xr

from .model import init_model, new_metadata
from .weights import parse_factor


def _grid_factor(coarse: xr.DataArray, fine: xr.DataArray) -> float:
    from .cf import find_lat_lon, regular_spacing

    c_lat, _ = find_lat_lon(coarse)
    f_lat, _ = find_lat_lon(fine)
    ratio = regular_spacing(coarse[c_lat].values, c_lat) / regular_spacing(
        fine[f_lat].values, f_lat
    )
    return float(parse_factor(round(abs(ratio) * 8) / 8))


def bicubic_baseline(
    coarse: xr.DataArray,
    like: xr.DataArray | None = None,
    factor: float | None = None,
    variable: Hashable | None = None,
) -> xr.DataArray:
    """Bicubic interpolation of ``coarse`` onto the fine grid, with xsstsr's land handling.

    It is the generator's own smooth path with the learned correction switched off, so
    a model and its baseline differ only by what was learned.
    """
    return _zero_model_downscale(coarse, like, factor, variable)


def _zero_model_downscale(
    coarse: xr.DataArray, like: xr.DataArray | None, factor: float | None, variable: Hashable | None
) -> xr.DataArray:
    from .downscale import downscale

    if factor is None:
        if like is None:
            raise ValueError("pass factor= or like= (a field on the fine grid).")
        factor = _grid_factor(coarse, like)
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
