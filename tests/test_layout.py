"""The answer does not depend on how the data is laid out.

Latitude or longitude running either way, time in any order, a time axis found by its
values rather than its name, a global grid of any width, fill values as attributes and
land masks in any convention: each gives the canonical layout's answer, to float rounding.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import make_model, sst_field

import xsstsr

TOL = dict(rtol=0, atol=1e-5)


@pytest.fixture(scope="module")
def model():
    """Window 3 (so time order matters) and a ~10-cell halo."""
    return make_model(4, 1, 3, seed=4, scale=0.05, small_halo=True)


def run(obj, model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return xsstsr.downscale(obj, model=model, device="cpu", **kwargs)


def flip(obj, *dims):
    return obj.isel({dim: slice(None, None, -1) for dim in dims})


@pytest.mark.parametrize("dims", [("lat",), ("lon",), ("lat", "lon")], ids="-".join)
@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "dask"])
def test_descending_coordinates_give_the_flipped_answer(model, dims, lazy):
    da = sst_field(nt=4, ny=24, nx=32)
    canonical = run(da, model)
    given = flip(da, *dims)
    if lazy:
        given = given.chunk({"lat": 12, "lon": 16, "time": 2})
    out = run(given, model)
    for dim in dims:  # the result keeps the input's orientation
        assert np.all(np.diff(out[dim].values) < 0)
    expected = flip(canonical, *dims)
    xr.testing.assert_allclose(out.compute(), expected, **TOL)


def test_descending_latitude_dataset_bounds_follow_the_coordinate(model):
    ds = sst_field(nt=2).to_dataset()
    out = run(flip(ds, "lat"), model)
    bounds = out["lat_bnds"].values
    centres = out["lat"].values
    assert np.all(bounds[:, 0] > bounds[:, 1])  # each cell's bounds run the coordinate's way
    np.testing.assert_allclose(bounds.mean(axis=1), centres)
    xr.testing.assert_allclose(out["sst"], flip(run(ds, model)["sst"], "lat"), **TOL)


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "dask"])
def test_unsorted_time_is_sorted_for_the_window_and_returned_in_order(model, lazy):
    da = sst_field(nt=6)
    canonical = run(da, model)
    order = [3, 0, 5, 1, 4, 2]
    given = da.isel(time=order)
    if lazy:
        given = given.chunk({"time": 2})
    out = run(given, model)
    np.testing.assert_array_equal(out["time"].values, da["time"].values[order])
    xr.testing.assert_allclose(out.compute(), canonical.isel(time=order), **TOL)


def test_descending_time_equals_the_reversed_answer(model):
    da = sst_field(nt=5)
    xr.testing.assert_allclose(run(flip(da, "time"), model), flip(run(da, model), "time"), **TOL)


def test_a_gap_the_window_spans_warns(model):
    da = sst_field(nt=6).isel(time=[0, 1, 2, 4, 5])
    with pytest.warns(xsstsr.TimeAxisWarning, match=r"gap.*resample"):
        xsstsr.downscale(da, model=model, device="cpu")


def test_monthly_steps_of_uneven_length_are_not_a_gap(model):
    da = sst_field(nt=12).assign_coords(time=pd.date_range("2021-01-01", periods=12, freq="MS"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", xsstsr.TimeAxisWarning)
        xsstsr.downscale(da, model=model, device="cpu")


def test_cftime_time_axis_is_time(model):
    cftime = pytest.importorskip("cftime")
    da = sst_field(nt=4)
    noleap = [cftime.DatetimeNoLeap(2021, 1, d + 1) for d in range(4)]
    given = da.assign_coords(time=noleap).isel(time=[2, 0, 3, 1])
    out = run(given, model)
    expected = run(da, model).isel(time=[2, 0, 3, 1])
    np.testing.assert_allclose(out.values, expected.values, **TOL)


def test_an_object_member_coordinate_is_not_time(model):
    """Each member is downscaled on its own: no window across members."""
    da = sst_field(nt=1).isel(time=0, drop=True)
    members = xr.concat([da, da + 0.5, da - 0.5], dim="member")
    members = members.assign_coords(member=np.array(["a", "b", "c"], dtype=object))
    out = run(members, model)
    for i in range(3):
        xr.testing.assert_allclose(
            out.isel(member=i, drop=True), run(members.isel(member=i, drop=True), model), **TOL
        )


def test_time_argument_names_the_time_axis(model):
    da = sst_field(nt=4).rename(time="step").assign_coords(step=np.arange(4))
    as_time = run(da, model, time="step")
    # the same as the record with datetime coordinates
    expected = run(sst_field(nt=4), model)
    np.testing.assert_allclose(as_time.values, expected.values, **TOL)
    # without time=, each step is downscaled on its own (a window of one repeated frame)
    alone = run(da, model)
    single = run(sst_field(nt=4).isel(time=[1]), model)
    np.testing.assert_allclose(alone.isel(step=1).values, single.isel(time=0).values, **TOL)


@pytest.mark.parametrize("nx", [4, 6, 8])
@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "dask"])
def test_a_narrow_global_grid_wraps_without_a_seam(model, nx, lazy):
    """Rolling a global field by whole cells rolls the answer: no seam anywhere."""
    step = 360.0 / nx
    da = sst_field(nt=2, ny=8, nx=nx, land=False, lat0=-20.0, lon0=0.0, step=step)
    da = da.assign_coords(lat=da["lat"] * 0 + np.linspace(-35.0, 35.0, 8))
    assert nx < model.halo
    shift = nx // 4
    rolled = da.roll(lon=shift, roll_coords=False)
    if lazy:
        da, rolled = da.chunk({"lon": nx // 2}), rolled.chunk({"lon": nx // 2})
    out = run(da, model).values
    out_rolled = run(rolled, model).values
    np.testing.assert_allclose(out_rolled, np.roll(out, shift * 4, axis=-1), **TOL)


# -- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attrs", "raw"),
    [
        ({"_FillValue": -999.0}, -999.0),
        ({"missing_value": 1e20}, 1e20),
        ({"valid_range": [-3.0, 40.0]}, -50.0),
        ({"valid_min": -3.0}, -80.0),
        ({"valid_max": 40.0}, 99.0),
    ],
    ids=["fill-value", "missing-value", "valid-range", "valid-min", "valid-max"],
)
@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "dask"])
def test_fill_and_valid_attributes_are_honoured(model, attrs, raw, lazy):
    da = sst_field(nt=2)
    stored = da.fillna(raw).assign_attrs(**attrs)
    if lazy:
        stored = stored.chunk({"time": 1})
    before = stored.copy(deep=True)
    out = run(stored, model)
    xr.testing.assert_allclose(out.compute(), run(da, model), **TOL)
    xr.testing.assert_identical(stored, before)
    assert not set(attrs) & set(out.attrs)  # the storage flags do not describe the result


def test_out_of_range_values_in_a_dask_graph_are_refused_at_compute(model):
    da = sst_field(nt=2).fillna(-999.0).chunk({"time": 1})
    out = xsstsr.downscale(da, model=model, device="cpu")  # lazy: nothing read yet
    with pytest.raises(xsstsr.InputDataError, match=r"look like fill values.*_FillValue"):
        out.compute()


# -- land masks ----------------------------------------------------------------------------


def land_box(lat, lon, shape_like=None):
    yy, xx = np.meshgrid(lat, lon, indexing="ij")
    land = (yy > 33.0) & (xx > 124.0)
    return xr.DataArray(land, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})


@pytest.fixture(scope="module")
def masked(model):
    """The reference: a land mask on the fine grid, in the data's convention."""
    da = sst_field(nt=2, land=False)
    plain = run(da, model)
    mask = land_box(plain["lat"].values, plain["lon"].values)
    return da, mask, run(da, model, land_mask=mask)


