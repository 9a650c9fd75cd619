"""Tests of xsstsr.datasets: synthetic fields, stations, coarsening, samples, readers."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr

import xsstsr
import xsstsr.datasets as dsets
from xsstsr.datasets import synthetic
from xsstsr.datasets.files import FERRET_ENV_VAR, find_ferret_file
from xsstsr.errors import (
    CoordinateError,
    DataFileNotFoundError,
    GridError,
    InputDataError,
    OptionError,
    StationsError,
)
from xsstsr.grid import coarsen_truth

DATA = Path(__file__).parent / "data"
FIXTURE = DATA / "coads_subset.nc"


def _ferret_file(name: str) -> Path:
    try:
        return find_ferret_file(name, None)
    except FileNotFoundError:
        pytest.skip(f"{name} not installed (apt-get install ferret-datasets)")


def _zonal_spectrum_slope(field: np.ndarray, dx: float, kmin: float, kmax: float) -> float:
    """Log-log slope of the row-averaged 1-D spectrum along the last axis (Hann window)."""
    anomalies = field - field.mean(axis=-1, keepdims=True)
    n = field.shape[-1]
    power = np.abs(np.fft.rfft(anomalies * np.hanning(n), axis=-1)) ** 2
    power = power.reshape(-1, power.shape[-1]).mean(axis=0)
    k = np.fft.rfftfreq(n, dx)
    band = (k >= kmin) & (k <= kmax)
    return float(np.polyfit(np.log(k[band]), np.log(power[band]), 1)[0])


# --------------------------------------------------------------------------------------
# synthetic_sst
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> xr.Dataset:
    return dsets.synthetic_sst(48, 40, periods=6, seed=3)


def test_shapes_coords_attrs(small: xr.Dataset) -> None:
    sst = small["sst"]
    assert sst.dims == ("time", "lat", "lon")
    assert sst.shape == (6, 48, 40)
    assert sst.dtype == np.float32
    assert sst.attrs["standard_name"] == "sea_surface_temperature"
    assert sst.attrs["units"] == "degC"
    assert "long_name" in sst.attrs
    assert small["lat"].attrs["standard_name"] == "latitude"
    assert small["lat"].attrs["units"] == "degrees_north"
    assert small["lat"].attrs["axis"] == "Y"
    assert small["lon"].attrs["standard_name"] == "longitude"
    assert small["lon"].attrs["units"] == "degrees_east"
    assert small["lon"].attrs["axis"] == "X"
    assert np.issubdtype(small["time"].dtype, np.datetime64)
    assert pd.Timestamp(small["time"].values[0]) == pd.Timestamp("2020-01-01")
    # cell centres, regular, ascending, inside the ranges
    lat, lon = small["lat"].values, small["lon"].values
    np.testing.assert_allclose(np.diff(lat), 12.0 / 48)
    np.testing.assert_allclose(np.diff(lon), 12.0 / 40)
    assert lat[0] == pytest.approx(30.0 + 12.0 / 96)
    assert lat[-1] == pytest.approx(42.0 - 12.0 / 96)
    assert lon[0] == pytest.approx(120.0 + 12.0 / 80)


def test_deterministic_by_seed(small: xr.Dataset) -> None:
    again = dsets.synthetic_sst(48, 40, periods=6, seed=3)
    xr.testing.assert_identical(small, again)
    other = dsets.synthetic_sst(48, 40, periods=6, seed=4)
    assert not np.allclose(small["sst"].fillna(0), other["sst"].fillna(0))


def test_land_fraction_constant_mask_and_ocean_finite() -> None:
    for seed in range(6):
        sst = dsets.synthetic_sst(64, 64, periods=3, seed=seed)["sst"].values
        land = np.isnan(sst)
        assert (land == land[0]).all(), "land must be the same at all times"
        assert 0.10 <= land[0].mean() <= 0.25
        assert np.isfinite(sst[~land]).all()
    no_land = dsets.synthetic_sst(32, 32, periods=2, land=False)["sst"]
    assert bool(no_land.notnull().all())


def test_plausible_values_gradient_and_season() -> None:
    winter = dsets.synthetic_sst(48, 48, start="2020-02-01", periods=5, seed=5)["sst"]
    summer = dsets.synthetic_sst(48, 48, start="2020-08-10", periods=5, seed=5)["sst"]
    for sst in (winter, summer):
        assert float(sst.min()) >= -1.8
        assert float(sst.max()) < 35.0
        south = float(sst.isel(lat=slice(0, 8)).mean())
        north = float(sst.isel(lat=slice(-8, None)).mean())
        assert south - north > 6.0  # warm south, cool north
    assert float(summer.mean()) - float(winter.mean()) > 4.0  # seasonal cycle
    # seasonal amplitude grows poleward
    diff = (summer.mean("time") - winter.mean("time")).mean("lon")
    assert float(diff.isel(lat=-1)) > float(diff.isel(lat=0))


def test_front_is_sharp() -> None:
    front = synthetic.front_component(
        synthetic.cell_centres(256, 30, 42), np.array([125.0]), np.array([0.0]), (30.0, 42.0), 0
    )[0, :, 0]
    gradient = np.abs(np.diff(front)) / (12.0 / 256)  # K per degree
    assert front[0] - front[-1] > 2.0
    assert gradient.max() > 3.0  # far steeper than the ~1 K/deg background


@pytest.mark.parametrize("slope", [-3.0, -2.0])
def test_eddy_spectrum_slope(slope: float) -> None:
    n = 256
    lat = synthetic.cell_centres(n, 30.0, 42.0)
    lon = synthetic.cell_centres(n, 120.0, 132.0)
    slopes = []
    for seed in (0, 1):
        eddies = synthetic.eddy_component(lat, lon, np.arange(0.0, 32.0, 8.0), seed, slope)
        # spectra along both axes: the field is isotropic
        slopes.append(_zonal_spectrum_slope(eddies, 12.0 / n, 0.3, 4.0))
        slopes.append(_zonal_spectrum_slope(np.swapaxes(eddies, 1, 2), 12.0 / n, 0.3, 4.0))
    assert np.mean(slopes) == pytest.approx(slope, abs=0.3)
    assert max(abs(s - slope) for s in slopes) < 0.45


def test_eddy_component_statistics_and_time_evolution() -> None:
    lat = synthetic.cell_centres(64, 30.0, 42.0)
    lon = synthetic.cell_centres(64, 120.0, 132.0)
    eddies = synthetic.eddy_component(lat, lon, np.array([0.0, 1.0, 60.0]), 0, -3.0)
    assert 0.4 < eddies.std() < 1.2
    step = np.corrcoef(eddies[0].ravel(), eddies[1].ravel())[0, 1]
    far = np.corrcoef(eddies[0].ravel(), eddies[2].ravel())[0, 1]
    assert step > 0.9  # smooth in time
    assert far < step


def test_heatwave_amplitudes_heavy_tailed() -> None:
    events = synthetic.heatwave_events(0, 0.0, 3650.0, (30.0, 42.0), (120.0, 132.0))
    amp = events["amplitude"]
    assert amp.size > 200
    assert amp.min() >= 0.5
    assert scipy.stats.kurtosis(amp) > 3.0  # excess kurtosis: far heavier than Gaussian
    assert scipy.stats.skew(amp) > 1.5
    assert amp.max() > np.median(amp) + 6 * amp.std() / 2
    # a 32-day window holds "a few" events
    window = synthetic.heatwave_events(0, 7300.0, 7332.0, (30.0, 42.0), (120.0, 132.0))
    assert 1 <= window["t0"].size <= 30


def test_heatwave_field_localized() -> None:
    lat = synthetic.cell_centres(64, 30.0, 42.0)
    lon = synthetic.cell_centres(64, 120.0, 132.0)
    t = np.arange(7300.0, 7332.0)  # days since 2000-01-01: from 2019-12-27
    hw = synthetic.heatwave_component(lat, lon, t, 0, (30.0, 42.0), (120.0, 132.0))
    assert hw.min() >= 0.0
    assert hw.max() > 0.5
    assert hw.max() > 5 * hw.std()  # localized bumps, not a broad warming
    with_hw = dsets.synthetic_sst(64, 64, start="2019-12-27", periods=32, seed=0)
    without = dsets.synthetic_sst(64, 64, start="2019-12-27", periods=32, seed=0, heatwaves=False)
    np.testing.assert_allclose(
        (with_hw.sst - without.sst).values, np.where(np.isnan(with_hw.sst), np.nan, hw), atol=1e-4
    )


def test_resolution_consistency() -> None:
    fine = dsets.synthetic_sst(256, 256, periods=8, seed=1)
    coarse = dsets.synthetic_sst(64, 64, periods=8, seed=1)
    averaged = coarsen_truth(fine, 4)
    np.testing.assert_allclose(averaged["lat"], coarse["lat"])
    np.testing.assert_allclose(averaged["lon"], coarse["lon"])
    same_mask = averaged.sst.isnull() == coarse.sst.isnull()
    assert float(same_mask.mean()) > 0.98
    both = averaged.sst.notnull() & coarse.sst.notnull()
    rmse = float(np.sqrt(((averaged.sst - coarse.sst) ** 2).where(both).mean()))
    assert rmse < 0.05 * float(coarse.sst.std())
    assert rmse < 0.1


def test_time_windows_agree() -> None:
    a = dsets.synthetic_sst(32, 32, start="2020-01-01", periods=10, seed=2)
    b = dsets.synthetic_sst(32, 32, start="2020-01-05", periods=3, seed=2)
    xr.testing.assert_allclose(a.sel(time=b.time), b, atol=1e-5)


def test_speed() -> None:
    timings = []
    for _ in range(2):  # best of two: robust to a busy test machine
        t0 = time.perf_counter()
        dsets.synthetic_sst(256, 256, periods=32)
        timings.append(time.perf_counter() - t0)
    assert min(timings) < 2.0


def test_chunks_and_dtype() -> None:
    lazy = dsets.synthetic_sst(32, 32, periods=4, chunks={"time": 2})
    assert lazy.sst.chunks is not None
    assert lazy.sst.chunks[0] == (2, 2)
    xr.testing.assert_identical(lazy.compute(), dsets.synthetic_sst(32, 32, periods=4))
    f64 = dsets.synthetic_sst(16, 16, periods=2, dtype="float64")
    assert f64.sst.dtype == np.float64


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"nlat": 0}, GridError),
        ({"nlon": 2.5}, GridError),
        ({"periods": 0}, GridError),
        ({"lat_range": (42.0, 30.0)}, GridError),
        ({"lon_range": (1.0,)}, GridError),
        ({"dtype": "int16"}, InputDataError),
        ({"dtype": "bogus"}, InputDataError),
        ({"freq": "fortnight"}, OptionError),
        ({"start": "yesterday-ish"}, OptionError),
        ({"eddy_slope": "steep"}, OptionError),
        ({"eddy_slope": float("nan")}, OptionError),
    ],
)
def test_synthetic_bad_arguments(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        dsets.synthetic_sst(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# synthetic_stations
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def truth() -> xr.Dataset:
    return dsets.synthetic_sst(64, 64, periods=20, seed=11)


def test_stations_table(truth: xr.Dataset) -> None:
    df = dsets.synthetic_stations(truth, n=16, seed=0)
    assert list(df.columns) == ["station", "time", "lat", "lon", "sst"]
    assert len(df) == 16 * 20
    assert pd.api.types.is_string_dtype(df["station"])
    assert df["station"].iloc[0] == "ST01"
    assert df["station"].nunique() == 16
    assert np.issubdtype(df["time"].dtype, np.datetime64)
    for col in ("lat", "lon", "sst"):
        assert df[col].dtype == np.float64
    assert df["sst"].notna().all()
    # positions are grid-cell centres, away from the edge, not on land, apart
    lats, lons = truth.lat.values, truth.lon.values
    pos = df.groupby("station")[["lat", "lon"]].first()
    iy = np.searchsorted(lats, pos["lat"].values)
    ix = np.searchsorted(lons, pos["lon"].values)
    np.testing.assert_allclose(lats[iy], pos["lat"])
    np.testing.assert_allclose(lons[ix], pos["lon"])
    assert iy.min() >= 2
    assert iy.max() <= 64 - 3
    assert ix.min() >= 2
    assert ix.max() <= 64 - 3
    assert bool(truth.sst.isel(lat=xr.DataArray(iy), lon=xr.DataArray(ix)).notnull().all())
    dist = np.maximum(abs(iy[:, None] - iy[None]), abs(ix[:, None] - ix[None]))
    assert dist[~np.eye(16, dtype=bool)].min() >= 2


def test_stations_values_and_noise(truth: xr.Dataset) -> None:
    noisy = dsets.synthetic_stations(truth, n=30, noise=0.1, seed=4)
    exact = dsets.synthetic_stations(truth, n=30, noise=0.0, seed=4)
    pd.testing.assert_frame_equal(noisy.drop(columns="sst"), exact.drop(columns="sst"))
    sampled = truth.sst.sel(
        lat=xr.DataArray(exact["lat"].values), lon=xr.DataArray(exact["lon"].values)
    ).sel(time=xr.DataArray(exact["time"].values, dims="dim_0"))
    np.testing.assert_allclose(exact["sst"], sampled.values, rtol=0, atol=1e-6)
    residual = noisy["sst"] - exact["sst"]
    assert abs(residual.mean()) < 0.02
    assert residual.std() == pytest.approx(0.1, rel=0.1)


def test_stations_deterministic_and_dataarray(truth: xr.Dataset) -> None:
    a = dsets.synthetic_stations(truth, n=8, seed=1)
    pd.testing.assert_frame_equal(a, dsets.synthetic_stations(truth, n=8, seed=1))
    pd.testing.assert_frame_equal(a, dsets.synthetic_stations(truth["sst"], n=8, seed=1))
    b = dsets.synthetic_stations(truth, n=8, seed=2)
    assert not np.allclose(a["lat"], b["lat"]) or not np.allclose(a["lon"], b["lon"])
    many = dsets.synthetic_stations(truth, n=120, seed=0, min_distance_cells=1)
    assert many["station"].iloc[0] == "ST001"


def test_stations_errors(truth: xr.Dataset) -> None:
    tiny = dsets.synthetic_sst(6, 6, periods=2, land=False)
    with pytest.raises(StationsError, match="fewer than n=9"):
        dsets.synthetic_stations(tiny, n=9)
    all_land = truth.where(truth.sst > 1000)
    with pytest.raises(StationsError, match="ocean cells"):
        dsets.synthetic_stations(all_land, n=1)
    with pytest.raises(StationsError, match="variable"):
        dsets.synthetic_stations(truth, variable="analysed_sst")
    with pytest.raises(StationsError, match="noise"):
        dsets.synthetic_stations(truth, noise=-1.0)
    with pytest.raises(CoordinateError):
        dsets.synthetic_stations(truth.rename(lat="y"))


# --------------------------------------------------------------------------------------
# coarsen_truth
# --------------------------------------------------------------------------------------


def test_coarsen_truth_means_coords_attrs(small: xr.Dataset) -> None:
    coarse = coarsen_truth(small, 4)
    assert coarse.sst.shape == (6, 12, 10)
    np.testing.assert_allclose(coarse.lat, small.lat.values.reshape(12, 4).mean(axis=1))
    assert coarse.sst.attrs == small.sst.attrs
    assert coarse.lat.attrs == small.lat.attrs
    assert coarse.attrs == small.attrs
    da = coarsen_truth(small.sst, 2)
    assert isinstance(da, xr.DataArray)
    assert da.shape == (6, 24, 20)
    xr.testing.assert_identical(coarsen_truth(small, 1), small)


def test_coarsen_truth_nan_rule() -> None:
    values = np.array(
        [
            [1.0, np.nan, 5.0, np.nan],
            [3.0, np.nan, np.nan, np.nan],
        ]
    )
    da = xr.DataArray(
        values, dims=("lat", "lon"), coords={"lat": [0.0, 1.0], "lon": [0.0, 1, 2, 3]}
    )
    out = coarsen_truth(da, 2)
    # half land: mean of the ocean cells; 3 of 4 land: NaN
    assert float(out[0, 0]) == pytest.approx(2.0)
    assert np.isnan(float(out[0, 1]))


@pytest.mark.parametrize("factor", [0, -2, 0.5, 2.7, True, "4", 5])
def test_coarsen_truth_bad_factor(small: xr.Dataset, factor: object) -> None:
    with pytest.raises(GridError, match="factor"):
        coarsen_truth(small, factor)  # type: ignore[arg-type]


def test_coarsen_truth_missing_dims() -> None:
    with pytest.raises(CoordinateError):
        coarsen_truth(xr.DataArray(np.zeros((4, 4)), dims=("y", "x")), 2)


# --------------------------------------------------------------------------------------
# bundled sample
# --------------------------------------------------------------------------------------


def test_open_sample() -> None:
    coarse = dsets.open_sample()
    truth = dsets.open_sample("truth")
    assert coarse.sst.shape == (16, 32, 32)
    assert truth.sst.shape == (16, 128, 128)
    np.testing.assert_allclose(np.diff(truth.lat), 0.0625)
    np.testing.assert_allclose(np.diff(coarse.lon), 0.25)
    assert pd.Timestamp(truth.time.values[0]) == pd.Timestamp("2021-08-01")
    assert truth.sst.attrs["units"] == "degC"
    assert coarse.lat.attrs["standard_name"] == "latitude"
    # the coarse sample is the block mean of the truth, and the truth is reproducible
    xr.testing.assert_allclose(coarsen_truth(truth, 4).sst, coarse.sst)
    regenerated = dsets.synthetic_sst(
        128,
        128,
        lat_range=(33.0, 41.0),
        lon_range=(124.0, 132.0),
        start="2021-08-01",
        periods=16,
        seed=2021,
    )
    np.testing.assert_allclose(regenerated.sst, truth.sst, atol=1e-4)
    with pytest.raises(OptionError, match='open_sample\\("truth"\\)'):
        dsets.open_sample("fine")  # type: ignore[arg-type]


def test_open_sample_stations() -> None:
    df = dsets.open_sample_stations()
    assert list(df.columns) == ["station", "time", "lat", "lon", "sst"]
    assert df["station"].nunique() == 16
    assert len(df) == 256
    assert df["time"].dtype == "datetime64[ns]"
    truth = dsets.open_sample("truth")
    at = truth.sst.sel(
        lat=xr.DataArray(df["lat"].values),
        lon=xr.DataArray(df["lon"].values),
        time=xr.DataArray(df["time"].values),
        method="nearest",
    )
    assert float(np.abs(df["sst"].values - at.values).max()) < 0.6  # 0.1 K noise


def test_bundled_files_small() -> None:
    data = Path(xsstsr.__file__).parent / "data"
    total = sum(p.stat().st_size for p in data.glob("sample_*"))
    assert total < 3_000_000


# --------------------------------------------------------------------------------------
# real data: committed fixture, then the full files when installed
# --------------------------------------------------------------------------------------


def test_fixture_raw_keeps_original_names() -> None:
    raw = dsets.open_coads_sst(FIXTURE, raw=True)
    assert set(raw.dims) == {"TIME", "COADSY", "COADSX"}
    assert list(raw.data_vars) == ["SST"]
    assert raw["COADSX"].values.max() > 360  # ferret's 21..379 axis is kept
    assert raw["COADSX"].attrs["units"] == "degrees_east"
    assert raw["SST"].attrs["units"] == "Deg C"
    assert np.issubdtype(raw["TIME"].dtype, np.datetime64)
    assert bool(raw["SST"].isnull().any())  # land


def test_fixture_normalised() -> None:
    ds = dsets.open_coads_sst(FIXTURE)
    assert ds.sst.dims == ("time", "lat", "lon")
    assert ds.sst.shape == (3, 20, 30)
    assert ds.sst.attrs["standard_name"] == "sea_surface_temperature"
    assert ds.sst.attrs["units"] == "degC"
    assert ds.lat.attrs["standard_name"] == "latitude"
    assert ds.lat.attrs["units"] == "degrees_north"
    assert ds.lon.attrs["standard_name"] == "longitude"
    assert ds.lon.attrs["units"] == "degrees_east"
    lon = ds.lon.values
    assert lon.min() >= 0.0
    assert lon.max() < 360.0
    assert (np.diff(lon) > 0).all()
    assert (np.diff(ds.lat.values) > 0).all()
    assert ds.month.values.tolist() == [1, 2, 3]
    assert pd.Timestamp(ds.time.values[0]) == pd.Timestamp("2000-01-16T06:00")
    assert 0.05 < float(ds.sst.isnull().mean()) < 0.6
    valid = ds.sst.values[np.isfinite(ds.sst.values)]
    assert valid.min() > -3
    assert valid.max() < 35
    # the same values as the raw file, just rearranged
    raw = dsets.open_coads_sst(FIXTURE, raw=True)
    np.testing.assert_array_equal(ds.sst.sel(lon=1.0).values, raw.SST.sel(COADSX=361.0).values)
    # the nominal year of the climatological axis can be chosen
    assert pd.Timestamp(dsets.open_coads_sst(FIXTURE, year=2001).time.values[0]).year == 2001


def test_ferret_file_not_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FERRET_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(dsets.files, "FERRET_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataFileNotFoundError, match="apt-get install ferret-datasets"):
        dsets.open_coads_sst()
    with pytest.raises(DataFileNotFoundError):
        dsets.open_ocean_atlas(tmp_path / "missing.nc")
    # the environment variable is honoured
    (tmp_path / "coads_climatology.cdf").write_bytes(FIXTURE.read_bytes())
    assert dsets.open_coads_sst().sst.shape == (3, 20, 30)
    assert dsets.open_coads_sst(tmp_path).sst.shape == (3, 20, 30)


def test_full_coads() -> None:
    path = _ferret_file("coads_climatology.cdf")
    ds = dsets.open_coads_sst(path)
    assert ds.sst.shape == (12, 90, 180)
    assert ds.month.values.tolist() == list(range(1, 13))
    assert float(ds.lon.min()) == 1.0
    assert float(ds.lon.max()) == 359.0
    assert 15.0 < float(ds.sst.mean()) < 22.0
    raw = dsets.open_coads_sst(path, raw=True)
    assert {"SST", "AIRT", "SLP"} <= set(raw.data_vars)
    assert float(raw.COADSX.max()) == 379.0


def test_full_ocean_atlas() -> None:
    path = _ferret_file("ocean_atlas_subset.nc")
    ds = dsets.open_ocean_atlas(path)
    assert ds.temp.dims == ("time", "depth", "lat", "lon")
    assert ds.temp.shape == (12, 19, 90, 180)
    assert ds.temp.attrs["standard_name"] == "sea_water_temperature"
    assert ds.depth.attrs["positive"] == "down"
    assert ds.depth.attrs["units"] == "m"
    assert float(ds.lon.max()) < 360.0
    surface = dsets.open_ocean_atlas(path, depth=0)
    assert surface.temp.shape == (12, 1, 90, 180)
    levels = dsets.open_ocean_atlas(path, depth=[0, 95])
    assert levels.depth.values.tolist() == [0.0, 100.0]
    raw = dsets.open_ocean_atlas(path, raw=True)
    assert {"XAX_SUBSET", "YAX_SUBSET", "ZAXLEVIT19", "TIME"} <= set(raw.dims)


def test_reader_wrong_file() -> None:
    with pytest.raises(InputDataError, match="TEMP"):
        dsets.open_ocean_atlas(FIXTURE)  # a COADS file has no TEMP


def test_coarsen_truth_rational_factor_is_an_exact_area_mean() -> None:
    fine = dsets.synthetic_sst(60, 60, periods=2, seed=3, land=False)
    coarse = coarsen_truth(fine, 2.5)
    assert coarse.sst.shape == (2, 24, 24)
    # cell centres: edge + (k + 1/2) * 2.5 * fine step, exactly regular
    step = float(fine.lat[1] - fine.lat[0])
    edge = float(fine.lat[0]) - step / 2
    np.testing.assert_allclose(coarse.lat, edge + (np.arange(24) + 0.5) * 2.5 * step, atol=1e-9)
    # coarse cell 0 covers fine cells 0, 1 fully and half of cell 2 (in each direction)
    w = np.array([1.0, 1.0, 0.5])
    block = fine.sst.values[0, :3, :3].astype("float64")
    expected = (w[:, None] * w[None, :] * block).sum() / w.sum() ** 2
    assert float(coarse.sst[0, 0, 0]) == pytest.approx(expected, abs=1e-5)


# -- real-world ingredients ------------------------------------------------------------------


def _climatology(values: np.ndarray | float = 20.0) -> xr.DataArray:
    lat, lon = np.arange(-89.0, 90.0, 2.0), np.arange(1.0, 360.0, 2.0)
    data = np.broadcast_to(np.asarray(values, dtype="float64"), (12, lat.size, lon.size)).copy()
    return xr.DataArray(
        data,
        dims=("month", "lat", "lon"),
        coords={"month": np.arange(1, 13), "lat": lat, "lon": lon},
    )


QUIET = dict(eddy_std=0.0, front_strength=0.0, heatwaves=False, periods=3)


def test_background_replaces_the_analytic_gradient() -> None:
    ds = dsets.synthetic_sst(16, 16, land=False, background=_climatology(20.0), **QUIET)
    np.testing.assert_allclose(ds.sst.values, 20.0, atol=1e-5)


def test_background_is_interpolated_in_time_between_mid_months() -> None:
    months = np.arange(12, dtype="float64")[:, None, None] + 10.0  # Jan 10 .. Dec 21 degC
    ds = dsets.synthetic_sst(
        4, 4, land=False, background=_climatology(months), start="2021-01-16", **QUIET
    )
    np.testing.assert_allclose(ds.sst.values[0], 10.0, atol=0.05)  # mid-January
    # land in the climatology is filled from the nearest ocean (no hole at a real coast)
    holes = _climatology(15.0)
    holes[:, 60:, :] = np.nan
    filled = dsets.synthetic_sst(4, 4, land=False, background=holes, **QUIET)
    np.testing.assert_allclose(filled.sst.values, 15.0, atol=1e-5)


def test_eddy_energy_follows_eddy_std() -> None:
    quiet = dsets.synthetic_sst(32, 32, land=False, heatwaves=False, eddy_std=0.05)
    loud = dsets.synthetic_sst(32, 32, land=False, heatwaves=False, eddy_std=0.8)
    smooth = dsets.synthetic_sst(32, 32, land=False, heatwaves=False, eddy_std=0.0)
    noise_quiet = float((quiet.sst - smooth.sst).std())
    noise_loud = float((loud.sst - smooth.sst).std())
    assert noise_loud / noise_quiet == pytest.approx(16.0, rel=1e-3)


def test_real_land_mask_and_upwelling() -> None:
    lat, lon = np.linspace(30.25, 41.75, 24), np.linspace(120.25, 131.75, 24)
    land = xr.DataArray(
        np.broadcast_to(lon > 129.0, (24, 24)), dims=("lat", "lon"), coords={"lat": lat, "lon": lon}
    )
    plain = dsets.synthetic_sst(24, 24, land_mask=land, start="2021-07-15", **QUIET)
    cold = dsets.synthetic_sst(24, 24, land_mask=land, upwelling=2.0, start="2021-07-15", **QUIET)
    assert np.isnan(plain.sst.values[:, :, 18:]).all()  # the given coast, not a random one
    assert np.isfinite(plain.sst.values[:, :, :18]).all()
    diff = (cold.sst - plain.sst).values[0]
    assert np.all(diff[:, 17] < -0.5)  # summer upwelling at the coast
    assert np.all(np.abs(diff[:, 0]) < np.abs(diff[:, 17]) / 10)  # decays offshore


def test_background_must_be_monthly() -> None:
    with pytest.raises(CoordinateError, match=r"isel\(depth=0\)"):
        dsets.synthetic_sst(4, 4, background=_climatology().expand_dims(depth=[0.0, 10.0]))
    with pytest.raises(OptionError, match="eddy_std must be a finite number >= 0"):
        dsets.synthetic_sst(4, 4, eddy_std=-1.0)
