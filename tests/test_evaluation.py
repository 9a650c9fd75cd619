"""Skill scores (xsstsr.evaluate), baselines and zonal spectra.

Every score is checked against a brute-force numpy computation; dask inputs must give
the same table in a single dask.compute.
"""

from __future__ import annotations

import warnings

import dask
import dask.threaded
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import counting_scheduler, make_model, sst_field

import xsstsr
from xsstsr.errors import FactorError, GridError, InputDataError, InputTypeError, OptionError
from xsstsr.evaluation import (
    SCORE_COLUMNS,
    bicubic_baseline,
    evaluate,
    nearest_baseline,
    zonal_spectrum,
)
from xsstsr.evaluation.statistics import PartialStats, quantile_from_top, top_size
from xsstsr.evaluation.subsets import in_box
from xsstsr.grid import coarsen_truth
from xsstsr.stations import read_stations, sample_field

FINE = dict(ny=32, nx=32, step=0.0625, lat0=33.0, lon0=124.0)


@pytest.fixture(scope="module")
def truth() -> xr.DataArray:
    return sst_field(nt=6, seed=1, **FINE)


@pytest.fixture(scope="module")
def result(truth: xr.DataArray) -> xr.DataArray:
    """A 'downscaled' field: the truth plus a smooth error and noise."""
    rng = np.random.default_rng(5)
    err = 0.2 + 0.3 * np.sin(np.arange(truth.sizes["lon"]) / 3.0) + rng.normal(0, 0.2, truth.shape)
    return (truth + err.astype("float32")).assign_attrs(truth.attrs)


@pytest.fixture(scope="module")
def coarse(truth: xr.DataArray) -> xr.DataArray:
    return coarsen_truth(truth, 4)


@pytest.fixture(scope="module")
def stations(truth: xr.DataArray) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    lat = truth.lat.values[[5, 20, 27]] + 0.01
    lon = truth.lon.values[[20, 9, 28]] - 0.02
    times = truth.time.values
    return pd.DataFrame(
        {
            "station": np.repeat(["S1", "S2", "S3"], times.size),
            "time": np.tile(times, 3),
            "lat": np.repeat(lat, times.size),
            "lon": np.repeat(lon, times.size),
            "sst": 20.0 + rng.normal(0, 1.0, 3 * times.size),
        }
    )


def brute(
    f: np.ndarray, t: np.ndarray, q: float = 0.99, w: np.ndarray | None = None
) -> dict[str, float]:
    """The scores by hand: weighted by ``w`` (broadcast to ``f``), unweighted without it."""
    w = np.ones(np.shape(f)) if w is None else np.broadcast_to(w, np.shape(f))
    ok = np.isfinite(f) & np.isfinite(t)
    f, t, w = f[ok].astype("float64"), t[ok].astype("float64"), w[ok].astype("float64")
    d = f - t
    thr = np.quantile(t, q)  # the extremes are a quantile of the cells, not of the area
    ext = t > thr
    af, at = f - np.average(f, weights=w), t - np.average(t, weights=w)
    return {
        "rmse": np.sqrt(np.average(d**2, weights=w)),
        "bias": np.average(d, weights=w),
        "mae": np.average(np.abs(d), weights=w),
        "corr": np.sum(w * af * at) / np.sqrt(np.sum(w * af**2) * np.sum(w * at**2)),
        "rmse_extremes": np.sqrt(np.average(d[ext] ** 2, weights=w[ext])),
        "n": d.size,
        "n_extremes": int(ext.sum()),
    }


def cos_lat(da: xr.DataArray) -> np.ndarray:
    """The default area weights of a (..., lat, lon) field, broadcast to its shape."""
    return np.broadcast_to(np.cos(np.deg2rad(da["lat"].values))[:, None], da.shape)


def row(table: pd.DataFrame, **where: str) -> pd.Series:
    sel = table
    for key, value in where.items():
        sel = sel[sel[key] == value]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def check(actual: pd.Series, expected: dict[str, float]) -> None:
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-9), key


# -- grid scores --------------------------------------------------------------------------


def test_grid_scores_match_numpy(result: xr.DataArray, truth: xr.DataArray) -> None:
    table = evaluate(result, truth, by=None)
    assert list(table.columns) == list(SCORE_COLUMNS)
    assert len(table) == 1
    r = row(table, source="downscaled", against="grid", period="all", region="all")
    check(r, brute(result.values, truth.values, w=cos_lat(truth)))
    assert r["n_extremes"] >= 1
    assert table.attrs["extremes_quantile"] == 0.99
    assert table.attrs["weights"] == "area (cos lat)"
    flat = evaluate(result, truth, by=None, weights="none")
    check(row(flat, source="downscaled"), brute(result.values, truth.values))
    assert flat.attrs["weights"] == "none"
    pd.testing.assert_frame_equal(evaluate(result, truth, by=None, weights=False), flat)