def test_land_mask_in_the_other_longitude_convention(model, masked):
    da, mask, expected = masked
    east = da.assign_coords(lon=da["lon"] + 120.0)  # 240.125 .. : 0..360
    west_mask = mask.assign_coords(lon=mask["lon"] + 120.0 - 360.0)  # -119.875 ..: -180..180
    out = run(east, model, land_mask=west_mask)
    np.testing.assert_array_equal(np.isnan(out.values), np.isnan(expected.values))


def test_land_mask_descending_and_on_the_coarse_grid(model, masked):
    da, _, expected = masked
    coarse = land_box(da["lat"].values, da["lon"].values)
    # on the coarse grid: a coarse cell is land when its centre is
    out = run(da, model, land_mask=flip(coarse, "lat"))
    fine_from_coarse = coarse.reindex(
        lat=expected["lat"].values, lon=expected["lon"].values, method="nearest"
    )
    np.testing.assert_array_equal(np.isnan(out.values[0]), fine_from_coarse.values)


def test_land_mask_shifted_by_less_than_half_a_cell_is_aligned(model, masked):
    da, mask, expected = masked
    nudged = mask.assign_coords(lat=mask["lat"] + 0.01, lon=mask["lon"] - 0.01)  # cell 0.0625
    out = run(da, model, land_mask=nudged)
    np.testing.assert_array_equal(np.isnan(out.values), np.isnan(expected.values))


