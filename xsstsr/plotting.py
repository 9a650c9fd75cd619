"""Plots a person would rather look at than tables (matplotlib, imported lazily).

Every function returns the :class:`matplotlib.figure.Figure` and never calls ``show()``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from . import mpl
from .models.history import plot_history

__all__ = ["plot_compare", "plot_history", "plot_spectrum", "plot_stations"]
from .errors import (
    GridError,
    InputDataError,
    InputTypeError,
    OptionError,
)
from .evaluation.fields import on_grid, rename_time

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _field(obj: xr.Dataset | xr.DataArray | None, variable: Hashable | None) -> xr.DataArray | None:
    """The SST DataArray of ``obj`` in degC (None passes through)."""
    if obj is None:
        return None
    from .cf.criteria import find_fields
    from .cf.units import to_celsius

    if isinstance(obj, xr.Dataset) and variable is not None and variable not in obj.data_vars:
        variable = None
    da, fields = find_fields(obj, variable)
    if fields.units == "K":
        attrs = dict(da.attrs, units="degC")
        da = to_celsius(da, fields.units).assign_attrs(attrs)
    return da


def _snapshot(da: xr.DataArray, time: Any) -> xr.DataArray:
    from .cf.criteria import find_lat_lon, find_time

    lat, lon = find_lat_lon(da)
    tdim = find_time(da, lat, lon)
    if tdim is not None and time is None:
        da = da.isel({tdim: 0})
    elif tdim is not None:
        try:
            da = da.sel({tdim: time}, method="nearest")
        except (TypeError, ValueError, KeyError) as err:  # pandas: a value of another kind
            axis = da[tdim].values
            raise OptionError(
                f"time={time!r} cannot be matched to the time axis {str(tdim)!r} ({err}); pass "
                f"one of its values, e.g. time={str(axis[0])[:10]!r}."
            ) from None
    extra = [d for d in da.dims if d not in (lat, lon)]
    if extra:
        da = da.isel({d: 0 for d in extra})
    return da.transpose(lat, lon)


def _step_time(snap: xr.DataArray) -> Any:
    """The time a snapshot kept as a scalar coordinate (datetime64 or cftime), or None."""
    scalars = [c.values for c in snap.coords.values() if c.ndim == 0 and c.dtype.kind in "MO"]
    return scalars[0] if scalars else None


def _same_step(da: xr.DataArray, when: Any, title: str) -> xr.DataArray:
    """``da`` at the step ``when``, or an InputDataError when its nearest step is more than
    half a step away (a truth or input of other dates)."""
    snap, dropped = _snapshot(da, when), [d for d in da.dims if d in da.coords]
    got = _step_time(snap)
    steps = [
        np.unique(da[d].values) for d in dropped if d not in snap.dims and da[d].dtype.kind in "MO"
    ]
    try:  # times of another kind (cftime against numpy) have no distance to check
        half = (
            np.diff(steps[0]).min() / 2 if steps and steps[0].size > 1 else np.timedelta64(12, "h")
        )
        far = when is not None and got is not None and bool(abs(got - when) > half)
    except TypeError:
        far = False
    if far:
        raise InputDataError(
            f"the {title} panel has no time step at {str(when)[:19]} (its nearest is "
            f"{str(got)[:19]}); pass a {title} that covers the downscaled field's times, or "
            "pick a time both have with time=."
        )
    return snap


def _when(snap: xr.DataArray) -> str:
    """The time of a snapshot, for a title ('' when it has none)."""
    for name, coord in snap.coords.items():
        if coord.ndim == 0 and np.issubdtype(coord.dtype, np.datetime64):
            return f"{name} = {np.datetime_as_string(coord.values, unit='D')}"
        if coord.ndim == 0 and coord.dtype == object:
            return f"{name} = {coord.values}"
    return ""


#: Land (NaN) in every map.
LAND_COLOR = "0.75"
LON_LABEL = "longitude (degrees east)"
LAT_LABEL = "latitude (degrees north)"


def _colormap(cmap: Any, preferred: str, fallback: str) -> Any:
    """``cmap`` (a name or Colormap), else cmocean's ``preferred`` or matplotlib's ``fallback``.

    The copy returned draws NaN (land) in grey.
    """
    import matplotlib

    if cmap is None:
        cmocean = mpl.cmocean()
        # cmocean is optional (pip install 'xsstsr[plot]')
        cmap = getattr(cmocean.cm, preferred) if cmocean is not None else fallback
    if isinstance(cmap, str):
        if cmap.startswith("cmo."):
            mpl.cmocean()  # registers the cmo.* names
        if cmap not in matplotlib.colormaps:
            raise OptionError(
                f"cmap={cmap!r} is not a matplotlib colormap; pick one of matplotlib.colormaps, "
                "e.g. cmap='RdYlBu_r' (or install cmocean for 'cmo.thermal')."
            )
        cmap = matplotlib.colormaps[cmap]
    if not isinstance(cmap, matplotlib.colors.Colormap):
        raise OptionError(
            f"cmap must be a colormap name or a matplotlib Colormap, got {type(cmap).__name__}."
        )
    return cmap.with_extremes(bad=LAND_COLOR)


def plot_compare(
    obj: xr.Dataset | xr.DataArray,
    coarse: xr.Dataset | xr.DataArray | None = None,
    truth: xr.Dataset | xr.DataArray | None = None,
    *,
    baseline: str | None = None,
    result: xr.Dataset | xr.DataArray | None = None,
    time: Any = None,
    variable: Hashable | None = None,
    cmap: Any = None,
    diff_cmap: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Coarse input, baseline, result and truth on one colour scale, and the result's error.

    Every panel is in degC and shows the same time step (the first, or the one nearest
    ``time``), with axes in degrees. Land (NaN) is grey, with the coastline drawn from
    each field's mask. The last panel is the difference of the result minus the truth
    (or, without truth, minus the baseline) on a diverging scale centred on 0; without
    either there is none.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The downscaled field (``hi.sstsr.plot_compare(coarse=ds, truth=truth)``).
    coarse, truth : xarray.Dataset or xarray.DataArray, optional
        The low-resolution input and the high-resolution truth (on the result's grid, for
        the difference).
    baseline : {"bicubic", "nearest"}, optional
        Add a panel with that baseline made from ``coarse`` on the result's grid.
    result : xarray.Dataset or xarray.DataArray, optional
        The older calling form ``plot_compare(coarse, result=hi, truth=truth)``: when
        ``result`` is given, ``obj`` is the coarse input.
    time : optional
        The time step to show: the downscaled field's step nearest ``time`` (default its
        first); the other panels are drawn at that same step (InputDataError when one has
        no step within half a step of it).
    variable : str, optional
        Name of the SST variable in Datasets.
    cmap : str or matplotlib Colormap, optional
        Colormap of the SST panels; default cmocean's ``thermal`` where cmocean is
        installed, else ``"viridis"``.
    diff_cmap : str or matplotlib Colormap, optional
        Colormap of the difference; default cmocean's ``balance``, else ``"RdBu_r"``.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    GridError
        The truth (or baseline) is not on the result's grid, so no difference can be drawn.

    Examples
    --------
    >>> fig = hi.sstsr.plot_compare(coarse=ds, truth=truth, baseline="bicubic")  # doctest: +SKIP
    >>> fig.savefig("compare.png")  # doctest: +SKIP
    """
    if result is not None:
        if coarse is not None:
            raise InputTypeError(
                "coarse= and result= were both given; pass either plot_compare(hi, coarse=...) "
                "or plot_compare(coarse, result=hi), not both."
            )
        obj, coarse = result, obj
    plt = mpl.pyplot()
    sst_cmap = _colormap(cmap, "thermal", "viridis")
    err_cmap = _colormap(diff_cmap, "balance", "RdBu_r")
    coarse_da = _field(coarse, variable)
    result_da = _field(obj, variable)
    assert result_da is not None
    truth_da = _field(truth, variable)
    panels: list[tuple[str, xr.DataArray | None]] = [("coarse input", coarse_da)]
    base_da = None
    if baseline is not None:
        if coarse_da is None:
            raise OptionError(
                f"baseline={baseline!r} needs coarse= (the low-resolution input the baseline "
                "is made from); pass coarse=, or drop baseline=."
            )
        base_da = _baseline(coarse_da, baseline, result_da)
        panels.append((baseline, base_da))
    panels += [("downscaled", result_da), ("truth", truth_da)]
    # every panel at the downscaled field's step: nearest on each would mix dates
    shown = _snapshot(result_da, time)
    step = _step_time(shown)
    maps = [
        (title, shown if da is result_da else _same_step(da, step, title))
        for title, da in panels
        if da is not None
    ]
    values = np.concatenate([np.asarray(m.values, dtype="float64").ravel() for _, m in maps])
    if not np.isfinite(values).any():
        raise InputDataError(
            "nothing to show: every panel is NaN at this time step; pick another one with "
            "time=, or check that the fields hold ocean values."
        )
    vmin, vmax = np.nanpercentile(values, [1, 99])
    diff = None
    if truth_da is not None or base_da is not None:
        ref_name, ref = ("truth", truth_da) if truth_da is not None else (baseline, base_da)
        assert ref is not None
        diff = (f"downscaled - {ref_name}", _difference(result_da, ref, str(ref_name), time))
    ncols = len(maps) + (diff is not None)
    fig, axes = plt.subplots(
        1,
        ncols,
        figsize=figsize or (4.2 * ncols + 1.5, 4.2),
        squeeze=False,
        constrained_layout=True,
    )
    mesh = None
    for ax, (title, snap) in zip(axes[0], maps, strict=False):
        mesh = _map(ax, title, snap, sst_cmap, vmin, vmax)
    sst_axes = axes[0][: len(maps)].tolist()
    sst_axes[0].set_ylabel(LAT_LABEL)
    fig.colorbar(mesh, ax=sst_axes, shrink=0.8, label="SST (degC)")
    if diff is not None:
        title, snap = diff
        spread = np.abs(np.asarray(snap.values, dtype="float64"))
        # symmetric about 0, so warm and cold errors look alike
        limit = float(np.nanpercentile(spread, 99)) if np.isfinite(spread).any() else 1.0
        limit = limit if limit > 0 else 1.0
        ax = axes[0][-1]
        diff_mesh = _map(ax, title, snap, err_cmap, -limit, limit)
        fig.colorbar(diff_mesh, ax=ax, shrink=0.8, label="difference (K)")
    when = _when(maps[0][1])
    if when:
        fig.suptitle(when)
    return fig


