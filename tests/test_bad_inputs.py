"""Bad inputs give typed errors whose messages name the fix, and leave the input untouched.

One catalogue, one test: each row builds an input and a call, names the exact error class
(under :class:`xsstsr.XsstsrError`, and the builtin it also is) and a phrase of the
message that says how to fix it. After the call, the input is compared with a deep copy
taken before it. The rows of this file cover the SST, its grid, values, units, factor,
arguments, model and fit; each ``cases_*.py`` beside it holds one more topic's rows
(the framework is in ``catalogue.py``). The weights-format details (truncation points,
every metadata key) are in tests/test_weights.py; the generic factor values in
tests/test_downscale.py.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from catalogue import (
    TRUTH,
    Case,
    assert_unchanged,
    collect_topic_tables,
    curvilinear,
    down,
    field,
    fit,
    fit_stations,
    plain,
    small_model,
    snapshot,
    stations,
    weights_file,
    with_meta,
)
from helpers import sst_field

import xsstsr
import xsstsr.models
from xsstsr.errors import InputTypeError


@pytest.fixture(scope="module")
def models() -> types.SimpleNamespace:
    return types.SimpleNamespace(
        m4=small_model(4, 1),
        m25=small_model(5, 2),
        fusion=small_model(4, 1, inputs=("wind", "sst")),
    )


@pytest.fixture
def env(models, tmp_path, monkeypatch) -> types.SimpleNamespace:
    return types.SimpleNamespace(**vars(models), tmp=tmp_path, monkeypatch=monkeypatch)


def _two_sst(env):
    da = field()
    ds = xr.Dataset(
        {"sst": da, "sst_skin": da.assign_attrs(standard_name="sea_surface_skin_temperature")}
    )
    return ds, down(env)


def _two_lat(env):
    da = field().expand_dims(latitude=[10.0, 11.0], axis=1)
    da["latitude"].attrs = {"standard_name": "latitude"}
    return da, down(env)


def _curvilinear_guessed(env):
    return curvilinear(), down(env)


def _curvilinear_cf(env):
    da, call = _curvilinear_guessed(env)
    da = da.rename(y="nj", x="ni")
    da["lat"].attrs = {"standard_name": "latitude", "units": "degrees_north"}
    da["lon"].attrs = {"standard_name": "longitude", "units": "degrees_east"}
    return da, call


def _irregular(env):
    da = field()
    lon = da["lon"].values.copy()
    lon[4:] += 0.1  # one step of 0.35 among steps of 0.25
    return da.assign_coords(lon=("lon", lon, da["lon"].attrs)), down(env)


def _duplicated(env):
    da = field()
    lat = da["lat"].values.copy()
    lat[4] = lat[3]
    return da.assign_coords(lat=("lat", lat, da["lat"].attrs)), down(env)


def _non_monotonic(env):
    da = field()
    lat = da["lat"].values[[0, 1, 2, 4, 3, 5, 6, 7]]
    return da.assign_coords(lat=("lat", lat, da["lat"].attrs)), down(env)


def _cut_at_seam(env):
    """A box over the prime meridian stored in 0..360 order: 1, 3, ..., 359 with a jump."""
    da = field()
    step = 2.0
    lon = np.concatenate(
        [
            step / 2 + step * np.arange(da.sizes["lon"] // 2),
            360 - step / 2 - step * np.arange(da.sizes["lon"] - da.sizes["lon"] // 2)[::-1],
        ]
    )
    return da.assign_coords(lon=("lon", lon, da["lon"].attrs)), down(env)


def _cyclic_point(env):
    """A global 20-degree grid with its first meridian repeated at the end (10 .. 370)."""
    lon = 10.0 + 20.0 * np.arange(19)
    da = sst_field(nt=2, nx=19, step=20.0, lat0=-40.0, ny=4).assign_coords(lon=lon)
    return da, down(env)


def _coordinates_as_data_variables(env):
    """NCL's files: lat(latitude) a data variable, the dimension without coordinates."""
    da = field()
    ds = da.to_dataset().swap_dims(lat="latitude").reset_coords("lat")
    return ds, down(env)