@pytest.mark.parametrize("west", [False, True], ids=["0..360", "-180..180"])
def test_global_land_mask_on_a_global_grid(model, west):
    """A 0..360 mask covers a global grid in either convention, the seam included."""
    nx = 16
    da = sst_field(nt=1, ny=8, nx=nx, land=False, lon0=0.0, step=360.0 / nx)
    da = da.assign_coords(lat=np.linspace(-35.0, 35.0, 8))
    if west:
        da = da.assign_coords(lon=da["lon"] - 180.0)
    fine = run(da, model)
    lon360 = np.arange(0.5, 360.0, 1.0)
    mask = xr.DataArray(
        np.broadcast_to((lon360 > 350.0) | (lon360 < 10.0), (80, 360)).copy(),
        dims=("lat", "lon"),
        coords={"lat": np.arange(-39.5, 40.0, 1.0), "lon": lon360},
    )
    out = run(da, model, land_mask=mask)
    land = np.isnan(out.values[0])
    near_seam = ((fine["lon"].values % 360.0) > 350.0) | ((fine["lon"].values % 360.0) < 10.0)
    np.testing.assert_array_equal(land, np.broadcast_to(near_seam, land.shape))


def test_a_year_zero_climatology_time_axis(model):
    """Monthly climatologies (COADS, WOA) decode to cftime dates in year 0."""
    xr_range = xr.date_range(
        "0000-01-15", periods=4, freq="MS", calendar="standard", use_cftime=True
    )
    da = sst_field(nt=4).assign_coords(time=xr_range)
    out = run(da.isel(time=[2, 0, 3, 1]), model)
    expected = run(sst_field(nt=4), model).isel(time=[2, 0, 3, 1])
    # a month apart rather than a day: the window sees the same frames either way
    np.testing.assert_allclose(out.values, expected.values, **TOL)


def test_valid_range_of_unpacked_data_is_in_packed_units(model):
    """xarray unpacks values but leaves valid_range in attrs, in packed units."""
    da = sst_field(nt=2, units="K")
    packed = xr.Dataset({"sst": da}).copy(deep=True)
    packed["sst"].encoding.update(scale_factor=0.01, add_offset=0.0, dtype="int16")
    packed["sst"].attrs["valid_range"] = np.array([26000, 32000], dtype="int16")
    out = run(packed, model)["sst"]
    xr.testing.assert_allclose(out, run(da, model), **TOL)