def test_a_truth_stored_the_other_way_round_scores_the_same(
    result: xr.DataArray, truth: xr.DataArray
) -> None:
    expected = evaluate(result, truth, by=None)
    for dims in (["lat"], ["lon"], ["lat", "lon"]):
        flipped = truth.isel({d: slice(None, None, -1) for d in dims})
        pd.testing.assert_frame_equal(evaluate(result, flipped, by=None), expected)
    # longitudes in the other convention: the same cells (the error's interp() hint gave an
    # all-NaN truth)
    for shift in (360.0, -360.0):
        moved = truth.assign_coords(lon=truth["lon"] + shift)
        pd.testing.assert_frame_equal(evaluate(result, moved, by=None), expected)
        flipped = moved.isel(lon=slice(None, None, -1))
        pd.testing.assert_frame_equal(evaluate(result, flipped, by=None), expected)
    with pytest.raises(GridError, match="not on the downscaled field's grid"):
        evaluate(result, truth.assign_coords(lon=truth["lon"] + 1.0), by=None)


def test_a_coarse_input_from_another_grid_is_refused_with_advice(
    result: xr.DataArray, truth: xr.DataArray, coarse: xr.DataArray
) -> None:
    moved = coarse.assign_coords(lat=coarse["lat"] + 1.0)
    with pytest.raises(GridError, match="Pass as coarse= the input the field was downscaled"):
        evaluate(result, truth, coarse=moved, by=None)
    east = coarse.assign_coords(lon=coarse["lon"] + 360.0)  # the other convention: the same
    pd.testing.assert_frame_equal(
        evaluate(result, truth, coarse=east, by=None),
        evaluate(result, truth, coarse=coarse, by=None),
    )


def test_accessor_and_top_level_function(result: xr.DataArray, truth: xr.DataArray) -> None:
    assert xsstsr.evaluate is evaluate
    a = result.sstsr.evaluate(truth=truth, by=None)
    b = result.to_dataset().sstsr.evaluate(truth=truth.to_dataset(), by=None)
    pd.testing.assert_frame_equal(a, b)


def test_common_mask_for_all_sources(
    result: xr.DataArray, truth: xr.DataArray, coarse: xr.DataArray
) -> None:
    """Each row scores every source on the same cells (finite in all of them)."""
    holey = result.where(result.lat > result.lat[6])
    table = evaluate(holey, truth, coarse=coarse, baseline=["bicubic", "nearest"], by=None)
    assert table["source"].tolist() == ["downscaled", "bicubic", "nearest"]
    assert table["n"].nunique() == 1
    near = nearest_baseline(coarse, like=truth)
    ok = np.isfinite(holey.values) & np.isfinite(near.values)
    expected = brute(np.where(ok, near.values, np.nan), truth.values, w=cos_lat(truth))
    check(row(table, source="nearest"), expected)


def test_truth_in_kelvin_and_other_names(result: xr.DataArray, truth: xr.DataArray) -> None:
    other = (truth + 273.15).assign_attrs(units="K").rename(lat="latitude", lon="longitude")
    other = other.rename(time="t")
    a = evaluate(result, truth, by=None)
    b = evaluate(result, other, by=None)
    pd.testing.assert_frame_equal(a, b, rtol=1e-4)  # float32 K rounding


def test_result_in_kelvin(result: xr.DataArray, truth: xr.DataArray) -> None:
    a = evaluate(result, truth, by=None)
    b = evaluate((result + 273.15).assign_attrs(units="K"), truth, by=None)
    pd.testing.assert_frame_equal(a, b, rtol=1e-4)


def test_only_common_time_steps(result: xr.DataArray, truth: xr.DataArray) -> None:
    table = evaluate(result.isel(time=slice(0, 4)), truth.isel(time=slice(2, 6)), by=None)
    expected = brute(result.values[2:4], truth.values[2:4], w=cos_lat(truth[2:4]))
    check(row(table, source="downscaled"), expected)


def test_without_time(result: xr.DataArray, truth: xr.DataArray) -> None:
    table = evaluate(result.isel(time=0), truth.isel(time=0))
    assert table["period"].tolist() == ["all"]
    expected = brute(result.values[0], truth.values[0], w=cos_lat(truth[0]))
    check(row(table, source="downscaled"), expected)


def test_extra_dimension(result: xr.DataArray, truth: xr.DataArray) -> None:
    ens = xr.concat([result, result + 0.5], dim="member")
    ens_truth = xr.concat([truth, truth], dim="member")
    table = evaluate(ens, ens_truth, by=None)
    expected = brute(
        np.stack([result.values, result.values + 0.5]),
        np.stack([truth.values, truth.values]),
        w=cos_lat(ens_truth),
    )
    check(row(table, source="downscaled"), expected)