def _map(ax: Any, title: str, snap: xr.DataArray, cmap: Any, vmin: float, vmax: float) -> Any:
    """Draw one (lat, lon) snapshot with its coastline; return the mesh."""
    lat, lon = snap.dims
    mesh = ax.pcolormesh(
        snap[lon], snap[lat], snap.values, vmin=vmin, vmax=vmax, cmap=cmap, shading="nearest"
    )
    ocean = np.isfinite(snap.values).astype(float)
    if 0 < ocean.mean() < 1 and min(ocean.shape) > 1:
        ax.contour(snap[lon], snap[lat], ocean, levels=[0.5], colors="k", linewidths=0.6)
    shape = "x".join(str(s) for s in snap.shape)
    ax.set_title(f"{title} ({shape})")
    ax.set_xlabel(LON_LABEL)
    ax.set_aspect("equal", adjustable="box")
    return mesh


def _difference(result: xr.DataArray, ref: xr.DataArray, name: str, time: Any) -> xr.DataArray:
    """The snapshot of ``result`` minus ``ref`` (which must be on the result's grid)."""
    from .cf.criteria import find_lat_lon
    from .errors import GridError

    lat, lon = find_lat_lon(result)
    try:
        ref = on_grid(ref, result, lat, lon, name)
    except GridError as err:
        raise GridError(
            f"{err} The difference panel needs the {name} on the downscaled field's grid."
        ) from None
    a, b = _snapshot(result, time), _snapshot(ref, time)
    return a.copy(data=np.asarray(a.values, dtype="float64") - np.asarray(b.values, "float64"))


