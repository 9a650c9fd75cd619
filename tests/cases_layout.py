"""Catalogue rows: layouts, grids that are not latitude/longitude, values as files store
them, land masks and station tables as they come. (The layouts that *work* — descending
coordinates, unsorted time, narrow global grids — are checked for equality with the
canonical answer in tests/test_layout.py.)"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from catalogue import (
    TRUTH,
    Case,
    curvilinear,
    down,
    field,
    fit,
    fit_stations,
    plain,
    stations,
)
from helpers import sst_field

import xsstsr as E
from xsstsr.errors import InputTypeError


def _time_renamed(env):
    return field(nt=3).rename(time="t").assign_coords(t=[0, 1, 2]), down(env, time="time")


def _two_time_dims(env):
    da = field(nt=2).expand_dims(valid_time=pd.date_range("2022-01-01", periods=2), axis=1)
    return da, down(env)


def _duplicated_time(env):
    da = field(nt=3)
    times = da["time"].values.copy()
    times[2] = times[1]
    return da.assign_coords(time=times), down(env)


def _projected(env, units: str | None, scale: float):
    da = field()
    x = (np.arange(8) + 0.5) * scale
    out = xr.DataArray(
        da.values,
        dims=("time", "y", "x"),
        coords={"time": da["time"], "y": x, "x": x},
        name="sst",
        attrs=da.attrs,
    )
    if units:
        out["x"].attrs["units"] = out["y"].attrs["units"] = units
    return out, down(env)


def _curvilinear_indexed(env, cf: bool):
    out = curvilinear(index=True, lat_offset=0.01)
    if cf:
        out["lat"].attrs = {"standard_name": "latitude", "units": "degrees_north"}
        out["lon"].attrs = {"standard_name": "longitude", "units": "degrees_east"}
    return out, down(env)


def _lat_not_a_dimension(env):
    da = field().rename(lat="i")
    return da.assign_coords(lat=("i", da["i"].values, {"standard_name": "latitude"})).drop_vars(
        "i"
    ), down(env)


def _stored(raw: float, **attrs: Any):
    def make(env):
        return field().fillna(raw).assign_attrs(**attrs), down(env)

    return make


def _mask(lat_shift: float = 0.0, lon_shift: float = 0.0, coords: bool = True, half=False):
    def make(env):
        da = field(land=False)
        lat = da["lat"].values + lat_shift
        lon = da["lon"].values + lon_shift
        if half:
            lat = lat[:4]
        mask = xr.DataArray(np.zeros((lat.size, lon.size), bool), dims=("lat", "lon"))
        if coords:
            mask = mask.assign_coords(lat=lat, lon=lon)
        return (da, mask), lambda obj: E.downscale(
            obj[0], model=env.m4, device="cpu", land_mask=obj[1]
        )

    return make


def _kelvin_stations(env):
    table = stations()
    return (sst_field(**TRUTH), table.assign(sst=table["sst"] + 273.15)), fit_stations()


def _dsg_from_table(env):
    table = stations()
    ds = table.set_index(["station", "time"]).to_xarray()
    ds["sst"].attrs["units"] = "K"  # the Dataset says kelvin, but holds degC
    return (sst_field(**TRUTH), ds), fit_stations()


def _cftime_360(env):
    import cftime

    table = stations(time=np.array([cftime.Datetime360Day(2021, 2, 30)] * 3, dtype=object))
    return (sst_field(**TRUTH), table), fit_stations()


CASES: list[Case] = [
    # -- time
    Case(
        "time-argument-not-a-dimension",
        _time_renamed,
        E.CoordinateError,
        ValueError,
        r"pass time= one of them \(or None\)",
    ),
    Case(
        "two-datetime-dimensions",
        _two_time_dims,
        E.CoordinateError,
        ValueError,
        r"pass time='time' to choose",
    ),
    Case(
        "duplicated-time-steps",
        _duplicated_time,
        E.CoordinateError,
        ValueError,
        r"ds\.drop_duplicates\('time'\)",
    ),
    Case(
        "fit-duplicated-time-steps",
        lambda env: (_duplicated_time(env)[0], fit()),
        E.CoordinateError,
        ValueError,
        r"drop_duplicates\('time'\)",
    ),
    # -- grids that are not latitude/longitude
    Case(
        "projected-x-y-in-metres",
        lambda env: _projected(env, "m", 25_000.0),
        E.GridError,
        ValueError,
        r"rio\.reproject\('EPSG:4326'\)",
    ),
    Case(
        "projected-x-y-in-km",
        lambda env: _projected(env, "km", 25.0),
        E.GridError,
        ValueError,
        r"projected grid, not latitude/longitude",
    ),
    Case(
        "x-y-without-units-outside-latitude-range",
        lambda env: _projected(env, None, 25.0),
        E.GridError,
        ValueError,
        r"outside any latitude \(-90\.\.90\)",
    ),
    Case(
        "longitude-outside-any-convention",
        lambda env: (field().assign_coords(lon=field()["lon"] + 1000.0), down(env)),
        E.GridError,
        ValueError,
        r"outside any longitude",
    ),
    Case(
        "curvilinear-with-integer-index",
        lambda env: _curvilinear_indexed(env, cf=False),
        E.GridError,
        ValueError,
        r"indexes a curvilinear grid.*xESMF",
    ),
    Case(
        "curvilinear-cf-with-integer-index",
        lambda env: _curvilinear_indexed(env, cf=True),
        E.GridError,
        ValueError,
        r"Regrid to a regular 1-D",
    ),
    Case(
        "latitude-not-a-dimension-coordinate",
        _lat_not_a_dimension,
        E.GridError,
        ValueError,
        r"da\.swap_dims\(\{'i': 'lat'\}\)",
    ),
    # -- values as files store them
    Case(
        "land-as-minus-999-without-fill-attribute",
        _stored(-999.0),
        E.InputDataError,
        ValueError,
        r"_FillValue'\] = -999",
    ),
    Case(
        "land-as-1e20-without-fill-attribute",
        _stored(1e20),
        E.InputDataError,
        ValueError,
        r"look like fill values",
    ),
    Case(
        "fill-value-attribute-differs-from-stored-fill",
        _stored(-32768.0, _FillValue=-999.0),
        E.InputDataError,
        ValueError,
        r"_FillValue'\] = -32768",
    ),
    Case(
        "fill-value-attribute-not-a-number",
        _stored(-999.0, _FillValue="none"),
        E.InputDataError,
        ValueError,
        r"del da\.attrs\['_FillValue'\]",
    ),
    Case(
        "valid-range-not-two-numbers",
        _stored(-999.0, valid_range=[-3.0]),
        E.InputDataError,
        ValueError,
        r"not two numbers \[min, max\]",
    ),
    Case(
        "packed-values-with-scale-factor",
        _stored(-999.0, scale_factor=0.01, add_offset=20.0),
        E.InputDataError,
        ValueError,
        r"xr\.decode_cf\(ds\)",
    ),
    Case(
        "labelled-degc-holding-kelvin",
        lambda env: (field(units="K").assign_attrs(units="degC"), down(env)),
        E.UnitsError,
        ValueError,
        r"look like kelvin.*units'\] = 'K'",
    ),
    Case(
        "labelled-kelvin-holding-degc",
        lambda env: (field().assign_attrs(units="K"), down(env)),
        E.UnitsError,
        ValueError,
        r"look like degC.*units'\] = 'degC'",
    ),
    Case(
        "values-above-the-physical-range",
        lambda env: (field() + 40.0, down(env)),
        E.InputDataError,
        ValueError,
        r"outside the physical range.*Check the units attribute",
    ),
    Case(
        "fit-labelled-degc-holding-kelvin",
        lambda env: (sst_field(**TRUTH, units="K").assign_attrs(units="degC"), fit()),
        E.UnitsError,
        ValueError,
        r"units'\] = 'K'",
    ),
    Case(
        "fit-land-as-minus-999",
        lambda env: (sst_field(**TRUTH).where(lambda d: d > 24, -999.0), fit()),
        E.InputDataError,
        ValueError,
        r"look like fill values",
    ),
    # -- land masks
    Case(
        "land-mask-elsewhere",
        _mask(lat_shift=40.0),
        E.InputDataError,
        ValueError,
        r"land_mask does not cover the data.*mask over the data's region",
    ),
    Case(
        "land-mask-covers-half",
        _mask(half=True),
        E.InputDataError,
        ValueError,
        r"does not cover the data",
    ),
    Case(
        "land-mask-without-coordinates",
        _mask(coords=False),
        E.CoordinateError,
        ValueError,
        r"land_mask\.assign_coords\(lat=",
    ),
    Case(
        "land-mask-a-dataset",
        lambda env: (
            field(),
            down(env, land_mask=xr.Dataset({"land": plain(field()).isel(time=0) > 0})),
        ),
        InputTypeError,
        TypeError,
        r"xr\.DataArray\(mask",
    ),
    # -- station tables
    Case(
        "stations-in-kelvin-without-units",
        _kelvin_stations,
        E.StationsError,
        ValueError,
        r"look like kelvin: pass station_units='K' to fit or evaluate",
    ),
    Case(
        "stations-degc-with-station-units-k",
        lambda env: ((sst_field(**TRUTH), stations()), fit_stations(station_units="K")),
        E.StationsError,
        ValueError,
        r"look like degC",
    ),
    Case(
        "stations-dataset-units-wrong",
        _dsg_from_table,
        E.StationsError,
        ValueError,
        r"look like degC",
    ),
    Case(
        "stations-fill-values",
        lambda env: ((sst_field(**TRUTH), stations(sst=[20.0, -999.0, 21.0])), fit_stations()),
        E.StationsError,
        ValueError,
        r"drop or mask the invalid rows",
    ),
    Case(
        "stations-360-day-dates",
        _cftime_360,
        E.StationsError,
        ValueError,
        r"to_datetimeindex\(\)",
    ),
    Case(
        "stations-unknown-units",
        lambda env: ((sst_field(**TRUTH), stations()), fit_stations(station_units="degF")),
        E.UnitsError,
        ValueError,
        r"use 'degC' or 'K'",
    ),
]