def _nan_coordinate(env):
    da = field()
    lon = da["lon"].values.copy()
    lon[0] = np.nan
    return da.assign_coords(lon=("lon", lon, da["lon"].attrs)), down(env)


def _wrong_hash(env):
    shipped = env.tmp / "shipped"
    shipped.mkdir()
    env.m4.save(shipped / "sst-x4.safetensors")
    (shipped / "registry.txt").write_text(f"sst-x4.safetensors {'0' * 64}\n")
    env.monkeypatch.setattr(xsstsr.models.weights, "bundled_dir", lambda: shipped)
    return (field(), shipped / "sst-x4.safetensors"), lambda obj: xsstsr.downscale(
        obj[0], 4, device="cpu"
    )


def _truncated(env):
    path = env.tmp / "cut.safetensors"
    path.write_bytes(env.m4.to_bytes()[:200])
    return (field(), path), lambda obj: xsstsr.downscale(obj[0], model=obj[1], device="cpu")


def _meta_case(metadata_of: Callable[[Any], Any]):
    def make(env):
        path = weights_file(env, "meta.safetensors", metadata_of(env))
        return (field(), path), lambda obj: xsstsr.downscale(obj[0], model=obj[1], device="cpu")

    return make


def _fusion_without_sources(env):
    path = env.tmp / "fusion.safetensors"
    env.fusion.save(path)
    return (field(), path), lambda obj: xsstsr.downscale(obj[0], model=obj[1], device="cpu")