def _baseline(coarse: xr.DataArray, name: str, like: xr.DataArray) -> xr.DataArray:
    from .evaluation.baselines import BASELINES, bicubic_baseline, nearest_baseline

    if not isinstance(name, str) or name not in BASELINES:
        raise OptionError(f"baseline must be one of {BASELINES} or None, got {name!r}.")
    make = bicubic_baseline if name == "bicubic" else nearest_baseline
    return make(coarse, like=like)


def _on_common_ocean(
    fields: list[tuple[str, xr.DataArray, dict[str, Any]]], result: xr.DataArray
) -> list[tuple[str, xr.DataArray, dict[str, Any]]]:
    """The fine fields on ``result``'s grid masked to the cells that are ocean in all of
    them, so that their spectra average the same rows (each field's own land-free rows
    once put the truth's spectrum at 65 S beside the result's at 35-41 S)."""
    from .cf.criteria import find_lat_lon

    lat, lon = find_lat_lon(result)
    same: dict[int, xr.DataArray] = {}
    for i, (label, da, _) in enumerate(fields):
        if label == "coarse input":
            continue
        try:
            moved = on_grid(da, result, lat, lon, label)
        except (GridError, ValueError):
            continue  # another grid (a truth at its own resolution): its own rows
        if dict(moved.sizes) == dict(result.sizes) and all(
            np.array_equal(moved[d].values, result[d].values)
            for d in result.dims
            if d in result.coords
        ):  # the same cells and steps
            same[i] = moved.transpose(*result.dims)
    if len(same) < 2:
        return fields
    ocean = None
    for da in same.values():
        valid = da.notnull().data
        ocean = valid if ocean is None else ocean & valid
    return [
        (label, same[i].where(result.copy(data=ocean)) if i in same else da, style)
        for i, (label, da, style) in enumerate(fields)
    ]