def test_seasons_and_months() -> None:
    t = sst_field(nt=12, seed=3, **FINE)
    t = t.assign_coords(time=pd.date_range("2021-01-15", periods=12, freq="30D"))
    f = t + 0.1 * np.arange(12)[:, None, None]
    table = evaluate(f.assign_attrs(t.attrs), t)
    assert table["period"].tolist() == ["all", "DJF", "MAM", "JJA", "SON"]
    months = t.time.dt.month.values
    djf = np.isin(months, [12, 1, 2])
    check(row(table, period="DJF"), brute(f.values[djf], t.values[djf], w=cos_lat(t[djf])))
    monthly = evaluate(f.assign_attrs(t.attrs), t, by="month")
    present = sorted(set(months.tolist()))
    labels = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    assert monthly["period"].tolist() == ["all", *(labels[m - 1] for m in present)]
    assert evaluate(f.assign_attrs(t.attrs), t, by=None)["period"].tolist() == ["all"]


def test_only_present_seasons(result: xr.DataArray, truth: xr.DataArray) -> None:
    table = evaluate(result, truth)  # six January days
    assert table["period"].tolist() == ["all", "DJF"]


def test_regions_boxes_and_masks(result: xr.DataArray, truth: xr.DataArray) -> None:
    box = (33.0, 33.9, 124.0, 125.0)
    mask = (truth.lat > 34.0) & (truth.lon > 125.0)
    coarse_mask = mask.coarsen(lat=2, lon=2).mean() > 0.5  # another grid: nearest cell
    table = evaluate(result, truth, by=None, regions={"box": box, "ne": mask, "ne2": coarse_mask})
    assert table["region"].tolist() == ["all", "box", "ne", "ne2"]
    lat2d, lon2d = xr.broadcast(truth.lat, truth.lon)
    boxed = (lat2d >= 33.0) & (lat2d <= 33.9) & (lon2d >= 124.0) & (lon2d <= 125.0)
    w = cos_lat(truth)
    sel = np.broadcast_to(boxed.values, truth.shape)
    check(row(table, region="box"), brute(result.values[sel], truth.values[sel], w=w[sel]))
    sel = np.broadcast_to(mask.transpose("lat", "lon").values, truth.shape)
    check(row(table, region="ne"), brute(result.values[sel], truth.values[sel], w=w[sel]))
    single = evaluate(result, truth, by=None, regions=mask.rename("northeast"))
    assert single["region"].tolist() == ["all", "northeast"]


def test_region_box_across_the_date_line() -> None:
    lon = np.array([170.0, 179.0, 181.0, -179.0, -170.0, 0.0])
    lat = np.zeros_like(lon)
    inside = in_box(lat, lon, (-1, 1, 175, -175), "dl")
    assert inside.tolist() == [False, True, True, True, False, False]


def test_bad_region_arguments(result: xr.DataArray, truth: xr.DataArray) -> None:
    with pytest.raises(InputTypeError, match="lat0, lat1, lon0, lon1"):
        evaluate(result, truth, regions={"x": (1, 2)})
    with pytest.raises(InputTypeError, match="not looked up by name"):
        evaluate(result, truth, regions={"x": "1234"})  # would parse as four digits
    with pytest.raises(InputTypeError, match="finite numbers"):
        evaluate(result, truth, regions={"x": (30, np.nan, 120, 130)})
    with pytest.raises(OptionError, match="reserved"):
        evaluate(result, truth, regions={"all": (30, 40, 120, 130)})
    with pytest.raises(InputTypeError, match="regions"):
        evaluate(result, truth, regions=[(30, 40, 120, 130)])
    mask = (truth.isel(time=0, drop=True) > 0).rename("m")
    with pytest.raises(InputDataError, match=r"one \(lat, lon\) mask"):
        evaluate(result, truth, regions=mask.expand_dims(k=2))
    doubled = mask.isel(lat=[0, 0, *range(1, mask.sizes["lat"])])
    with pytest.raises(GridError, match="unique"):
        evaluate(result, truth, regions={"m": doubled})


