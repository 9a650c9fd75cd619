"""``fit()``: the public front of training: data in, :class:`~xsstsr.Model` out."""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any

import pandas as pd
import xarray as xr

from ..errors import FitConfigError
from ..models.container import Model
from .config import FitConfig, option_names
from .data import prepare_data, prepare_stations
from .loop import is_auto, train


def fit(
    obj: xr.Dataset | xr.DataArray,
    stations: pd.DataFrame | xr.Dataset | None = None,
    *,
    target: xr.Dataset | xr.DataArray | None = None,
    sources: Sequence[xr.DataArray] | None = None,
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
    time: Hashable | None = None,
    station_columns: Mapping[str, Hashable] | None = None,
    station_units: str = "degC",
    config: FitConfig | None = None,
    **options: Any,
) -> Model:
    if config is not None and not isinstance(config, FitConfig):
        raise FitConfigError(
            f"config must be an xsstsr.FitConfig, got {type(config).__name__}; build one "
            "with xsstsr.FitConfig(loss='mse', ...)."
        )
    cfg = FitConfig.from_options(options, base=config)
    given = cfg.init is not None and not is_auto(cfg.init)
    if given:  # read (and hash-check) the initial weights once
        from ..models.weights import load_model

        cfg = cfg.replace(init=load_model(cfg.init))
    data = prepare_data(
        obj,
        target=target,
        sources=sources,
        factor=cfg.factor if cfg.factor is not None or not given else cfg.init.factor,
        variable=variable,
        lat=lat,
        lon=lon,
        time=time,
    )
    station_data = (
        prepare_stations(stations, data, station_columns, station_units)
        if stations is not None
        else None
    )
    return train(cfg, data, station_data)


_DOC = """Train a generator with WGAN-GP, a pixel loss and an in-situ station loss.

The returned model is the best validation checkpoint: validation runs on contiguous
blocks of time steps held out from training (``validation=``), the fit stops early when
it stops improving (``patience=``), and ``model.validation`` gives its RMSE beside
bicubic's on those steps (a :class:`~xsstsr.SkillWarning` says when it is no better).
Steps, patch size and the loss scale default from the data, so ``fit()`` with no tuning
is meant to beat interpolation.

Parameters
----------
obj : xarray.Dataset or xarray.DataArray
    (time, lat, lon) SST. Without ``target`` it is the high-resolution truth and the
    inputs are its area averages by ``factor``; with ``target`` it is the input.
stations : pandas.DataFrame or xarray.Dataset, optional
    In-situ series (columns ``station, time, lat, lon, sst``; see
    :func:`xsstsr.stations.read_stations`). The generator's output, sampled bilinearly
    at the stations and matching times, is pulled towards them.
target : xarray.Dataset or xarray.DataArray, optional
    High-resolution truth on a grid ``factor`` times finer than ``obj``.
sources : list of xarray.DataArray, optional
    Extra low-resolution inputs (fusion), regridded onto the input grid.
variable, lat, lon, time : str, optional
    Names of the SST variable and its dimensions when they cannot be detected (time:
    datetime or cftime values or CF attributes). Any orientation and time order work.
station_columns : mapping, optional
    Column names of the station table, e.g. ``{"sst": "temp"}``.
station_units : {"degC", "K"}
    Units of the station table's SST (a station Dataset's units attribute wins).
config : FitConfig, optional
    All the options below at once; options given as keywords override it.
{options}

Returns
-------
Model
    With ``.validation`` (best validation RMSE beside bicubic's), ``.history``
    (per-step losses, validation RMSE) and ``.save()``.

Raises
------
FitConfigError
    An option has the wrong type or is out of range (checked before any step).
TrainingError
    A loss turned non-finite (the step and the likely cause are named), or a
    checkpoint cannot be resumed.

Examples
--------
>>> truth = xsstsr.datasets.open_sample("truth")
>>> model = truth.sstsr.fit(xsstsr.datasets.open_sample_stations(), steps=2,
...                         progress=False)  # doctest: +SKIP
>>> model.factor
4.0
"""


def _options_doc() -> str:
    text = inspect.getdoc(FitConfig) or ""
    body = text.split("----------\n", 1)[1]
    return "\n" + textwrap.dedent(body).rstrip()


def _signature() -> inspect.Signature:
    params = [p for p in inspect.signature(fit).parameters.values() if p.kind != p.VAR_KEYWORD]
    defaults = {f.name: f for f in fields(FitConfig)}
    for name in option_names():
        f = defaults[name]
        default = f.default if f.default is not MISSING else None
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
    return inspect.Signature(params, return_annotation=Model)


fit.__doc__ = _DOC.replace("{options}", _options_doc())
fit.__signature__ = _signature()  # type: ignore[attr-defined]
