"""Streaming weighted statistics: partial sums per block, merged with Chan's formulas."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputDataError


@dataclass
class PartialStats:
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
    ) -> PartialStats:
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

    def merge(self, other: PartialStats) -> PartialStats:
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
        return PartialStats(
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
        threshold = quantile_from_top(self.top_t, self.n, quantile)
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


def top_size(size: int, quantile: float) -> int:
    """How many of the largest values pin down the ``quantile`` of up to ``size`` values."""
    return math.ceil((1.0 - quantile) * size) + 2


def quantile_from_top(top: np.ndarray, n: int, quantile: float) -> float:
    """numpy's linear ``quantile`` of ``n`` values, from their largest ones (``top``)."""
    desc = np.sort(top)[::-1]
    pos = quantile * (n - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    a_lo, a_hi = desc[n - 1 - lo], desc[n - 1 - hi]
    return float(a_lo + (pos - lo) * (a_hi - a_lo))


@dataclass
class Subsets:
    """Periods (by time step or observation) and regions (by cell or station) to score."""

    periods: list[str]  # labels after "all"
    regions: list[str]  # labels after "all"
    sizes: dict[tuple[int, int], int] = field(default_factory=dict)  # cells per subset

    def pairs(self) -> Iterable[tuple[int, int]]:
        for r in range(-1, len(self.regions)):
            for p in range(-1, len(self.periods)):
                yield p, r


def subset_stats(
    t: np.ndarray,
    f: np.ndarray,
    w: np.ndarray,
    pcode: np.ndarray,
    rmember: np.ndarray,
    subsets: Subsets,
    quantile: float,
    direct: bool = False,
) -> dict[tuple[int, int], PartialStats]:
    """Stats of every (period, region) subset of finite, flattened values.

    ``w`` (N,) are the values' weights; ``pcode`` (N,) is the period index of each value
    (-1: none); ``rmember`` (R, N) says which regions each value lies in. ``direct``: the
    values are all there is (nothing will be merged), so xskillscore scores them.
    """
    out: dict[tuple[int, int], PartialStats] = {}
    for p, r in subsets.pairs():
        sel = np.ones(t.size, dtype=bool) if p < 0 else pcode == p
        if r >= 0:
            sel = sel & rmember[r]
        k = top_size(subsets.sizes.get((p, r), t.size), quantile)
        out[p, r] = PartialStats.of(t[sel], f[:, sel], w[sel], k, direct)
    return out


def grid_block_stats(t: np.ndarray, *rest: Any) -> dict[tuple[int, int], PartialStats]:
    """Stats of one block (..., time, lat, lon) of the truth and of the J sources.

    ``rest`` is the J source blocks, then the block's period codes (time,), region masks
    (R, lat, lon), weights (lat, lon), the subsets, the quantile and ``direct``.
    """
    *fs, pcode, rmask, weights, subsets, quantile, direct = rest
    t = np.asarray(t, dtype="float64")
    f = np.stack([np.asarray(x, dtype="float64") for x in fs])
    weights = np.asarray(weights, dtype="float64")
    check_weight_values(weights)
    # a cell of no (or unknown) weight is not scored, like a cell of land
    valid = np.isfinite(t) & np.isfinite(f).all(axis=0) & np.isfinite(weights) & (weights > 0)
    where = np.nonzero(valid)
    tv = t[valid]
    fv = f[:, valid]
    wv = weights[where[-2], where[-1]]
    pv = pcode[where[-3]]
    rv = rmask[:, where[-2], where[-1]] if rmask.shape[0] else np.zeros((0, tv.size), bool)
    return subset_stats(tv, fv, wv, pv, rv, subsets, quantile, direct)


def check_weight_values(weights: np.ndarray) -> None:
    if (weights < 0).any():
        raise InputDataError(
            f"weights must not be negative (the smallest is {np.nanmin(weights):g}); give "
            "cell areas or other non-negative weights, 0 or NaN where a cell is not scored."
        )


def _merge_parts(
    *parts: dict[tuple[int, int], PartialStats],
) -> dict[tuple[int, int], PartialStats]:
    total = dict(parts[0])
    for part in parts[1:]:
        for key, stats in part.items():
            total[key] = total[key].merge(stats)
    return total


def tree_merge(parts: list[Any], width: int = 8) -> Any:
    """Merge delayed partial stats in a tree, so no task holds them all at once."""
    import dask

    merge = dask.delayed(_merge_parts, pure=True)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + width]) for i in range(0, len(parts), width)]
    return parts[0]