def plot_spectrum(
    obj: xr.Dataset | xr.DataArray,
    coarse: xr.Dataset | xr.DataArray | None = None,
    truth: xr.Dataset | xr.DataArray | None = None,
    baseline: str | None = "bicubic",
    *,
    units: str = "degree",
    nan: str = "auto",
    variable: Hashable | None = None,
    ax: Any = None,
    figsize: tuple[float, float] = (6.4, 4.6),
) -> Figure:
    """Zonal wavenumber power spectra of the input, result, baseline and truth (log-log).

    Each spectrum is the 1-D zonal PSD averaged over latitude rows and time (Hann window,
    linear detrending; see :func:`xsstsr.evaluation.zonal_spectrum`). The fields on the
    result's grid (result, baseline, truth) are first masked to the cells that are ocean in
    all of them, so their lines average the same rows. A dotted line marks
    the coarse grid's Nyquist wavenumber: above it, all the variance is the model's.
    All fields are reduced in one :func:`dask.compute`.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The downscaled field.
    coarse : xarray.Dataset or xarray.DataArray, optional
        The low-resolution input (drawn, and used to make the baseline).
    truth : xarray.Dataset or xarray.DataArray, optional
        High-resolution truth.
    baseline : {"bicubic", "nearest"} or None
        Baseline made from ``coarse``; ignored without ``coarse``.
    units : {"degree", "km"}
        Wavenumber in cycles per degree, or per km at the rows' mean latitude.
    nan : {"auto", "skip", "fill"}
        Land handling (see :func:`~xsstsr.evaluation.zonal_spectrum`); ``"auto"`` skips
        rows with NaN when every field has a complete row, else fills all.
    ax : matplotlib Axes, optional
        Draw there instead of on a new figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = hi.sstsr.plot_spectrum(coarse=coarse, truth=truth)  # doctest: +SKIP
    """
    import dask

    from .evaluation.spectra import check_spectrum_options, spectrum_from_parts, spectrum_task

    check_spectrum_options(units, nan)
    plt = mpl.pyplot()
    result_da = _field(obj, variable)
    assert result_da is not None
    fields: list[tuple[str, xr.DataArray, dict[str, Any]]] = []
    coarse_da = _field(coarse, variable)
    if coarse_da is not None:
        fields.append(("coarse input", coarse_da, {"color": "0.5", "lw": 1.5}))
        if baseline is not None:
            fields.append(
                (
                    baseline,
                    _baseline(coarse_da, baseline, result_da),
                    {"color": "C1", "ls": "--", "lw": 1.5},
                )
            )
    fields.append(("downscaled", result_da, {"color": "C0", "lw": 2.0}))
    truth_da = _field(truth, variable)
    if truth_da is not None:
        fields.append(("truth", truth_da, {"color": "k", "lw": 1.2}))
    fields = _on_common_ocean(fields, result_da)
    tasks = [spectrum_task(da) for _, da, _ in fields]
    parts = dask.compute(*(task for task, _, _ in tasks))
    mode = nan
    if nan == "auto":
        mode = "skip" if all(p["skip"][1] > 0 for p in parts) else "fill"
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, constrained_layout=True)
    else:
        fig = ax.figure
    nyquist = None
    for (label, _, style), part, (_, dx, name) in zip(fields, parts, tasks, strict=True):
        spec = spectrum_from_parts(part, dx, mode, units, name)
        ax.loglog(spec["wavenumber"].values, spec.values, label=label, **style)
        if label == "coarse input":
            nyquist = spec.attrs["nyquist"]
    if nyquist is not None:
        ax.axvline(nyquist, color="0.4", ls=":", lw=1)
        ax.annotate(
            "coarse Nyquist",
            (nyquist, 0.98),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color="0.3",
        )
    per = "cycles per degree" if units == "degree" else "cycles per km"
    ax.set_xlabel(f"zonal wavenumber ({per})")
    ax.set_ylabel(f"PSD (K² / ({per}))")
    unit_len = "degree" if units == "degree" else "km"
    secondary = ax.secondary_xaxis(
        "top",
        functions=(lambda k: 1.0 / np.maximum(k, 1e-12), lambda w: 1.0 / np.maximum(w, 1e-12)),
    )
    secondary.set_xlabel(f"wavelength ({unit_len})")
    from matplotlib.ticker import NullFormatter

    for axis in (ax.xaxis, secondary.xaxis):
        axis.set_minor_formatter(NullFormatter())
    ax.set_title(
        f"zonal spectra (rows: {'ocean only' if mode == 'skip' else 'land filled'})", fontsize=10
    )
    ax.legend()
    ax.grid(True, which="major", alpha=0.3)
    return fig


