"""Skill scores of a downscaled field against gridded truth and stations, beside baselines.

:func:`evaluate` returns a tidy :class:`pandas.DataFrame`: one row per source (the
downscaled field and its baselines), reference (gridded truth or stations), period
(the whole record, seasons or months) and region, with RMSE, bias, MAE, Pearson
correlation and the RMSE over extremes (cells above the reference's 99th percentile).
Grid scores are weighted by cell area (cos(latitude), or the cell bounds), so a
high-latitude cell does not count as much as an equatorial one.

The standard scores of in-memory data are xskillscore's (weighted ``rmse``, ``me``,
``mae``, ``pearson_r``). xskillscore needs the dims it reduces in one chunk, so dask-backed
inputs are instead streamed: they stay lazy until a single :func:`dask.compute`, which
reduces block-wise weighted partial sums (means and co-moments combined with Chan's
parallel formulas, and the top 1 % of the truth for the extremes), so a field larger than
memory can be scored.

:func:`zonal_spectrum` computes the 1-D zonal wavenumber spectrum (rows by
:func:`scipy.signal.periodogram`) used by :func:`xsstsr.plot_spectrum`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .cf import KELVIN_OFFSET, find_fields, find_lat_lon, regular_spacing
from .errors import (
    FactorError,
    GridError,
    InputDataError,
    InputTypeError,
    OptionError,
    warn_user,
)
from .model import init_model, new_metadata
from .weights import parse_factor

__all__ = [
    "BASELINES",
    "SCORE_COLUMNS",
    "bicubic_baseline",
    "evaluate",
    "nearest_baseline",
    "zonal_spectrum",
]

#: Baselines :func:`evaluate` can compute from the coarse input.
BASELINES: tuple[str, ...] = ("bicubic", "nearest")
#: Columns of the table returned by :func:`evaluate`.
SCORE_COLUMNS: tuple[str, ...] = (
    "source",
    "against",
    "period",
    "region",
    "rmse",
    "bias",
    "mae",
    "corr",
    "rmse_extremes",
    "n",
    "n_extremes",
)
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


# -- baselines ------------------------------------------------------------------


def _grid_factor(coarse: xr.DataArray, fine: xr.DataArray) -> float:
    c_lat, _ = find_lat_lon(coarse)
    f_lat, _ = find_lat_lon(fine)
    ratio = regular_spacing(coarse[c_lat].values, c_lat) / regular_spacing(
        fine[f_lat].values, f_lat
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
    from .downscale import downscale

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
    from .downscale import fine_coordinate

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


# -- streaming statistics --------------------------------------------------------


@dataclass
class _Stats:
    """Mergeable, weighted scores of J sources against one reference over one subset of cells.

    Means and (co)moments are weighted (by cell area on a grid, by 1 at stations); ``n``
    counts the values. ``direct`` holds xskillscore's scores when the stats were made from
    all of the subset's values at once (not merged from blocks), and is then used as is.
    """

    n: int
    w: float  # the sum of the weights
    mean_t: float
    m2_t: float
    mean_f: np.ndarray  # (J,)
    m2_f: np.ndarray
    c_ft: np.ndarray
    sum_d: np.ndarray  # weighted sums of d, |d| and d^2
    sum_ad: np.ndarray
    sum_d2: np.ndarray
    top_t: np.ndarray  # (m,) the largest reference values seen, at most k of them
    top_w: np.ndarray  # (m,) their weights
    top_d2: np.ndarray  # (J, m) the squared errors at those cells
    k: int
    direct: dict[str, np.ndarray] | None = None

    @classmethod
    def of(
        cls, t: np.ndarray, f: np.ndarray, w: np.ndarray, k: int, direct: bool = False
    ) -> _Stats:
        """Scores of ``f`` (J, N) against ``t`` (N,) with weights ``w`` (N,), all finite.

        ``direct``: also score them with xskillscore (for values not merged later).
        """
        n = t.size
        j = f.shape[0]
        if n == 0:
            zero = np.zeros(j)
            return cls(
                0,
                0.0,
                0.0,
                0.0,
                zero,
                zero.copy(),
                zero.copy(),
                zero.copy(),
                zero.copy(),
                zero.copy(),
                np.empty(0),
                np.empty(0),
                np.empty((j, 0)),
                k,
            )
        total = float(w.sum())
        mean_t = float(w @ t) / total
        mean_f = (f @ w) / total
        at = t - mean_t
        af = f - mean_f[:, None]
        d = f - t
        d2 = d * d
        top_t, top_w, top_d2 = _top(t, w, d2, k)
        return cls(
            n,
            total,
            mean_t,
            float((w * at) @ at),
            mean_f,
            (af * af) @ w,
            af @ (w * at),
            d @ w,
            np.abs(d) @ w,
            d2 @ w,
            top_t,
            top_w,
            top_d2,
            k,
            _xskillscore_scores(t, f, w) if direct else None,
        )

    def merge(self, other: _Stats) -> _Stats:
        """Chan et al.'s pairwise update of weighted means and (co)moments; exact top-k union."""
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        total = self.w + other.w
        share = other.w / total
        w = self.w * share
        dt = other.mean_t - self.mean_t
        df = other.mean_f - self.mean_f
        top_t, top_w, top_d2 = _top(
            np.concatenate([self.top_t, other.top_t]),
            np.concatenate([self.top_w, other.top_w]),
            np.concatenate([self.top_d2, other.top_d2], axis=1),
            self.k,
        )
        return _Stats(
            self.n + other.n,
            total,
            self.mean_t + dt * share,
            self.m2_t + other.m2_t + dt * dt * w,
            self.mean_f + df * share,
            self.m2_f + other.m2_f + df * df * w,
            self.c_ft + other.c_ft + df * dt * w,
            self.sum_d + other.sum_d,
            self.sum_ad + other.sum_ad,
            self.sum_d2 + other.sum_d2,
            top_t,
            top_w,
            top_d2,
            self.k,
        )

    def scores(self, quantile: float) -> list[dict[str, float]]:
        """One dict of scores per source."""
        j = self.mean_f.size
        if self.n == 0:
            nan = {
                "rmse": math.nan,
                "bias": math.nan,
                "mae": math.nan,
                "corr": math.nan,
                "rmse_extremes": math.nan,
                "n": 0,
                "n_extremes": 0,
            }
            return [dict(nan) for _ in range(j)]
        # the threshold is a quantile of the cells (unweighted), so the top-k stays exact
        threshold = _quantile_from_top(self.top_t, self.n, quantile)
        extreme = self.top_t > threshold
        n_ext = int(extreme.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            denom = np.sqrt(self.m2_f * self.m2_t)
            corr = np.where(denom > 0, self.c_ft / np.where(denom > 0, denom, 1.0), np.nan)
            w_ext = self.top_w[extreme]
            rmse_ext = (
                np.sqrt((self.top_d2[:, extreme] @ w_ext) / w_ext.sum())
                if n_ext
                else np.full(j, np.nan)
            )
        standard = self.direct or {
            "rmse": np.sqrt(self.sum_d2 / self.w),
            "bias": self.sum_d / self.w,
            "mae": self.sum_ad / self.w,
            "corr": corr,
        }
        return [
            {
                **{name: float(standard[name][i]) for name in ("rmse", "bias", "mae", "corr")},
                "rmse_extremes": float(rmse_ext[i]),
                "n": int(self.n),
                "n_extremes": n_ext,
            }
            for i in range(j)
        ]


def _xskillscore_scores(t: np.ndarray, f: np.ndarray, w: np.ndarray) -> dict[str, np.ndarray]:
    """RMSE, mean error, MAE and Pearson correlation of each source by xskillscore (weighted).

    The values are already restricted to the cells finite in every field, so ``skipna``
    has nothing left to skip.
    """
    import xskillscore as xs

    a = xr.DataArray(f, dims=("source", "cell"))
    b = xr.DataArray(t, dims="cell")
    weights = xr.DataArray(w, dims="cell")
    out = {}
    for name, metric in (("rmse", xs.rmse), ("bias", xs.me), ("mae", xs.mae)):
        out[name] = np.asarray(metric(a, b, dim="cell", weights=weights).values)
    # xskillscore clips r to [-1, 1] and gives nan for a constant field, as we want
    out["corr"] = np.asarray(xs.pearson_r(a, b, dim="cell", weights=weights).values)
    return out


def _top(
    values: np.ndarray, w: np.ndarray, d2: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` largest ``values``, their weights and columns of ``d2`` (all if fewer)."""
    if values.size <= k:
        return values, w, d2
    idx = np.argpartition(values, values.size - k)[values.size - k :]
    return values[idx], w[idx], d2[:, idx]


def _top_size(size: int, quantile: float) -> int:
    """How many of the largest values pin down the ``quantile`` of up to ``size`` values."""
    return math.ceil((1.0 - quantile) * size) + 2


def _quantile_from_top(top: np.ndarray, n: int, quantile: float) -> float:
    """numpy's linear ``quantile`` of ``n`` values, from their largest ones (``top``)."""
    desc = np.sort(top)[::-1]
    pos = quantile * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    a_lo, a_hi = desc[n - 1 - lo], desc[n - 1 - hi]
    return float(a_lo + (pos - lo) * (a_hi - a_lo))


@dataclass
class _Subsets:
    """Periods (by time step or observation) and regions (by cell or station) to score."""

    periods: list[str]  # labels after "all"
    regions: list[str]  # labels after "all"
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # cells per subset

    def pairs(self) -> Iterable[tuple[int, int]]:
        for r in range(-1, len(self.regions)):
            for p in range(-1, len(self.periods)):
                yield p, r


def _subset_stats(
    t: np.ndarray,
    f: np.ndarray,
    w: np.ndarray,
    pcode: np.ndarray,
    rmember: np.ndarray,
    subsets: _Subsets,
    quantile: float,
    direct: bool = False,
) -> dict[tuple[int, int], _Stats]:
    """Stats of every (period, region) subset of finite, flattened values.

    ``w`` (N,) are the values' weights; ``pcode`` (N,) is the period index of each value
    (-1: none); ``rmember`` (R, N) says which regions each value lies in. ``direct``: the
    values are all there is (nothing will be merged), so xskillscore scores them.
    """
    out: dict[tuple[int, int], _Stats] = {}
    for p, r in subsets.pairs():
        sel = np.ones(t.size, dtype=bool) if p < 0 else pcode == p
        if r >= 0:
            sel = sel & rmember[r]
        k = _top_size(subsets.sizes.get((p, r), t.size), quantile)
        out[p, r] = _Stats.of(t[sel], f[:, sel], w[sel], k, direct)
    return out


def _grid_block(t: np.ndarray, *rest: Any) -> dict[tuple[int, int], _Stats]:
    """Stats of one block (..., time, lat, lon) of the truth and of the J sources.

    ``rest`` is the J source blocks, then the block's period codes (time,), region masks
    (R, lat, lon), weights (lat, lon), the subsets, the quantile and ``direct``.
    """
    *fs, pcode, rmask, weights, subsets, quantile, direct = rest
    t = np.asarray(t, dtype="float64")
    f = np.stack([np.asarray(x, dtype="float64") for x in fs])
    weights = np.asarray(weights, dtype="float64")
    _check_weight_values(weights)
    # a cell of no (or unknown) weight is not scored, like a cell of land
    valid = np.isfinite(t) & np.isfinite(f).all(axis=0) & np.isfinite(weights) & (weights > 0)
    where = np.nonzero(valid)
    tv = t[valid]
    fv = f[:, valid]
    wv = weights[where[-2], where[-1]]
    pv = pcode[where[-3]]
    rv = rmask[:, where[-2], where[-1]] if rmask.shape[0] else np.zeros((0, tv.size), bool)
    return _subset_stats(tv, fv, wv, pv, rv, subsets, quantile, direct)


def _check_weight_values(weights: np.ndarray) -> None:
    if (weights < 0).any():
        raise InputDataError(
            f"weights must not be negative (the smallest is {np.nanmin(weights):g}); give "
            "cell areas or other non-negative weights, 0 or NaN where a cell is not scored."
        )


def _merge_parts(*parts: dict[tuple[int, int], _Stats]) -> dict[tuple[int, int], _Stats]:
    total = dict(parts[0])
    for part in parts[1:]:
        for key, stats in part.items():
            total[key] = total[key].merge(stats)
    return total


def _tree_merge(parts: list[Any], width: int = 8) -> Any:
    """Merge delayed partial stats in a tree, so no task holds them all at once."""
    import dask

    merge = dask.delayed(_merge_parts, pure=True)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + width]) for i in range(0, len(parts), width)]
    return parts[0]


def _grid_task(
    truth: xr.DataArray,
    sources: list[xr.DataArray],
    pcode: np.ndarray,
    rmask: np.ndarray,
    weights: Any,
    subsets: _Subsets,
    quantile: float,
) -> Any:
    """The grid stats: computed now for in-memory data, a dask Delayed otherwise.

    ``weights`` is a (lat, lon) numpy or dask array. In-memory data is scored in one piece
    (by xskillscore); dask data block by block, merged with Chan's formulas, because
    xskillscore's metrics need the dims they reduce in one chunk.
    """
    import dask
    import dask.array as dsa

    arrays = [truth.data, *(s.data for s in sources)]
    lazy = [a for a in arrays if isinstance(a, dsa.Array)]
    if not lazy:
        if isinstance(weights, dsa.Array):  # lazy weights only: one task, in the one compute
            return dask.delayed(_grid_block, pure=True)(
                *arrays, pcode, rmask, weights, subsets, quantile, True
            )
        return _grid_block(*arrays, pcode, rmask, weights, subsets, quantile, True)

    chunks = lazy[0].chunks
    darrs = [
        a.rechunk(chunks) if isinstance(a, dsa.Array) else dsa.from_array(a, chunks=chunks)
        for a in arrays
    ]
    blocks = [a.to_delayed() for a in darrs]
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
    block = dask.delayed(_grid_block, pure=True)
    parts = []
    for index in np.ndindex(blocks[0].shape):
        it, iy, ix = index[-3:]
        t_sl = slice(bounds[-3][it], bounds[-3][it + 1])
        y_sl = slice(bounds[-2][iy], bounds[-2][iy + 1])
        x_sl = slice(bounds[-1][ix], bounds[-1][ix + 1])
        w_block = weights[y_sl, x_sl]
        parts.append(
            block(
                *(b[index] for b in blocks),
                pcode[t_sl],
                np.ascontiguousarray(rmask[:, y_sl, x_sl]),
                w_block if isinstance(w_block, dsa.Array) else np.ascontiguousarray(w_block),
                subsets,
                quantile,
                False,
            )
        )
    return _tree_merge(parts)


# -- inputs --------------------------------------------------------------------------


def _celsius(da: xr.DataArray, units: str) -> xr.DataArray:
    out = da - KELVIN_OFFSET if units == "K" else da
    return out.astype("float64") if out.dtype != np.float64 else out


def _on_grid(
    other: xr.DataArray, like: xr.DataArray, lat: Hashable, lon: Hashable, what: str
) -> xr.DataArray:
    """``other`` with ``like``'s lat/lon names and values, or a GridError saying how to fix it."""
    o_lat, o_lon = find_lat_lon(other)
    if (o_lat, o_lon) != (lat, lon):
        other = other.rename({o_lat: lat, o_lon: lon})
    for dim in (lat, lon):
        mine = np.asarray(like[dim].values, dtype="float64")
        theirs = np.asarray(other[dim].values, dtype="float64")
        step = abs(regular_spacing(mine, dim))
        if mine.size != theirs.size or not np.allclose(mine, theirs, rtol=0, atol=1e-3 * step):
            raise GridError(
                f"{what} is not on the downscaled field's grid: {dim!r} has {theirs.size} "
                f"points from {theirs.min() if theirs.size else 'nan'} to "
                f"{theirs.max() if theirs.size else 'nan'}, the downscaled field {mine.size} "
                f"from {mine.min()} to {mine.max()}. Interpolate it onto that grid first, e.g. "
                f"{what}.interp({lat}=result[{str(lat)!r}], {lon}=result[{str(lon)!r}]), "
                "or pass the field on the matching grid."
            )
    return other.assign_coords({lat: like[lat], lon: like[lon]})


WEIGHTS: tuple[str, ...] = ("area", "none")


def _check_weights_option(weights: object) -> None:
    if isinstance(weights, xr.DataArray) or weights is None or isinstance(weights, bool):
        return
    if not isinstance(weights, str) or weights not in WEIGHTS:
        raise OptionError(
            f"weights must be 'area' (the default), 'none' or a DataArray of weights on the "
            f"truth's (lat, lon) grid, got {weights!r}."
        )


def _grid_weights(
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
        given = _on_grid(weights, like, lat, lon, "weights").transpose(lat, lon).data
        if not hasattr(given, "dask"):  # lazy weights are checked block by block
            given = np.asarray(given, dtype="float64")
            _check_weight_values(given)
        return given, "given"
    t_lat, t_lon = find_lat_lon(truth_da)
    lat_bnds = _bounds(truth, t_lat, shape[0])
    lon_bnds = _bounds(truth, t_lon, shape[1])
    if lat_bnds is None and lon_bnds is None:
        lat_bnds, lon_bnds = _bounds(obj, lat, shape[0]), _bounds(obj, lon, shape[1])
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


def _bounds(obj: xr.Dataset | xr.DataArray, coord: Hashable, size: int) -> Any:
    """The (size, 2) cell bounds of ``coord`` in a Dataset (numpy or dask), or None.

    Found by the coordinate's CF ``bounds`` attribute, or by the names ``<coord>_bnds``
    and ``<coord>_bounds``.
    """
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
    return bnds.data


def _rename_time(other: xr.DataArray, time: Hashable | None) -> xr.DataArray:
    o_lat, o_lon = find_lat_lon(other)
    from .cf import find_time

    o_time = find_time(other, o_lat, o_lon)
    if time is not None and o_time is not None and o_time != time:
        other = other.rename({o_time: time})
    return other


def _field_of(
    obj: xr.Dataset | xr.DataArray, variable: Hashable | None, what: str
) -> tuple[xr.DataArray, str]:
    if isinstance(obj, xr.Dataset) and variable is not None and variable not in obj.data_vars:
        variable = None  # the truth or coarse file may name its SST differently
    if not isinstance(obj, xr.Dataset | xr.DataArray):
        raise InputTypeError(
            f"{what} must be an xarray Dataset or DataArray, got {type(obj).__name__}; "
            "open it first, e.g. xr.open_dataset(path)."
        )
    da, fields = find_fields(obj, variable)
    return da, fields.units


def _baseline_names(baseline: str | Sequence[str] | None) -> list[str]:
    if baseline is None:
        return []
    names: list[Any] = (
        [baseline]
        if isinstance(baseline, str) or not isinstance(baseline, Iterable)  # 5: rejected below
        else list(baseline)
    )
    for name in names:
        if name not in BASELINES:
            raise OptionError(
                f"baseline must be one of {BASELINES}, a list of them or None; got {name!r}."
            )
    return list(dict.fromkeys(names))


def _make_baselines(
    coarse: xr.Dataset | xr.DataArray | None,
    names: list[str],
    like: xr.DataArray,
    variable: Hashable | None,
) -> list[tuple[str, xr.DataArray, str]]:
    if coarse is None or not names:
        return []
    coarse_da, units = _field_of(coarse, variable, "coarse")
    out = []
    for name in names:
        make = bicubic_baseline if name == "bicubic" else nearest_baseline
        out.append((name, make(coarse_da, like=like), units))
    return out


def _period_labels(times: Any, by: str | None) -> tuple[list[str], np.ndarray]:
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


def _in_box(lat: np.ndarray, lon: np.ndarray, box: Box, name: str) -> np.ndarray:
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


def _mask_on_grid(
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
    if mask.dtype != bool:
        mask = mask.fillna(0) > 0.5
    mask = mask.rename({m_lat: lat, m_lon: lon}) if (m_lat, m_lon) != (lat, lon) else mask
    try:
        mask = mask.reindex({lat: lat_values, lon: lon_values}, method="nearest")
    except (ValueError, KeyError) as err:  # pandas: index not monotonic, or duplicated
        raise GridError(
            f"region mask {name!r} cannot be matched to the grid ({err}); give it sorted, "
            f"unique coordinates, e.g. mask.sortby([{str(lat)!r}, {str(lon)!r}])."
        ) from None
    return np.asarray(mask.transpose(lat, lon).values, dtype=bool)


def _regions(regions: Any) -> list[tuple[str, Any]]:
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


def _region_grid_masks(
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
            masks[i] = _mask_on_grid(value, lat, lon, lat_values, lon_values, name)
        else:
            masks[i] = _in_box(yy, xx, value, name)
    return masks


def _region_station_members(
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
            grid = _mask_on_grid(value, lat, lon, lat_values, lon_values, name)
            iy = np.abs(lat_values[None, :] - s_lat[:, None]).argmin(axis=1)
            ix = np.abs(lon_values[None, :] - s_lon[:, None]).argmin(axis=1)
            members[i] = grid[iy, ix]
        else:
            members[i] = _in_box(s_lat, s_lon, value, name)
    return members


# -- stations ------------------------------------------------------------------------


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
        from .stations import drop_outside, read_stations

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
            at = f.interp(points, method="linear")
            order = ([time] if time is not None else []) + ["station"]
            self.lazy.append(at.transpose(*order).drop_vars([lat, lon], errors="ignore"))
        self.lat, self.lon, self.time = lat, lon, time

    def finish(self, computed: Sequence[xr.DataArray]) -> pd.DataFrame:
        """The station table with one column of sampled values per field."""
        table = self.table.copy()
        col = pd.Index(self.station_ids).get_indexer(table["station"])
        if self.times is None:
            row = np.zeros(len(table), dtype=int)
        else:
            index = pd.Index(self.times)
            if not index.is_monotonic_increasing:
                order = np.argsort(self.times, kind="stable")
                row = order[
                    pd.Index(self.times[order]).get_indexer(table["time"], method="nearest")
                ]
            else:
                row = index.get_indexer(table["time"], method="nearest")
        for name, values in zip(self.names, computed, strict=True):
            arr = np.asarray(values.values, dtype="float64").reshape(-1, len(self.station_ids))
            table[name] = arr[row, col]
        return table


# -- evaluate --------------------------------------------------------------------------


def evaluate(
    obj: xr.Dataset | xr.DataArray,
    truth: xr.Dataset | xr.DataArray | None = None,
    stations: pd.DataFrame | xr.Dataset | None = None,
    *,
    coarse: xr.Dataset | xr.DataArray | None = None,
    baseline: str | Sequence[str] | None = "bicubic",
    regions: xr.DataArray | Mapping[str, Any] | None = None,
    by: str | None = "season",
    extremes: float = 0.99,
    weights: str | bool | xr.DataArray | None = "area",
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
    station_columns: Mapping[str, Hashable] | None = None,
    station_units: str = "degC",
) -> pd.DataFrame:
    """Skill of a downscaled field against gridded truth and/or stations, beside baselines.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The downscaled SST (the output of :func:`xsstsr.downscale`), degC or K.
    truth : xarray.Dataset or xarray.DataArray, optional
        High-resolution truth on the same grid as ``obj`` (any lat/lon/time names, degC or
        K). Time steps are matched by value; only common ones are scored.
    stations : pandas.DataFrame or xarray.Dataset, optional
        In-situ series (columns ``station, time, lat, lon, sst``; see
        :func:`xsstsr.stations.read_stations`). The fields are sampled bilinearly at the
        stations and matched to each observation by the nearest time step; stations
        outside the grid or the record are dropped with a warning, stations whose four
        surrounding cells are not all ocean are not scored.
    coarse : xarray.Dataset or xarray.DataArray, optional
        The low-resolution input ``obj`` was made from. Needed for baselines; without it
        the table has no baseline rows.
    baseline : {"bicubic", "nearest"}, list of them, or None
        Baselines made from ``coarse`` and scored beside ``obj``: bicubic interpolation
        (:func:`bicubic_baseline`) and nearest-neighbour refinement
        (:func:`nearest_baseline`).
    regions : boolean DataArray or dict, optional
        Extra regions scored besides the whole domain (``"all"``): a boolean (lat, lon)
        mask (named by its ``.name``) or a dict ``{name: (lat0, lat1, lon0, lon1)}`` of
        boxes (``lon0 > lon1`` crosses the date line) or of masks. Masks on another grid
        are taken at the nearest cell.
    by : {"season", "month", None}
        Periods scored besides the whole record (``"all"``): seasons DJF/MAM/JJA/SON or
        months Jan..Dec (those present in the data), or none.
    extremes : float
        Quantile of the reference above which a cell is an extreme (0.99: the top 1 %),
        computed per row over the cells scored in that row (a quantile of the cells, not
        of their area; the RMSE over the extremes is then area-weighted like the others).
    weights : {"area", "none"}, bool, xarray.DataArray or None
        Weights of the grid scores (means, moments and correlation). ``"area"`` (or
        None, True; the default) weights each cell by its area: from the cell bounds
        where ``truth`` (or ``obj``) is a Dataset with ``lat_bnds``/``lon_bnds`` (or the
        coordinates' CF ``bounds`` attribute), weight ``(sin(lat1) - sin(lat0)) * (lon1 -
        lon0)``, else ``cos(lat)``, which is proportional to it on a regular grid.
        ``"none"`` (or False) counts every cell alike. A (lat, lon) DataArray on the
        truth's grid gives the weights (any scale; cells of weight 0 or NaN are not
        scored). Station scores are never weighted: each observation counts once.
    variable, lat, lon : str, optional
        Names of ``obj``'s SST variable and lat/lon dimensions when they cannot be found.
    station_columns : mapping, optional
        Column names of the station table where they differ, e.g. ``{"sst": "temp"}``.
    station_units : {"degC", "K"}
        Units of the station table's ``sst`` column.

    Returns
    -------
    pandas.DataFrame
        Columns ``source`` ("downscaled", "bicubic", "nearest"), ``against`` ("grid",
        "stations"), ``period`` ("all", "DJF", ...), ``region`` ("all" or a name), ``rmse``,
        ``bias`` (mean of source minus reference: positive is too warm), ``mae``, ``corr``
        (Pearson), ``rmse_extremes``, ``n`` (cells or observations scored) and
        ``n_extremes``; scores in K (= degC differences). In each row every source is scored
        on the same cells: those where the reference and every source are finite. The
        attribute ``weights`` says how the grid scores were weighted (``"area (cos
        lat)"``, ``"area (cell bounds)"``, ``"none"`` or ``"given"``).

    Raises
    ------
    GridError
        ``truth`` (or the baseline made from ``coarse``, or ``weights``) is not on
        ``obj``'s grid, or its cell bounds do not fit the grid.
    InputDataError
        Neither ``truth`` nor ``stations`` is given; ``obj`` and ``truth`` share no time
        step, or have different dimensions; ``weights`` has other dims than (lat, lon) or
        negative values.
    OptionError
        ``by``, ``extremes``, ``baseline`` or ``weights`` is not one of its choices.
    InputTypeError
        ``truth`` or ``coarse`` is not xarray, or ``regions`` is not a mask or a dict of
        boxes and masks.

    Examples
    --------
    >>> hi = coarse.sstsr.downscale(factor=4)  # doctest: +SKIP
    >>> table = hi.sstsr.evaluate(truth=truth, stations=stations, coarse=coarse)  # doctest: +SKIP
    >>> table.query("period == 'all' and region == 'all'")  # doctest: +SKIP
    """
    import dask

    if truth is None and stations is None:
        raise InputDataError(
            "nothing to score against: pass truth= (a gridded field), stations= (a station "
            "table) or both."
        )
    if not isinstance(by, str | None) or by not in ("season", "month", "all", None):
        raise OptionError(f"by must be 'season', 'month' or None, got {by!r}.")
    try:
        quantile = float(extremes)
    except (TypeError, ValueError):
        quantile = math.nan  # "high", None: rejected below with the fix
    if not 0.0 < quantile < 1.0:
        raise OptionError(
            f"extremes must be a quantile in (0, 1), got {extremes!r}; e.g. extremes=0.99 "
            "scores the top 1 %."
        )
    _check_weights_option(weights)
    da, fields = find_fields(obj, variable, lat, lon)
    lat_dim, lon_dim, time_dim = fields.lat, fields.lon, fields.time
    result = _celsius(da, fields.units)
    sources: list[tuple[str, xr.DataArray]] = [("downscaled", result)]
    for name, base, units in _make_baselines(coarse, _baseline_names(baseline), da, variable):
        base = _rename_time(_on_grid(base, da, lat_dim, lon_dim, f"the {name} baseline"), time_dim)
        sources.append((name, _celsius(base, units)))
    if len(sources) > 1:
        aligned_sources = xr.align(
            *(s for _, s in sources), join="inner", exclude=[lat_dim, lon_dim]
        )
        if any(size == 0 for size in aligned_sources[0].sizes.values()):
            raise InputDataError(
                "the downscaled field and the baseline made from coarse= share no time step; "
                "pass the coarse input the result was made from."
            )
        sources = [(name, s) for (name, _), s in zip(sources, aligned_sources, strict=True)]
    region_list = _regions(regions)
    lat_values = np.asarray(da[lat_dim].values, dtype="float64")
    lon_values = np.asarray(da[lon_dim].values, dtype="float64")

    grid_task = None
    grid_subsets = None
    weights_kind = ""
    if truth is not None:
        t_da, t_units = _field_of(truth, variable, "truth")
        w_grid, weights_kind = _grid_weights(weights, truth, t_da, obj, da, lat_dim, lon_dim)
        t_da = _rename_time(_on_grid(t_da, da, lat_dim, lon_dim, "truth"), time_dim)
        reference = _celsius(t_da, t_units)
        if set(reference.dims) != set(result.dims):
            raise InputDataError(
                f"truth has dims {reference.dims} but the downscaled field {result.dims}; "
                "select or rename dims so they match."
            )
        aligned = xr.align(
            reference, *(s for _, s in sources), join="inner", exclude=[lat_dim, lon_dim]
        )
        if any(size == 0 for size in aligned[0].sizes.values()):
            raise InputDataError(
                "the truth and the downscaled field (and baselines) share no time step or "
                "coordinate value; check their time axes."
            )
        reference, grid_sources = aligned[0], list(aligned[1:])
        if time_dim is None:
            reference = reference.expand_dims("__time__")
            grid_sources = [s.expand_dims("__time__") for s in grid_sources]
        t_name = time_dim if time_dim is not None else "__time__"
        order = [
            *(d for d in reference.dims if d not in (t_name, lat_dim, lon_dim)),
            t_name,
            lat_dim,
            lon_dim,
        ]
        reference = reference.transpose(*order)
        grid_sources = [s.transpose(*order) for s in grid_sources]
        times = reference[t_name].values if time_dim is not None else np.zeros(1)
        period_labels, pcode = _period_labels(times, by if time_dim is not None else None)
        rmask = _region_grid_masks(region_list, lat_dim, lon_dim, lat_values, lon_values)
        grid_subsets = _Subsets(period_labels, [n for n, _ in region_list])
        lead = int(np.prod([reference.sizes[d] for d in order[:-3]]))
        cells = [lat_values.size * lon_values.size, *(int(m.sum()) for m in rmask)]
        steps = [pcode.size, *(int((pcode == p).sum()) for p in range(len(period_labels)))]
        for p, r in grid_subsets.pairs():
            grid_subsets.sizes[p, r] = lead * steps[p + 1] * cells[r + 1]
        grid_task = _grid_task(
            reference, grid_sources, pcode, rmask, w_grid, grid_subsets, quantile
        )

    sampler = None
    if stations is not None:
        sampler = StationSampler(
            dict(sources), stations, lat_dim, lon_dim, time_dim, station_columns, station_units
        )

    # one dask.compute for the grid scores and every field sampled at the stations
    grid_lazy = grid_task is not None and not isinstance(grid_task, dict)
    pending = ([grid_task] if grid_lazy else []) + (sampler.lazy if sampler is not None else [])
    computed = list(dask.compute(*pending)) if pending else []
    grid_stats = computed.pop(0) if grid_lazy else grid_task
    station_fields = computed

    rows: list[dict[str, Any]] = []
    names = [name for name, _ in sources]
    if grid_stats is not None and grid_subsets is not None:
        rows += _rows(grid_stats, grid_subsets, names, "grid", quantile)
    if sampler is not None:
        table = sampler.finish(station_fields)
        obs = table["sst"].to_numpy(dtype="float64")
        f = np.stack([table[name].to_numpy(dtype="float64") for name in names])
        valid = np.isfinite(obs) & np.isfinite(f).all(axis=0)
        s_labels, s_pcode = _period_labels(table["time"].to_numpy(), by)
        members = _region_station_members(
            region_list,
            lat_dim,
            lon_dim,
            lat_values,
            lon_values,
            table["lat"].to_numpy(),
            table["lon"].to_numpy(),
        )
        s_subsets = _Subsets(s_labels, [n for n, _ in region_list])
        if not valid.any():
            warn_user(
                "no station observation falls on ocean cells of every field; the "
                "station scores are empty."
            )
        n_valid = int(valid.sum())
        stats = _subset_stats(
            obs[valid],
            f[:, valid],
            np.ones(n_valid),
            s_pcode[valid],
            members[:, valid],
            s_subsets,
            quantile,
            direct=True,
        )
        rows += _rows(stats, s_subsets, names, "stations", quantile)

    frame = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    frame.attrs.update(
        units="K",
        extremes_quantile=quantile,
        weights=weights_kind,
        model=str(da.attrs.get("xsstsr_model", "")),
        model_sha256=str(da.attrs.get("xsstsr_model_sha256", "")),
    )
    return frame


def _rows(
    stats: Mapping[tuple[int, int], _Stats],
    subsets: _Subsets,
    names: list[str],
    against: str,
    quantile: float,
) -> list[dict[str, Any]]:
    rows = []
    for p, r in subsets.pairs():
        period = "all" if p < 0 else subsets.periods[p]
        region = "all" if r < 0 else subsets.regions[r]
        for name, scores in zip(names, stats[p, r].scores(quantile), strict=True):
            rows.append(
                {"source": name, "against": against, "period": period, "region": region, **scores}
            )
    return rows


# -- spectra ---------------------------------------------------------------------------


def _row_spectra(block: np.ndarray, dx: float, cos_lat: np.ndarray) -> dict[str, Any]:
    """Sums of the one-sided PSD of every (lat) row of a (..., lat, lon) block.

    Two accumulations: rows without NaN only ("skip"), and rows at least half ocean with
    NaN filled by linear interpolation along the row ("fill").
    """
    x = np.asarray(block, dtype="float64")
    n = x.shape[-1]
    rows = x.reshape(-1, n)
    cos_rows = np.broadcast_to(cos_lat, x.shape[:-1]).reshape(-1)
    finite = np.isfinite(rows)
    complete = finite.all(axis=1)
    fillable = finite.mean(axis=1) >= 0.5
    filled = rows[fillable].copy()
    idx = np.arange(n)
    for i in np.nonzero(~np.isfinite(filled).all(axis=1))[0]:
        ok = np.isfinite(filled[i])
        filled[i] = np.interp(idx, idx[ok], filled[i][ok])
    out: dict[str, Any] = {}
    for mode, data, cos_used in (
        ("skip", rows[complete], cos_rows[complete]),
        ("fill", filled, cos_rows[fillable]),
    ):
        out[mode] = (_psd(data, dx).sum(axis=0), data.shape[0], float(cos_used.sum()))
    out["n"] = n
    return out


def _psd(rows: np.ndarray, dx: float) -> np.ndarray:
    """One-sided PSD (per cycle per unit of ``dx``) of linearly detrended, Hann-windowed rows."""
    from scipy.signal import periodogram

    if rows.shape[0] == 0:
        return np.zeros((0, rows.shape[1] // 2 + 1))
    # density scaling corrects for the window, so the PSD integrates to the row's variance
    _, psd = periodogram(
        rows, fs=1.0 / dx, window="hann", detrend="linear", scaling="density", axis=-1
    )
    return np.asarray(psd)


def _merge_spectra(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": parts[0]["n"]}
    for mode in ("skip", "fill"):
        out[mode] = (
            sum(p[mode][0] for p in parts),
            sum(p[mode][1] for p in parts),
            sum(p[mode][2] for p in parts),
        )
    return out


def _spectrum_task(
    obj: xr.Dataset | xr.DataArray,
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
) -> tuple[Any, float, str]:
    """Lazy (or computed) row-spectra sums of a field, its lon spacing in degrees, its name."""
    import dask.array as dsa

    da, fields = find_fields(obj, variable, lat, lon)
    lat_dim, lon_dim = fields.lat, fields.lon
    dx = abs(regular_spacing(da[lon_dim].values, lon_dim))
    if da.sizes[lon_dim] < 4:
        raise InputDataError(f"a spectrum needs at least 4 longitudes, got {da.sizes[lon_dim]}.")
    order = [*(d for d in da.dims if d not in (lat_dim, lon_dim)), lat_dim, lon_dim]
    da = da.transpose(*order)
    cos_lat = np.cos(np.deg2rad(np.asarray(da[lat_dim].values, dtype="float64")))
    data = da.data
    if not isinstance(data, dsa.Array):
        return _row_spectra(data, dx, cos_lat), dx, str(da.name or "sst")
    import dask

    data = data.rechunk({data.ndim - 1: -1})
    bounds = np.concatenate([[0], np.cumsum(data.chunks[-2])])
    blocks = data.to_delayed()
    one = dask.delayed(_row_spectra, pure=True)
    parts = []
    for index in np.ndindex(blocks.shape):
        iy = index[-2]
        parts.append(one(blocks[index], dx, cos_lat[bounds[iy] : bounds[iy + 1]]))
    merge = dask.delayed(_merge_spectra, pure=True)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + 8]) for i in range(0, len(parts), 8)]
    return parts[0], dx, str(da.name or "sst")


def zonal_spectrum(
    obj: xr.Dataset | xr.DataArray,
    *,
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
    units: str = "degree",
    nan: str = "auto",
) -> xr.DataArray:
    """The 1-D zonal wavenumber power spectrum, averaged over latitude rows and time.

    Each row along longitude is linearly detrended, multiplied by a Hann window and
    Fourier transformed; the one-sided power spectral density is normalised so that it
    integrates to the row's variance (Parseval, corrected for the window), and averaged
    over rows (every latitude, time step and other dim).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        SST on a regular lat/lon grid; dask-backed input is reduced block by block.
    units : {"degree", "km"}
        Wavenumber in cycles per degree of longitude, or per km at the mean latitude of the
        rows used (1 degree = 111.195 km x cos(lat)).
    nan : {"auto", "skip", "fill"}
        Land handling: ``"skip"`` uses only rows without NaN; ``"fill"`` also uses rows at
        least half ocean, with NaN filled by linear interpolation along the row; ``"auto"``
        skips when any complete row exists, else fills.

    Returns
    -------
    xarray.DataArray
        PSD (K^2 per cycle per degree, or per km) on a ``wavenumber`` coordinate (zero
        excluded), with attributes ``rows`` (rows averaged), ``nan`` (mode used) and
        ``nyquist`` (the grid's Nyquist wavenumber).
    """
    check_spectrum_options(units, nan)
    import dask

    task, dx, name = _spectrum_task(obj, variable, lat, lon)
    (parts,) = dask.compute(task)
    mode = nan if nan != "auto" else ("skip" if parts["skip"][1] else "fill")
    return spectrum_from_parts(parts, dx, mode, units, name)


def check_spectrum_options(units: object, nan: object) -> None:
    """Raise :class:`OptionError` unless ``units`` and ``nan`` are among their choices."""
    if not isinstance(units, str) or units not in ("degree", "km"):
        raise OptionError(f"units must be 'degree' or 'km', got {units!r}.")
    if not isinstance(nan, str) or nan not in ("auto", "skip", "fill"):
        raise OptionError(f"nan must be 'auto', 'skip' or 'fill', got {nan!r}.")


def spectrum_from_parts(
    parts: Mapping[str, Any], dx: float, mode: str, units: str, name: str
) -> xr.DataArray:
    """Finish a spectrum from the summed row spectra (see :func:`zonal_spectrum`)."""
    total, rows, cos_sum = parts[mode]
    if rows == 0:
        raise InputDataError(
            "no latitude row of the field is "
            + (
                "free of land (NaN); use nan='fill'."
                if mode == "skip"
                else "at least half ocean; a zonal spectrum needs longer stretches of sea."
            )
        )
    total = np.asarray(total, dtype="float64")
    n = int(parts["n"])
    psd = total[1:] / rows
    k = np.arange(1, total.size) / (n * dx)
    nyquist = 1.0 / (2.0 * dx)
    unit_k, unit_psd = "cycles per degree", "K2 degree"
    if units == "km":
        scale = KM_PER_DEGREE * (cos_sum / rows)
        k, psd, nyquist = k / scale, psd * scale, nyquist / scale
        unit_k, unit_psd = "cycles per km", "K2 km"
    out = xr.DataArray(
        psd,
        dims="wavenumber",
        coords={
            "wavenumber": ("wavenumber", k, {"units": unit_k, "long_name": "zonal wavenumber"})
        },
        name=f"{name}_psd",
        attrs={
            "units": unit_psd,
            "long_name": "zonal power spectral density",
            "rows": int(rows),
            "nan": mode,
            "nyquist": float(nyquist),
        },
    )
    return out
