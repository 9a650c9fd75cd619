"""Plots a person would rather look at than tables (matplotlib, imported lazily).

Every function returns the :class:`matplotlib.figure.Figure` and never calls ``show()``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from .errors import MissingDependencyError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .model import Model


def _pyplot() -> Any:
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in (
            "agg",
            "module://matplotlib_inline.backend_inline",
        ):
            import os

            if not os.environ.get("DISPLAY"):
                matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError("plots need matplotlib: pip install 'xsstsr[plot]'") from err
    return plt


def _field(obj: xr.Dataset | xr.DataArray | None, variable: Hashable | None) -> xr.DataArray | None:
    if obj is None:
        return None
    from .cf import find_fields

    da, _ = find_fields(obj, variable)
    return da


def _snapshot(da: xr.DataArray, time: Any) -> xr.DataArray:
    from .cf import find_lat_lon, find_time

    lat, lon = find_lat_lon(da)
    tdim = find_time(da, lat, lon)
    if tdim is not None:
        da = da.sel({tdim: time}, method="nearest") if time is not None else da.isel({tdim: 0})
    extra = [d for d in da.dims if d not in (lat, lon)]
    if extra:
        da = da.isel({d: 0 for d in extra})
    return da.transpose(lat, lon)


def plot_compare(
    coarse: xr.Dataset | xr.DataArray,
    result: xr.Dataset | xr.DataArray | None = None,
    truth: xr.Dataset | xr.DataArray | None = None,
    *,
    time: Any = None,
    variable: Hashable | None = None,
    cmap: str = "RdYlBu_r",
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Coarse input, downscaled result and truth side by side on one colour scale.

    Land (NaN) is grey, with the coastline drawn from the finest field's mask.

    Examples
    --------
    >>> fig = coarse.sstsr.plot_compare(result=hi, truth=truth)  # doctest: +SKIP
    >>> fig.savefig("compare.png")  # doctest: +SKIP
    """
    plt = _pyplot()
    panels = [("coarse input", _field(coarse, variable))]
    if result is not None:
        panels.append(("downscaled", _field(result, variable)))
    if truth is not None:
        panels.append(("truth", _field(truth, variable)))
    maps = [(title, _snapshot(da, time)) for title, da in panels if da is not None]
    values = np.concatenate([np.asarray(m.values, dtype="float64").ravel() for _, m in maps])
    vmin, vmax = np.nanpercentile(values, [1, 99])
    fig, axes = plt.subplots(
        1,
        len(maps),
        figsize=figsize or (4.2 * len(maps) + 1, 4.2),
        squeeze=False,
        constrained_layout=True,
    )
    mesh = None
    for ax, (title, snap) in zip(axes[0], maps, strict=True):
        lat, lon = snap.dims
        ax.set_facecolor("0.75")
        mesh = ax.pcolormesh(
            snap[lon], snap[lat], snap.values, vmin=vmin, vmax=vmax, cmap=cmap, shading="nearest"
        )
        ocean = np.isfinite(snap.values).astype(float)
        if 0 < ocean.mean() < 1:
            ax.contour(snap[lon], snap[lat], ocean, levels=[0.5], colors="k", linewidths=0.6)
        shape = "x".join(str(s) for s in snap.shape)
        ax.set_title(f"{title} ({shape})")
        ax.set_xlabel(str(lon))
        ax.set_aspect("equal", adjustable="box")
    axes[0][0].set_ylabel(str(maps[0][1].dims[0]))
    units = maps[0][1].attrs.get("units", "")
    fig.colorbar(mesh, ax=axes[0].tolist(), shrink=0.8, label=f"SST ({units})")
    return fig


def plot_history(model: Model, *, figsize: tuple[float, float] = (10, 3.6)) -> Figure:
    """Training curves of a fitted model: losses per step and validation RMSE per epoch."""
    plt = _pyplot()
    history = model.history
    if history is None or history.empty:
        raise ValueError("this model has no training history (it was not fitted here).")
    fig, (ax_loss, ax_critic, ax_val) = plt.subplots(1, 3, figsize=figsize, constrained_layout=True)
    for column in ("pixel", "station"):
        if column in history and np.isfinite(history[column]).any() and history[column].any():
            ax_loss.plot(history["step"], history[column], label=column)
    ax_loss.set_yscale("log")
    ax_loss.set_title("point-wise losses")
    ax_loss.set_xlabel("step")
    ax_loss.legend()
    if "wasserstein" in history:
        ax_critic.plot(history["step"], history["wasserstein"], label="Wasserstein estimate")
        ax_critic.plot(history["step"], history["adversarial"], label="generator adversarial")
    ax_critic.set_title("WGAN-GP")
    ax_critic.set_xlabel("step")
    ax_critic.legend()
    val = history.dropna(subset=["val_rmse"]) if "val_rmse" in history else history.iloc[:0]
    if not val.empty:
        ax_val.plot(val["step"], val["val_rmse"], "o-", label="generator")
        ax_val.plot(val["step"], val["val_rmse_bicubic"], "--", label="bicubic")
    ax_val.set_title("validation RMSE (degC)")
    ax_val.set_xlabel("step")
    ax_val.legend()
    return fig