def plot_stations(
    obj: xr.Dataset | xr.DataArray,
    stations: Any,
    n: int = 4,
    *,
    coarse: xr.Dataset | xr.DataArray | None = None,
    baseline: str | None = "bicubic",
    truth: xr.Dataset | xr.DataArray | None = None,
    station_ids: Sequence[Any] | None = None,
    variable: Hashable | None = None,
    columns: Mapping[str, Hashable] | None = None,
    units: str = "degC",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Station time series (observations) against the field sampled at the stations.

    The downscaled field (and the baseline made from ``coarse``, and ``truth`` when
    given) is sampled bilinearly at each station and matched to the observations by the
    nearest time step, as :func:`xsstsr.evaluate` does; each panel's title gives the
    station, its position and the RMSE of each field.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        The downscaled field.
    stations : pandas.DataFrame or xarray.Dataset
        Station series (columns ``station, time, lat, lon, sst``; see
        :func:`xsstsr.stations.read_stations`).
    n : int
        How many stations to draw (those with the most scored observations) when
        ``station_ids`` is not given.
    coarse, baseline : optional
        Add the baseline made from the coarse input.
    truth : optional
        Add the gridded truth sampled at the stations.
    station_ids : list, optional
        The stations to draw.
    columns, units
        As for :func:`xsstsr.stations.read_stations`.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = hi.sstsr.plot_stations(stations, n=4)  # doctest: +SKIP
    """
    import dask

    from .cf.criteria import find_fields
    from .stations import StationSampler

    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise OptionError(
            f"n (how many stations to draw) must be a positive integer, got {n!r}; e.g. n=4, "
            "or pick them with station_ids=."
        )
    plt = mpl.pyplot()
    result_da = _field(obj, variable)
    assert result_da is not None
    _, found = find_fields(result_da)
    fields: dict[str, xr.DataArray] = {"downscaled": result_da}
    coarse_da = _field(coarse, variable)
    if coarse_da is not None and baseline is not None:
        base = _baseline(coarse_da, baseline, result_da)
        fields[baseline] = on_grid(base, result_da, found.lat, found.lon, "the baseline")
    truth_da = _field(truth, variable)
    if truth_da is not None:
        fields["truth"] = rename_time(
            on_grid(truth_da, result_da, found.lat, found.lon, "truth"), found.time
        )
    if len(fields) > 1:
        aligned = xr.align(*fields.values(), join="inner", exclude=[found.lat, found.lon])
        fields = dict(zip(fields, aligned, strict=True))
    sampler = StationSampler(fields, stations, found.lat, found.lon, found.time, columns, units)
    table = sampler.finish(dask.compute(*sampler.lazy))
    if station_ids is not None:
        wanted = [str(s) for s in station_ids]
        unknown = sorted(set(wanted) - set(table["station"]))
        if unknown:
            from .errors import StationsError

            raise StationsError(
                f"stations {unknown[:5]} are not in the table (or were dropped as outside "
                "the grid or the record)."
            )
    else:
        scored = table.dropna(subset=["downscaled"]).groupby("station").size()
        if scored.empty:
            from .errors import StationsError

            raise StationsError("no station falls on ocean cells of the field.")
        ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0]))
        wanted = [name for name, _ in ranked[: int(n)]]
    ncols = min(2, len(wanted))
    nrows = -(-len(wanted) // ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=figsize or (6.0 * ncols, 2.8 * nrows),
        squeeze=False,
        sharex=True,
        constrained_layout=True,
    )
    styles = {
        "downscaled": {"color": "C0", "lw": 1.8},
        "truth": {"color": "k", "lw": 1.0},
        "bicubic": {"color": "C1", "ls": "--", "lw": 1.2},
        "nearest": {"color": "C2", "ls": "--", "lw": 1.2},
    }
    for ax, station in zip(axes.ravel(), wanted, strict=False):
        rows = table[table["station"] == station].sort_values("time")
        ax.plot(rows["time"], rows["sst"], "o", ms=3.5, color="C3", label="observed")
        errors = []
        for name in fields:
            ax.plot(rows["time"], rows[name], label=name, **styles.get(name, {}))
            err = (rows[name] - rows["sst"]).to_numpy(dtype="float64")
            if np.isfinite(err).any():
                errors.append(f"{name} {np.sqrt(np.nanmean(err**2)):.2f}")
        first = rows.iloc[0]
        ax.set_title(
            f"{station} ({first['lat']:.2f}N, {first['lon']:.2f}E)  RMSE (K): " + ", ".join(errors),
            fontsize=9,
        )
        ax.set_ylabel("SST (degC)")
    for ax in axes.ravel()[len(wanted) :]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=8)
    fig.autofmt_xdate()
    return fig