def test_a_region_mask_in_any_layout_scores_the_same_cells(
    result: xr.DataArray, truth: xr.DataArray
) -> None:
    """Shuffled, flipped or in the other longitude convention, a mask selects the same cells
    (a mask at 184..192 E on a grid at -176..-168 once scored nothing, silently), and cells
    beyond a mask's extent are outside it (nearest matching once stretched its edge)."""
    box = (truth["lat"] > 34) & (truth["lon"] > 125)
    mask = box.isel(time=0, drop=True) if "time" in box.dims else box
    plain = row(evaluate(result, truth, by=None, regions={"m": mask}), region="m")
    assert 0 < plain["n"] < truth.isel(time=0).size * truth.sizes["time"]
    shuffled = mask.isel(lat=[1, 0, *range(2, mask.sizes["lat"])], lon=slice(None, None, -1))
    east = mask.assign_coords(lon=mask["lon"] + 360.0)
    west = mask.assign_coords(lon=mask["lon"] - 360.0)
    for other in (shuffled, east, west):
        got = row(evaluate(result, truth, by=None, regions={"m": other}), region="m")
        assert got["n"] == plain["n"]
        assert got["rmse"] == pytest.approx(plain["rmse"], rel=1e-12)
    # a mask over part of the grid: its True edge column does not reach beyond it
    part = mask.isel(lon=slice(mask.sizes["lon"] // 2, None))
    half = row(evaluate(result, truth, by=None, regions={"m": part}), region="m")
    assert half["n"] == plain["n"]  # the box lies inside the mask's half
    inner = mask.isel(lon=slice(0, mask.sizes["lon"] * 3 // 4))
    fewer = row(evaluate(result, truth, by=None, regions={"m": inner}), region="m")
    assert 0 < fewer["n"] < plain["n"]


def test_empty_region_gives_nan_row(result: xr.DataArray, truth: xr.DataArray) -> None:
    table = evaluate(result, truth, by=None, regions={"far": (-10, -5, 0, 5)})
    far = row(table, region="far")
    assert far["n"] == 0
    assert np.isnan(far["rmse"])


# -- baselines ------------------------------------------------------------------------


def test_baseline_rows_need_coarse(
    result: xr.DataArray, truth: xr.DataArray, coarse: xr.DataArray
) -> None:
    assert evaluate(result, truth, by=None)["source"].tolist() == ["downscaled"]
    table = evaluate(result, truth, by=None, coarse=coarse)
    assert table["source"].tolist() == ["downscaled", "bicubic"]
    table = evaluate(result, truth, by=None, coarse=coarse, baseline=None)
    assert table["source"].tolist() == ["downscaled"]
    with pytest.raises(OptionError, match="baseline"):
        evaluate(result, truth, coarse=coarse, baseline="cubic")
    with pytest.raises(OptionError, match="a list of them or None"):
        evaluate(result, truth, coarse=coarse, baseline=5)  # type: ignore[arg-type]
    # the truth passed as coarse= by mistake: said so, not "factor must be greater than 1"
    with pytest.raises(GridError, match="as fine as the downscaled field's"):
        evaluate(result, truth, coarse=truth)


def test_nearest_baseline_copies_coarse_cells(coarse: xr.DataArray, truth: xr.DataArray) -> None:
    near = nearest_baseline(coarse, like=truth)
    np.testing.assert_allclose(near.lat, truth.lat)
    np.testing.assert_allclose(near.lon, truth.lon)
    expected = np.repeat(np.repeat(coarse.values, 4, axis=1), 4, axis=2)
    np.testing.assert_array_equal(near.values, expected)
    assert near.attrs["units"] == coarse.attrs["units"]
    lazy = nearest_baseline(coarse.chunk(time=2), factor=4)
    assert isinstance(lazy.data, dask.array.Array)
    np.testing.assert_array_equal(lazy.values, expected)


def test_nearest_baseline_fractional_factor_and_descending_lat() -> None:
    coarse = sst_field(nt=1, ny=4, nx=6, land=False)
    near = nearest_baseline(coarse, factor=2.5)
    assert near.sizes["lat"] == 10
    assert near.sizes["lon"] == 15
    # fine cells of 0.4 coarse cells: centres at 0.2, 0.6, 1.0 (edge: next cell), 1.4, 1.8
    np.testing.assert_array_equal(near.values[0, 0, :5], coarse.values[0, 0, [0, 0, 1, 1, 1]])
    flipped = nearest_baseline(coarse.isel(lat=slice(None, None, -1)), factor=2)
    assert flipped.lat.values[0] > flipped.lat.values[-1]
    np.testing.assert_array_equal(flipped.values[0, :2, 0], coarse.values[0, -1, [0, 0]])
    with pytest.raises(FactorError, match=r"factor= .* or like="):
        nearest_baseline(coarse)
    with pytest.raises(FactorError, match=r"factor= .* or like="):
        bicubic_baseline(coarse)


def test_bicubic_baseline_on_fine_grid(coarse: xr.DataArray, truth: xr.DataArray) -> None:
    base = bicubic_baseline(coarse, like=truth)
    np.testing.assert_allclose(base.lat, truth.lat)
    flat = xr.full_like(coarse, 17.0)
    np.testing.assert_allclose(bicubic_baseline(flat, factor=4).values, 17.0, atol=1e-4)


def test_with_a_real_downscale(coarse: xr.DataArray, truth: xr.DataArray) -> None:
    hi = coarse.sstsr.downscale(model=make_model(4, 1))
    table = hi.sstsr.evaluate(truth=truth, coarse=coarse, by=None, baseline=["bicubic", "nearest"])
    assert table["source"].tolist() == ["downscaled", "bicubic", "nearest"]
    assert table.attrs["model"] == "test-x4"
    assert (table["rmse"] < 2.0).all()


# -- errors ---------------------------------------------------------------------------------


def test_truth_on_another_grid(result: xr.DataArray, coarse: xr.DataArray) -> None:
    with pytest.raises(GridError, match=r"interp\(lat="):
        evaluate(result, coarse)
    shifted = result.assign_coords(lon=result.lon + 0.03)
    with pytest.raises(GridError, match="not on the downscaled field's grid"):
        evaluate(result, shifted)


def test_bad_arguments(result: xr.DataArray, truth: xr.DataArray) -> None:
    with pytest.raises(InputDataError, match=r"truth= .* stations="):
        evaluate(result)
    with pytest.raises(OptionError, match="by must be"):
        evaluate(result, truth, by="week")
    with pytest.raises(OptionError, match="by must be"):
        evaluate(result, truth, by=["season"])
    with pytest.raises(OptionError, match="extremes"):
        evaluate(result, truth, extremes=1.5)
    with pytest.raises(OptionError, match=r"extremes=0\.99"):
        evaluate(result, truth, extremes="high")
    with pytest.raises(InputTypeError, match=r"xr\.open_dataset"):
        evaluate(result, truth.values)
    with pytest.raises(InputDataError, match="share no time"):
        evaluate(result, truth.assign_coords(time=truth.time + np.timedelta64(100, "D")))
    with pytest.raises(InputDataError, match="dims"):
        evaluate(result, truth.isel(time=0))


# -- dask --------------------------------------------------------------------------------


def test_dask_gives_the_same_table_in_one_compute(
    result: xr.DataArray, truth: xr.DataArray, coarse: xr.DataArray, stations: pd.DataFrame
) -> None:
    kwargs = dict(
        coarse=coarse, baseline=["bicubic", "nearest"], regions={"box": (33.0, 33.9, 124.0, 125.0)}
    )
    eager = evaluate(result, truth, stations, **kwargs)
    lazy_result = result.chunk(time=2, lat=16, lon=12)
    lazy_truth = truth.chunk(time=3)
    lazy_coarse = coarse.chunk(time=1)
    with counting_scheduler() as computes:
        lazy = evaluate(lazy_result, lazy_truth, stations, **{**kwargs, "coarse": lazy_coarse})
    assert len(computes) == 1
    pd.testing.assert_frame_equal(eager, lazy, rtol=1e-10, atol=1e-10)


# -- stations -------------------------------------------------------------------------------


def test_station_scores_match_sample_field(
    result: xr.DataArray, truth: xr.DataArray, stations: pd.DataFrame
) -> None:
    table = evaluate(result, stations=stations, by=None)
    assert table["against"].tolist() == ["stations"]
    sampled = sample_field(result.astype("float64"), read_stations(stations), "lat", "lon", "time")
    expected = brute(sampled["model"].to_numpy(), sampled["sst"].to_numpy())
    check(row(table, source="downscaled"), expected)
    both = evaluate(result, truth, stations, by=None)
    assert both["against"].tolist() == ["grid", "stations"]


def test_station_regions_and_seasons(result: xr.DataArray, stations: pd.DataFrame) -> None:
    table = evaluate(result, stations=stations, regions={"south": (33.0, 33.5, 124.0, 126.0)})
    south = row(table, region="south", period="all")
    assert south["n"] == result.sizes["time"]  # only S1 lies in the box
    assert set(table["period"]) == {"all", "DJF"}


def test_station_units_and_columns(result: xr.DataArray, stations: pd.DataFrame) -> None:
    a = evaluate(result, stations=stations, by=None)
    renamed = stations.rename(columns={"sst": "temp"}).assign(temp=stations["sst"] + 273.15)
    b = evaluate(
        result, stations=renamed, by=None, station_columns={"sst": "temp"}, station_units="K"
    )
    pd.testing.assert_frame_equal(a, b, rtol=1e-9)


def test_station_outside_the_grid_is_dropped(result: xr.DataArray, stations: pd.DataFrame) -> None:
    far = stations.iloc[:2].assign(station="FAR", lat=0.0, lon=0.0)
    with pytest.warns(UserWarning, match="outside the grid"):
        table = evaluate(result, stations=pd.concat([stations, far]), by=None)
    assert row(table, source="downscaled")["n"] == len(stations)


def test_stations_on_land_are_not_scored(result: xr.DataArray) -> None:
    land = pd.DataFrame(
        {
            "station": ["L"] * 2,
            "time": result.time.values[:2],
            "lat": [result.lat.values[1]] * 2,
            "lon": [result.lon.values[1]] * 2,
            "sst": [20.0, 21.0],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = evaluate(result, stations=land, by=None)
    assert row(table, source="downscaled")["n"] == 0


def test_a_station_beside_land_is_named_when_others_are_scored(
    result: xr.DataArray, stations: pd.DataFrame
) -> None:
    land = stations.iloc[:2].assign(
        station="L", lat=float(result.lat.values[1]), lon=float(result.lon.values[1])
    )
    with pytest.warns(UserWarning, match=r"1 of 4 stations are not scored \(L\)"):
        table = evaluate(result, stations=pd.concat([stations, land]), by=None)
    assert row(table, source="downscaled")["n"] == len(stations)


# -- streaming statistics -----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merged_stats_equal_direct_ones(seed: int) -> None:
    """Chan's weighted merge of blocks gives xskillscore's scores of the whole, and numpy's."""
    import xskillscore as xs

    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 400))
    t = np.round(rng.normal(20, 3, n), 1)  # ties
    f = np.stack([t + rng.normal(0, 0.5, n), t * 0.9 + 2])
    w = rng.uniform(0.1, 1.0, n)
    k = top_size(n, 0.95)
    cuts = np.sort(rng.choice(np.arange(1, n), size=5, replace=False))
    parts = [
        PartialStats.of(tp, fp, wp, k)
        for tp, fp, wp in zip(
            np.split(t, cuts), np.split(f, cuts, axis=1), np.split(w, cuts), strict=True
        )
    ]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part)
    assert merged.direct is None
    assert quantile_from_top(merged.top_t, n, 0.95) == pytest.approx(np.quantile(t, 0.95))
    whole = PartialStats.of(t, f, w, k, direct=True)
    a, b = xr.DataArray(f, dims=("source", "cell")), xr.DataArray(t, dims="cell")
    weights = xr.DataArray(w, dims="cell")
    for metric, name in ((xs.rmse, "rmse"), (xs.me, "bias"), (xs.mae, "mae")):
        reference = metric(a, b, dim="cell", weights=weights, skipna=True).values
        np.testing.assert_allclose([s[name] for s in merged.scores(0.95)], reference, rtol=1e-10)
    reference = xs.pearson_r(a, b, dim="cell", weights=weights, skipna=True).values
    np.testing.assert_allclose([s["corr"] for s in merged.scores(0.95)], reference, rtol=1e-10)
    for j, (streamed, direct) in enumerate(
        zip(merged.scores(0.95), whole.scores(0.95), strict=True)
    ):
        check(pd.Series(streamed), brute(f[j], t, 0.95, w=w))
        check(pd.Series(direct), brute(f[j], t, 0.95, w=w))


# -- area weights ---------------------------------------------------------------------------


def global_fields(ny: int = 90, nx: int = 180, step: float = 2.0) -> tuple[xr.Dataset, xr.Dataset]:
    """A global 2-degree truth and a 'result' whose error grows towards the poles."""
    rng = np.random.default_rng(4)
    lat = -90 + step / 2 + step * np.arange(ny)
    lon = step / 2 + step * np.arange(nx)
    coords = {
        "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
    }
    attrs = {"standard_name": "sea_surface_temperature", "units": "degC"}
    t = 28 - 30 * np.sin(np.deg2rad(lat))[:, None] ** 2 + rng.normal(0, 0.5, (ny, nx))
    spread = 0.05 + 0.3 * np.abs(np.sin(np.deg2rad(lat)))[:, None]
    f = t + spread * rng.normal(0, 1, (ny, nx))
    truth = xr.Dataset({"sst": (("lat", "lon"), t, attrs)}, coords=coords)
    return truth.copy(data={"sst": f}), truth


def test_area_weights_matter_on_a_global_grid() -> None:
    """High latitudes hold many small cells: unweighted, their large errors dominate."""
    result, truth = global_fields()
    weighted = row(evaluate(result, truth, by=None), source="downscaled")
    flat = row(evaluate(result, truth, by=None, weights="none"), source="downscaled")
    d = (result["sst"] - truth["sst"]).values
    cos = np.broadcast_to(np.cos(np.deg2rad(truth.lat.values))[:, None], d.shape)
    by_hand = np.sqrt(np.sum(cos * d**2) / np.sum(cos))
    assert weighted["rmse"] == pytest.approx(by_hand, rel=1e-12)
    assert flat["rmse"] == pytest.approx(np.sqrt(np.mean(d**2)), rel=1e-12)
    assert flat["rmse"] > 1.15 * weighted["rmse"]  # 0.257 against 0.216
    assert weighted["n"] == flat["n"] == d.size


def test_cell_bounds_give_the_area_weights() -> None:
    """sin(lat1) - sin(lat0) is cos(lat) on a regular grid; bounds count where rows differ."""
    result, truth = global_fields(ny=12, nx=24, step=15.0)
    lat, lon = truth.lat.values, truth.lon.values
    regular = np.stack([lat - 7.5, lat + 7.5], axis=1)
    bounded = truth.assign(lat_bnds=(("lat", "nv"), regular))
    by_cos = evaluate(result, truth, by=None)
    by_bounds = evaluate(result, bounded, by=None)
    assert by_bounds.attrs["weights"] == "area (cell bounds)"
    pd.testing.assert_frame_equal(by_cos, by_bounds, rtol=1e-10)
    # uneven rows: the southern polar row is twice as tall, the northern one clipped at the
    # pole; found through the CF attribute
    uneven = regular.copy()
    uneven[0, 0], uneven[-1, 1] = -97.5, 90.0  # not on a sphere: shows the sin() is used
    lon_b = np.stack([lon - 7.5, lon + 7.5], axis=1)
    lon_b[0] = [352.5, 367.5 - 360.0]  # a cell across 0 degrees, written wrapped
    ds = truth.assign(b_lat=(("lat", "nv"), uneven), b_lon=(("nv", "lon"), lon_b.T)).assign_coords(
        lat=truth.lat.assign_attrs(bounds="b_lat"), lon=truth.lon.assign_attrs(bounds="b_lon")
    )
    s = np.sin(np.deg2rad(uneven))
    width = np.full(lon.size, 15.0)
    w = np.abs(s[:, 1] - s[:, 0])[:, None] * width[None, :]
    expected = brute(result["sst"].values, truth["sst"].values, w=w)
    check(row(evaluate(result, ds, by=None), source="downscaled"), expected)
    # the bounds follow their rows: a truth stored north to south, or in -180..180
    # sorted from -180, weighs each cell as before (they once kept the stored order)
    flipped = ds.isel(lat=slice(None, None, -1))
    shifted = ds.assign_coords(lon=((ds.lon + 180.0) % 360.0) - 180.0).sortby("lon")
    for layout in (flipped, shifted, flipped.isel(lon=slice(None, None, -1))):
        check(row(evaluate(result, layout, by=None), source="downscaled"), expected)
    # bounds of the result's own Dataset count when the truth has none
    own = result.assign(b_lat=ds.b_lat, b_lon=ds.b_lon).assign_coords(lat=ds.lat, lon=ds.lon)
    check(row(evaluate(own, truth["sst"], by=None), source="downscaled"), expected)
    own_flipped = own.isel(lat=slice(None, None, -1))
    check(row(evaluate(own_flipped, truth["sst"], by=None), source="downscaled"), expected)
    with pytest.raises(GridError, match="drop_vars"):
        evaluate(result, truth.assign(lat_bnds=(("lat", "nv"), np.zeros((12, 3)))))


def test_given_weights(result: xr.DataArray, truth: xr.DataArray) -> None:
    rng = np.random.default_rng(3)
    grid = truth.isel(time=0, drop=True)
    given = grid.copy(data=rng.uniform(0.5, 2.0, grid.shape)).rename(lat="y", lon="x")
    given = given.assign_coords(
        y=given.y.assign_attrs(standard_name="latitude"),
        x=given.x.assign_attrs(standard_name="longitude"),
    )
    table = evaluate(result, truth, by=None, weights=given)
    assert table.attrs["weights"] == "given"
    check(row(table), brute(result.values, truth.values, w=given.values))
    # weight 0 or NaN: the cell is not scored
    holes = given.copy(data=np.where(np.arange(grid.shape[0])[:, None] < 4, np.nan, given.values))
    holes[-1] = 0.0
    scored = row(evaluate(result, truth, by=None, weights=holes))
    inside = np.broadcast_to(np.isfinite(holes.values) & (holes.values > 0), truth.shape)
    ok = inside & np.isfinite(truth.values)
    assert scored["n"] == int(ok.sum())
    check(scored, brute(np.where(ok, result.values, np.nan), truth.values, w=given.values))
    with pytest.raises(InputDataError, match="negative"):
        evaluate(result, truth, weights=-given)
    with pytest.raises(InputDataError, match=r"weights\.isel\(time=0\)"):
        evaluate(result, truth, weights=truth)
    with pytest.raises(GridError, match="weights is not on"):
        evaluate(result, truth, weights=given.isel(x=slice(1, None)))
    with pytest.raises(OptionError, match="weights must be 'area'"):
        evaluate(result, truth, weights="cos")


def test_weights_stay_lazy_in_one_compute(
    result: xr.DataArray, truth: xr.DataArray, stations: pd.DataFrame
) -> None:
    rng = np.random.default_rng(8)
    grid = truth.isel(time=0, drop=True)
    given = grid.copy(data=rng.uniform(0.5, 2.0, grid.shape))
    lat_b = np.stack([truth.lat.values - 0.03, truth.lat.values + 0.04], axis=1)
    bounded = truth.to_dataset().assign(lat_bnds=(("lat", "nv"), lat_b))
    for weights, ref, chunked in (
        (given, truth, {"lat": 16, "lon": 12}),
        ("area", bounded, {"lat": 16}),
        (given, truth, None),  # in-memory fields, lazy weights
    ):
        eager = evaluate(result, ref, stations, weights=weights)
        lazy_ref = ref.chunk(time=3, lat=8)
        lazy_result = result if chunked is None else result.chunk(time=2, **chunked)
        lazy_weights = given.chunk(lat=8) if weights is given else weights
        with counting_scheduler() as computes:
            lazy = evaluate(
                lazy_result, lazy_ref if chunked else ref, stations, weights=lazy_weights
            )
        assert len(computes) == 1
        pd.testing.assert_frame_equal(eager, lazy, rtol=1e-10, atol=1e-10)
    with pytest.raises(InputDataError, match="negative"):
        evaluate(result.chunk(time=2), truth, weights=-given.chunk(lat=8))


def test_stations_are_not_weighted(result: xr.DataArray, stations: pd.DataFrame) -> None:
    a = evaluate(result, stations=stations, by=None)
    b = evaluate(result, stations=stations, by=None, weights="none")
    pd.testing.assert_frame_equal(a, b)


# -- spectra -------------------------------------------------------------------------------


def plane_wave(cycles: int, n: int = 64, rows: int = 8, dx: float = 0.25) -> xr.DataArray:
    lon = 120 + dx * np.arange(n)
    lat = 30 + dx * np.arange(rows)
    wave = np.sin(2 * np.pi * cycles * np.arange(n) / n)
    return xr.DataArray(
        np.tile(wave, (2, rows, 1)) + 20,
        dims=("time", "lat", "lon"),
        coords={
            "time": pd.date_range("2020-01-01", periods=2),
            "lat": ("lat", lat, {"standard_name": "latitude"}),
            "lon": ("lon", lon, {"standard_name": "longitude"}),
        },
        attrs={"units": "degC"},
        name="sst",
    )


def test_spectrum_peaks_at_the_wavenumber() -> None:
    spec = zonal_spectrum(plane_wave(8))
    k_peak = float(spec["wavenumber"][int(np.argmax(spec.values))])
    assert k_peak == pytest.approx(8 / (64 * 0.25))
    assert spec.attrs["nyquist"] == pytest.approx(2.0)
    assert spec.attrs["rows"] == 16
    assert spec["wavenumber"].attrs["units"] == "cycles per degree"


def test_spectrum_integrates_to_the_variance() -> None:
    rng = np.random.default_rng(0)
    da = plane_wave(1, n=256)
    da = da.copy(data=rng.normal(0, 2.0, da.shape))
    spec = zonal_spectrum(da)
    dk = float(spec["wavenumber"][0])
    assert float(spec.sum()) * dk == pytest.approx(4.0, rel=0.1)


def test_spectrum_units_land_and_dask() -> None:
    da = plane_wave(4)
    km = zonal_spectrum(da, units="km")
    deg = zonal_spectrum(da)
    scale = 111.195 * float(np.cos(np.deg2rad(da.lat)).mean())
    np.testing.assert_allclose(km["wavenumber"], deg["wavenumber"] / scale)
    np.testing.assert_allclose(km.values, deg.values * scale)
    holey = da.where(~((da.lat == da.lat[0]) & (da.lon < 121)))
    assert zonal_spectrum(holey, nan="skip").attrs["rows"] == 14
    assert zonal_spectrum(holey, nan="fill").attrs["rows"] == 16
    assert zonal_spectrum(holey).attrs["nan"] == "skip"
    lazy = zonal_spectrum(holey.chunk(lat=3, lon=20), nan="fill")
    np.testing.assert_allclose(lazy.values, zonal_spectrum(holey, nan="fill").values)
    with pytest.raises(OptionError, match="units"):
        zonal_spectrum(da, units="m")
    with pytest.raises(OptionError, match="nan must be"):
        zonal_spectrum(da, nan=["skip"])
    with pytest.raises(InputDataError, match="nan='fill'"):
        zonal_spectrum(da.where(da.lon > 120.1), nan="skip")


def test_spectrum_is_the_row_mean_of_scipy_periodograms() -> None:
    """The rows' PSD is scipy's; xsstsr only averages the rows and fills or skips land."""
    from scipy.signal import periodogram

    rng = np.random.default_rng(1)
    da = plane_wave(3, n=48)
    da = da + rng.normal(0, 0.3, da.shape)
    da = da.where(~((da.lat == da.lat[2]) & (da.lon < 121)))  # one row crosses land
    rows = da.transpose("time", "lat", "lon").values.reshape(-1, 48)
    complete = np.isfinite(rows).all(axis=1)
    _, psd = periodogram(rows[complete], fs=1 / 0.25, window="hann", detrend="linear", axis=-1)
    skip = zonal_spectrum(da, nan="skip")
    np.testing.assert_allclose(skip.values, psd.mean(axis=0)[1:], rtol=1e-12)
    filled = rows.copy()
    for r in np.nonzero(~complete)[0]:
        ok = np.isfinite(filled[r])
        filled[r] = np.interp(np.arange(48), np.nonzero(ok)[0], filled[r][ok])
    _, psd = periodogram(filled, fs=1 / 0.25, window="hann", detrend="linear", axis=-1)
    fill = zonal_spectrum(da.chunk(lat=3), nan="fill")
    np.testing.assert_allclose(fill.values, psd.mean(axis=0)[1:], rtol=1e-12)


# -- the scheduler matrix -------------------------------------------------------------------


def test_evaluate_and_spectra_on_every_scheduler(scheduler, result, truth, coarse, stations):
    kwargs = dict(coarse=coarse, baseline=["bicubic", "nearest"], by="month")
    with dask.config.set(scheduler="sync"):
        eager = evaluate(result, truth, stations, **kwargs)
        eager_spectrum = zonal_spectrum(result)
    lazy = evaluate(
        result.chunk(time=2, lat=16, lon=12),
        truth.chunk(time=3),
        stations,
        **{**kwargs, "coarse": coarse.chunk(time=1)},
    )
    pd.testing.assert_frame_equal(eager, lazy, rtol=1e-10, atol=1e-10)
    spectrum = zonal_spectrum(result.chunk(time=2, lat=16))
    xr.testing.assert_allclose(eager_spectrum, spectrum, rtol=1e-10)
