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
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cf.criteria import find_fields
from ..errors import InputDataError, OptionError, warn_user
from ..stations import StationSampler
from .baselines import BASELINES, bicubic_baseline, nearest_baseline
from .fields import celsius, field_of, on_grid, rename_time
from .statistics import PartialStats, Subsets, grid_block_stats, subset_stats, tree_merge
from .subsets import (
    check_weights_option,
    grid_weights,
    label_periods,
    parse_regions,
    region_grid_masks,
    region_station_members,
)

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


def _grid_task(
    truth: xr.DataArray,
    sources: list[xr.DataArray],
    pcode: np.ndarray,
    rmask: np.ndarray,
    weights: Any,
    subsets: Subsets,
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
            return dask.delayed(grid_block_stats, pure=True)(
                *arrays, pcode, rmask, weights, subsets, quantile, True
            )
        return grid_block_stats(*arrays, pcode, rmask, weights, subsets, quantile, True)

    chunks = lazy[0].chunks
    darrs = [
        a.rechunk(chunks) if isinstance(a, dsa.Array) else dsa.from_array(a, chunks=chunks)
        for a in arrays
    ]
    blocks = [a.to_delayed() for a in darrs]
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in chunks]
    block = dask.delayed(grid_block_stats, pure=True)
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
    return tree_merge(parts)


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
    coarse_da, units = field_of(coarse, variable, "coarse")
    out = []
    for name in names:
        make = bicubic_baseline if name == "bicubic" else nearest_baseline
        out.append((name, make(coarse_da, like=like), units))
    return out


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
    check_weights_option(weights)
    da, fields = find_fields(obj, variable, lat, lon)
    lat_dim, lon_dim, time_dim = fields.lat, fields.lon, fields.time
    result = celsius(da, fields.units)
    sources: list[tuple[str, xr.DataArray]] = [("downscaled", result)]
    for name, base, units in _make_baselines(coarse, _baseline_names(baseline), da, variable):
        fix = "Pass as coarse= the input the field was downscaled from, at the same factor."
        base = on_grid(base, da, lat_dim, lon_dim, f"the {name} baseline of coarse=", fix)
        base = rename_time(base, time_dim)
        sources.append((name, celsius(base, units)))
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
    region_list = parse_regions(regions)
    lat_values = np.asarray(da[lat_dim].values, dtype="float64")
    lon_values = np.asarray(da[lon_dim].values, dtype="float64")

    grid_task = None
    grid_subsets = None
    weights_kind = ""
    if truth is not None:
        t_da, t_units = field_of(truth, variable, "truth")
        w_grid, weights_kind = grid_weights(weights, truth, t_da, obj, da, lat_dim, lon_dim)
        t_da = rename_time(on_grid(t_da, da, lat_dim, lon_dim, "truth"), time_dim)
        reference = celsius(t_da, t_units)
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
        period_labels, pcode = label_periods(times, by if time_dim is not None else None)
        rmask = region_grid_masks(region_list, lat_dim, lon_dim, lat_values, lon_values)
        grid_subsets = Subsets(period_labels, [n for n, _ in region_list])
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
        s_labels, s_pcode = label_periods(table["time"].to_numpy(), by)
        members = region_station_members(
            region_list,
            lat_dim,
            lon_dim,
            lat_values,
            lon_values,
            table["lat"].to_numpy(),
            table["lon"].to_numpy(),
        )
        s_subsets = Subsets(s_labels, [n for n, _ in region_list])
        if not valid.any():
            warn_user(
                "no station observation falls on ocean cells of every field; the "
                "station scores are empty."
            )
        else:
            scored = pd.Series(valid).groupby(table["station"].to_numpy()).any()
            unscored = [str(s) for s in scored.index[~scored.to_numpy()]]
            if unscored:
                shown = ", ".join(unscored[:5]) + (" ..." if len(unscored) > 5 else "")
                warn_user(
                    f"{len(unscored)} of {scored.size} stations are not scored ({shown}): "
                    "none of their observations has four surrounding ocean cells in every "
                    "field (they sit on or beside land, or at the grid's edge). Move them "
                    "to the nearest ocean cell or drop them to silence this."
                )
        n_valid = int(valid.sum())
        stats = subset_stats(
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
    stats: Mapping[tuple[int, int], PartialStats],
    subsets: Subsets,
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
