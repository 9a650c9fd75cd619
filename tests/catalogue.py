"""The bad-input catalogue's framework: the Case row, input builders, the unchanged check.

Each topic's table (``cases_*.py`` beside this file) is a list of :class:`Case`;
``test_bad_inputs.py`` runs them all with one test.
"""

from __future__ import annotations

import copy
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from helpers import make_model, sst_field
from safetensors.numpy import save as st_save

import xsstsr

#: the catalogue's generators: exactly bicubic (scale 0), a ~10-pixel halo
small_model = partial(make_model, window=2, seed=2, scale=0.0, small_halo=True, tag="bad")


# -- helpers that build inputs ---------------------------------------------------------------


def field(**kwargs: Any) -> xr.DataArray:
    kwargs = {"nt": 2, "ny": 8, "nx": 8, **kwargs}
    return sst_field(**kwargs)


def down(env, **kwargs: Any) -> Callable[[Any], Any]:
    """A downscale call with the small x4 model on the CPU unless told otherwise."""
    kwargs.setdefault("model", env.m4)
    kwargs.setdefault("device", "cpu")
    return lambda obj: xsstsr.downscale(obj, **kwargs)


def plain(da: xr.DataArray, **renames: str) -> xr.DataArray:
    """``da`` with its lat/lon attributes removed (and dims renamed), so names are guessed."""
    out = da.rename(renames) if renames else da.copy()
    for name in out.coords:
        out[name].attrs = {}
    return out


def curvilinear(index: bool = False, lat_offset: float = 0.0) -> xr.DataArray:
    """``field()`` on dims (time, y, x) with 2-D ``lat``/``lon`` coordinates (no attributes);
    ``index``: y and x carry integer coordinates too."""
    da = field()
    lat2, lon2 = xr.broadcast(da["lat"], da["lon"])
    coords: dict[str, Any] = {
        "time": da["time"],
        "lat": (("y", "x"), lat2.values + lat_offset * np.arange(da.sizes["lon"])),
        "lon": (("y", "x"), lon2.values),
    }
    if index:
        coords.update(y=np.arange(da.sizes["lat"]), x=np.arange(da.sizes["lon"]))
    return xr.DataArray(
        da.values, dims=("time", "y", "x"), coords=coords, attrs=da.attrs, name="sst"
    )


def weights_file(env, name: str, metadata: Any, state: dict[str, np.ndarray] | None = None) -> Path:
    """A safetensors file with arbitrary xsstsr metadata (a string is written as is)."""
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    path = env.tmp / name
    path.write_bytes(st_save(dict(state or env.m4.state), metadata={"xsstsr": text}))
    return path


def with_meta(env, **changes: Any) -> dict[str, Any]:
    meta = env.m4.metadata
    meta.update(changes)
    return meta


TRUTH = dict(nt=4, ny=16, nx=16, land=False)  # coarsened by 4 for fit: 4 x 4 cells


def fit(**kwargs: Any) -> Callable[[Any], Any]:
    kwargs = {"epochs": 1, "steps_per_epoch": 1, "progress": False, "device": "cpu", **kwargs}
    return lambda obj: xsstsr.fit(obj, **kwargs)


def fit_stations(**kwargs: Any) -> Callable[[Any], Any]:
    """fit(data, stations): the stations are checked before any training step."""
    kwargs = {"epochs": 1, "steps_per_epoch": 1, "progress": False, "device": "cpu", **kwargs}
    return lambda obj: xsstsr.fit(obj[0], obj[1], **kwargs)


def stations(**changes: Any) -> pd.DataFrame:
    """A valid station table inside the TRUTH grid and record, then ``changes`` applied."""
    truth = sst_field(**TRUTH)
    lat, lon = truth["lat"].values, truth["lon"].values
    table = pd.DataFrame(
        {
            "station": ["a", "a", "b"],
            "time": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-01"]),
            "lat": [lat[5], lat[5], lat[10]],
            "lon": [lon[5], lon[5], lon[10]],
            "sst": [20.0, 20.5, 21.0],
        }
    )
    return table.assign(**changes)


# -- the row ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Any], tuple[Any, Callable[[Any], Any]]]  # env -> (input, call)
    error: type[Exception]
    builtin: type[Exception]  # the builtin class the error also is
    match: str  # a phrase of the message that names the fix
    warns: str | None = None  # a UserWarning that must come with it
    marks: tuple[Any, ...] = ()


# -- checking that nothing changed ---------------------------------------------------------------


def snapshot(obj: Any) -> Any:
    if isinstance(obj, Path):
        return ("file", obj.read_bytes() if obj.exists() else None)
    if isinstance(obj, tuple):
        return tuple(snapshot(o) for o in obj)
    return copy.deepcopy(obj)


def assert_unchanged(obj: Any, before: Any) -> None:
    if isinstance(obj, tuple):
        for o, b in zip(obj, before, strict=True):
            assert_unchanged(o, b)
    elif isinstance(obj, Path):
        assert before == ("file", obj.read_bytes() if obj.exists() else None)
    elif isinstance(obj, (xr.DataArray, xr.Dataset)):
        xr.testing.assert_identical(obj, before)
        assert obj.attrs == before.attrs
        assert obj.encoding == before.encoding
        names = obj.variables if isinstance(obj, xr.Dataset) else obj.coords
        for name in names:
            assert obj[name].attrs == before[name].attrs
            assert obj[name].encoding == before[name].encoding
    elif isinstance(obj, pd.DataFrame):
        pd.testing.assert_frame_equal(obj, before)
    elif isinstance(obj, np.ndarray):
        np.testing.assert_array_equal(obj, before)
    else:
        assert obj == before


def collect_topic_tables() -> list[Case]:
    """The rows of every ``cases_<topic>.py`` beside this file (each defines ``CASES``)."""
    rows: list[Case] = []
    for path in sorted(Path(__file__).parent.glob("cases_*.py")):
        rows.extend(importlib.import_module(path.stem).CASES)
    return rows