def _skip_with_gpu() -> tuple[Any, ...]:
    return (pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present"),)


E = xsstsr  # short names for the table
CASES: list[Case] = [
    # -- the SST variable
    Case(
        "no-data-variables",
        lambda env: (field().to_dataset().drop_vars("sst"), down(env)),
        E.VariableNotFoundError,
        KeyError,
        "Pass the Dataset that holds the SST",
    ),
    Case(
        "variable-not-in-dataset",
        lambda env: (field().to_dataset(), down(env, variable="temp")),
        E.VariableNotFoundError,
        KeyError,
        r"Pass one of them as variable=",
    ),
    Case(
        "several-candidates-no-standard-name",
        lambda env: (
            xr.Dataset(
                {
                    "a": field().assign_attrs(standard_name="air_temperature"),
                    "b": field().assign_attrs(standard_name="dew_point_temperature"),
                }
            ),
            down(env),
        ),
        E.AmbiguousVariableError,
        ValueError,
        r"Pass variable=\.\.\.",
    ),
    Case(
        "several-sst-standard-names",
        _two_sst,
        E.AmbiguousVariableError,
        ValueError,
        r"pass variable='sst'",
    ),
    # -- latitude / longitude
    Case(
        "no-lat-lon",
        lambda env: (plain(field(), lat="row", lon="col"), down(env)),
        E.CoordinateError,
        ValueError,
        r"pass lat='<dim name>'",
    ),
    Case(
        "two-latitude-dims",
        _two_lat,
        E.CoordinateError,
        ValueError,
        r"pass lat='latitude' to choose",
    ),
    Case(
        "lat-argument-not-a-dim",
        lambda env: (field(), down(env, lat="y")),
        E.CoordinateError,
        ValueError,
        r"its dims are .*: pass lat= one of them",
    ),
    Case(
        "lat-and-lon-same-dim",
        lambda env: (field(), down(env, lat="lon")),
        E.CoordinateError,
        ValueError,
        r"pass lat= and lon= explicitly",
    ),
    Case(
        "dim-without-coordinate-values",
        lambda env: (field().drop_vars("lat"), down(env)),
        E.CoordinateError,
        ValueError,
        r"assign_coords\(lat=",
    ),
    # -- the grid
    Case("non-monotonic", _non_monotonic, E.GridError, ValueError, r"sortby\('lat'\)"),
    Case("irregular", _irregular, E.GridError, ValueError, r"regular grid first"),
    Case("lon-cut-at-seam", _cut_at_seam, E.GridError, ValueError, r"% 360 - 180\)\.sortby"),
    Case(
        "duplicated-coordinates", _duplicated, E.GridError, ValueError, r"drop_duplicates\('lat'\)"
    ),
    Case("nan-coordinate", _nan_coordinate, E.GridError, ValueError, r"fix or drop them"),
    Case("cyclic-point", _cyclic_point, E.GridError, ValueError, r"isel\(lon=slice\(0, -1\)\)"),
    Case(
        "coordinates-as-data-variables",
        _coordinates_as_data_variables,
        E.CoordinateError,
        ValueError,
        r"ds\.set_coords\('lat'\)\.swap_dims\(\{'latitude': 'lat'\}\)",
    ),
    Case(
        "curvilinear-2d-by-name",
        _curvilinear_guessed,
        E.GridError,
        ValueError,
        r"Regrid to a regular 1-D",
    ),
    Case(
        "curvilinear-2d-cf",
        _curvilinear_cf,
        E.GridError,
        ValueError,
        r"xESMF",
    ),
    Case(
        "single-latitude",
        lambda env: (field().isel(lat=slice(0, 1)), down(env)),
        E.GridError,
        ValueError,
        r"at least 2 are needed",
    ),
    Case(
        "datetime-coordinates",
        lambda env: (field().assign_coords(lat=pd.date_range("2000", periods=8)), down(env)),
        E.GridError,
        ValueError,
        r"astype\(float\)",
    ),
    Case(
        "size-not-divisible-for-2.5",
        lambda env: (field(ny=9), down(env, model=env.m25)),
        E.GridError,
        ValueError,
        r"isel\(lat=slice\(0, 8\)\)",
    ),
    # -- the values
    Case(
        "all-nan",
        lambda env: (field() * np.nan, down(env)),
        E.InputDataError,
        ValueError,
        r"check the variable, its _FillValue",
    ),
    Case(
        "empty-time",
        lambda env: (field().isel(time=slice(0, 0)), down(env)),
        E.InputDataError,
        ValueError,
        r"Check the \.sel\(\)/\.isel\(\)",
    ),
    Case(
        "empty-lon",
        lambda env: (field().isel(lon=slice(0, 0)), down(env)),
        E.InputDataError,
        ValueError,
        r"'lon' is empty.*\.isel\(\)",
    ),
    Case(
        "integer-dtype",
        lambda env: (field(land=False).round().astype("int16"), down(env)),
        E.InputDataError,
        ValueError,
        r"mask_and_scale=True",
    ),
    Case(
        "string-dtype",
        lambda env: (field().astype(str), down(env)),
        E.InputDataError,
        ValueError,
        r"da\.astype\('float32'\)",
    ),
    Case(
        "numpy-array-not-xarray",
        lambda env: (field().values, down(env)),
        InputTypeError,
        TypeError,
        r"xr\.DataArray\(values",
    ),
    # -- units
    Case(
        "no-units",
        lambda env: (field().assign_attrs(units=None), down(env)),
        E.UnitsError,
        ValueError,
        r"da\.attrs\['units'\] = 'degC'",
    ),
    Case(
        "unknown-units",
        lambda env: (field().assign_attrs(units="degF"), down(env)),
        E.UnitsError,
        ValueError,
        r"use 'degC' or 'K'",
    ),
    Case(
        "units-not-a-string",
        lambda env: (field().assign_attrs(units=3), down(env)),
        E.UnitsError,
        ValueError,
        r"not a string; set it",
    ),
    # -- the factor
    Case(
        "factor-zero",
        lambda env: (field(), lambda obj: xsstsr.downscale(obj, 0)),
        E.FactorError,
        ValueError,
        r"greater than 1",
    ),
    Case(
        "factor-negative",
        lambda env: (field(), lambda obj: xsstsr.downscale(obj, -4, model=env.m4)),
        E.FactorError,
        ValueError,
        r"greater than 1",
    ),
    Case(
        "factor-not-a-number",
        lambda env: (field(), lambda obj: obj.sstsr.downscale("four")),
        E.FactorError,
        ValueError,
        r"a number such as 4 or 2\.5",
    ),
    Case(
        "factor-infinite",
        lambda env: (field(), lambda obj: xsstsr.downscale(obj, float("inf"))),
        E.FactorError,
        ValueError,
        r"finite number",
    ),
    Case(
        "factor-unavailable",
        lambda env: (field(), lambda obj: xsstsr.downscale(obj, 3)),
        E.FactorError,
        ValueError,
        r"Pass model=",
    ),
    Case(
        "factor-does-not-fit-the-model",
        lambda env: (field(), down(env, factor=2)),
        E.ModelMismatchError,
        ValueError,
        r"drop factor=",
    ),
    # -- other arguments
    Case(
        "batch-size-zero",
        lambda env: (field(), down(env, batch_size=0)),
        E.InputDataError,
        ValueError,
        r"positive integer \(or None",
    ),
    Case(
        "tile-size-not-an-int",
        lambda env: (field(), down(env, tile_size="big")),
        E.InputDataError,
        ValueError,
        r"tile_size must be a positive integer",
    ),
    Case(
        "land-mask-not-xarray",
        lambda env: (field(), down(env, land_mask=np.zeros((32, 32), bool))),
        InputTypeError,
        TypeError,
        r"xr\.DataArray\(mask",
    ),
    Case(
        "cuda-without-gpu",
        lambda env: (field(), down(env, device="cuda")),
        E.DeviceError,
        RuntimeError,
        r"use device='cpu'",
        marks=_skip_with_gpu(),
    ),
    # -- the model and its weights file
    Case(
        "weights-file-missing",
        lambda env: (field(), down(env, model=env.tmp / "nowhere.safetensors")),
        E.ModelNotFoundError,
        KeyError,
        r"pass an existing \.safetensors path",
    ),
    Case("weights-file-truncated", _truncated, E.WeightsError, ValueError, r"download it again"),
    Case(
        "weights-wrong-hash",
        _wrong_hash,
        E.WeightsIntegrityError,
        ValueError,
        r"Delete it and fetch it again",
    ),
    Case(
        "metadata-huge-json",
        _meta_case(lambda env: with_meta(env, notes="x" * (1024 * 1024 + 1))),
        E.MetadataError,
        ValueError,
        r"exceeds the 1048576-byte limit",
    ),
    Case(
        "metadata-deeply-nested",
        _meta_case(lambda env: "[" * 100_000 + "]" * 100_000),
        E.MetadataError,
        ValueError,
        r"metadata is not valid JSON",
    ),
    Case(
        "metadata-wrong-type",
        _meta_case(lambda env: with_meta(env, window="2")),
        E.MetadataError,
        ValueError,
        r"window='2'; it must be an integer in 1\.\.64",
    ),
    Case(
        "metadata-bad-scale-radius",
        _meta_case(
            lambda env: with_meta(
                env, architecture={**env.m4.metadata["architecture"], "scale_radius": -2}
            )
        ),
        E.MetadataError,
        ValueError,
        r"scale_radius=-2; it must be an integer in 0\.\.16",
    ),
    Case(
        "metadata-nan-normalisation",
        _meta_case(lambda env: with_meta(env, normalisation={"mean": float("nan"), "std": 1.0})),
        E.MetadataError,
        ValueError,
        r"finite numeric 'mean'",
    ),
    Case(
        "metadata-halo-too-small",
        _meta_case(lambda env: with_meta(env, halo=0)),
        E.MetadataError,
        ValueError,
        r"new_metadata\(\)",
    ),
    Case(
        "model-inputs-do-not-fit",
        _fusion_without_sources,
        E.ModelMismatchError,
        ValueError,
        r"pass 1 source\(s\) as sources=",
    ),
    Case(
        "source-not-xarray",
        lambda env: (field(), down(env, model=env.fusion, sources=[np.zeros((2, 8, 8))])),
        InputTypeError,
        TypeError,
        r"sources=\[da1, \.\.\.\]",
    ),
    Case(
        "model-of-wrong-type",
        lambda env: (field(), down(env, model=42)),
        InputTypeError,
        TypeError,
        r"model='sst-x4'",
    ),
    # -- fit
    Case(
        "fit-window-longer-than-record",
        lambda env: (sst_field(**TRUTH), fit(window=9)),
        E.InputDataError,
        ValueError,
        r"use window<=4",
    ),
    Case(
        "fit-window-zero",
        lambda env: (sst_field(**TRUTH), fit(window=0)),
        E.FitConfigError,
        ValueError,
        r"window=1",
    ),
    Case(
        "fit-lr-nan",
        lambda env: (sst_field(**TRUTH), fit(lr=float("nan"))),
        E.FitConfigError,
        ValueError,
        r"positive finite number",
    ),
    Case(
        "fit-adv-weight-nan",
        lambda env: (sst_field(**TRUTH), fit(adv_weight=float("nan"))),
        E.FitConfigError,
        ValueError,
        r"adv_weight must be a finite number >= 0",
    ),
    Case(
        "fit-lr-schedule-unknown",
        lambda env: (sst_field(**TRUTH), fit(lr_schedule="linear-warmup")),
        E.FitConfigError,
        ValueError,
        r"use one of 'constant', 'cosine', 'linear'",
    ),
    Case(
        "fit-unknown-option",
        lambda env: (sst_field(**TRUTH), fit(epoch=3)),
        E.FitConfigError,
        ValueError,
        r"did you mean 'epochs'",
    ),
    Case(
        "fit-no-time-dimension",
        lambda env: (sst_field(**TRUTH).isel(time=0), fit()),
        E.InputDataError,
        ValueError,
        r"expand_dims\(time=",
    ),
    # -- station tables (checked by fit before any training step)
    Case(
        "stations-missing-column",
        lambda env: ((sst_field(**TRUTH), stations().drop(columns="sst")), fit_stations()),
        E.StationsError,
        ValueError,
        r"pass columns=\{'sst'",
    ),
    Case(
        "stations-nan-positions",
        lambda env: ((sst_field(**TRUTH), stations(lat=[np.nan, np.nan, 31.0])), fit_stations()),
        E.StationsError,
        ValueError,
        r"fill their lat/lon or drop them",
    ),
    Case(
        "stations-duplicated-rows",
        lambda env: (
            (sst_field(**TRUTH), pd.concat([stations(), stations().iloc[:1]])),
            fit_stations(),
        ),
        E.StationsError,
        ValueError,
        r"drop_duplicates\(\['station', 'time'\]\)",
    ),
    Case(
        "stations-times-outside-record",
        lambda env: (
            (
                sst_field(**TRUTH),
                stations(time=pd.to_datetime(["1990-01-01", "1990-01-02", "1990-01-01"])),
            ),
            fit_stations(),
        ),
        E.StationsError,
        ValueError,
        r"check the stations' positions \(lat/lon\), times",
        warns="outside the record",
    ),
    Case(
        "stations-outside-domain",
        lambda env: ((sst_field(**TRUTH), stations(lat=[-60.0, -60.0, -61.0])), fit_stations()),
        E.StationsError,
        ValueError,
        r"check the stations' positions",
        warns="outside the grid's extent",
    ),
    Case(
        "stations-lat-lon-swapped",
        lambda env: ((sst_field(**TRUTH), stations(lat=[120.5, 120.5, 121.0])), fit_stations()),
        E.StationsError,
        ValueError,
        r"are lat and lon swapped",
    ),
    Case(
        "stations-not-a-table",
        lambda env: ((sst_field(**TRUTH), [("a", 1.0)]), fit_stations()),
        E.StationsError,
        ValueError,
        r"must be a pandas DataFrame",
    ),
]


CATALOGUE: list[Case] = CASES + collect_topic_tables()


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CATALOGUE])
def test_bad_input(case: Case, env) -> None:
    obj, call = case.make(env)
    before = snapshot(obj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dims guessed from their names, dropped stations
        if case.warns:
            warnings.simplefilter("always", UserWarning)
            with pytest.warns(UserWarning, match=case.warns), pytest.raises(case.error) as info:
                call(obj)
        else:
            with pytest.raises(case.error) as info:
                call(obj)
    err = info.value
    assert type(err) is case.error, f"{type(err).__name__}: {err}"
    assert isinstance(err, xsstsr.XsstsrError)
    assert isinstance(err, case.builtin)
    info.match(case.match)
    assert_unchanged(obj, before)


def test_table_is_large_and_unique() -> None:
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 100
