"""Station tables: reading, checking, dropping, time matching and bilinear sampling."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from xsstsr.errors import StationsError
from xsstsr.stations import (
    STATION_COLUMNS,
    align_to_times,
    drop_outside,
    read_stations,
    sample_field,
)

TIMES = pd.date_range("2020-01-01", periods=4, freq="D")


def table(**overrides: object) -> pd.DataFrame:
    """Two fixed stations, A and B, observed daily (degC)."""
    frame = pd.DataFrame(
        {
            "station": np.repeat(["A", "B"], 4),
            "time": np.tile(TIMES, 2),
            "lat": np.repeat([35.0, 36.5], 4),
            "lon": np.repeat([125.0, 127.25], 4),
            "sst": np.arange(8, dtype="float64") + 10.0,
        }
    )
    for key, value in overrides.items():
        frame[key] = value
    return frame


# -- read_stations ---------------------------------------------------------------------


def test_read_stations_clean_table() -> None:
    out = read_stations(table())
    assert list(out.columns) == list(STATION_COLUMNS)
    assert out["station"].tolist() == ["A"] * 4 + ["B"] * 4
    assert out["time"].dtype.kind == "M"
    assert out["sst"].dtype == np.float64
    np.testing.assert_array_equal(out["sst"], np.arange(8) + 10.0)


def test_read_stations_column_mapping() -> None:
    raw = table().rename(
        columns={"station": "id", "time": "date", "lat": "y", "lon": "x", "sst": "temp"}
    )
    raw["date"] = raw["date"].dt.strftime("%Y-%m-%d")  # dates as strings are parsed
    raw["id"] = np.repeat([7, 8], 4)  # ids become strings
    out = read_stations(
        raw, columns={"station": "id", "time": "date", "lat": "y", "lon": "x", "sst": "temp"}
    )
    assert list(out.columns) == list(STATION_COLUMNS)
    assert sorted(out["station"].unique()) == ["7", "8"]
    assert out["time"].iloc[0] == TIMES[0]
    np.testing.assert_array_equal(out["lat"].unique(), [35.0, 36.5])


def test_read_stations_missing_column() -> None:
    with pytest.raises(StationsError, match="'sst'") as info:
        read_stations(table().drop(columns="sst"))
    assert "columns=" in str(info.value)
    with pytest.raises(StationsError, match="'temp'"):
        read_stations(table(), columns={"sst": "temp"})


def test_read_stations_nan_positions() -> None:
    frame = table()
    frame.loc[frame["station"] == "B", "lat"] = np.nan
    with pytest.raises(StationsError, match=r"NaN positions") as info:
        read_stations(frame)
    assert "'B'" in str(info.value)


def test_read_stations_duplicated_rows() -> None:
    frame = pd.concat([table(), table().iloc[[2]]], ignore_index=True)
    with pytest.raises(StationsError, match="duplicated") as info:
        read_stations(frame)
    assert "drop_duplicates" in str(info.value)


def test_read_stations_other_errors() -> None:
    with pytest.raises(StationsError, match="DataFrame"):
        read_stations([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(StationsError, match="empty"):
        read_stations(table().iloc[:0])
    moving = table()
    moving.loc[1, "lon"] = 126.0
    with pytest.raises(StationsError, match="change position"):
        read_stations(moving)
    with pytest.raises(StationsError, match="swapped"):
        read_stations(table(lat=125.0, lon=35.0))
    with pytest.raises(StationsError, match="numeric"):
        read_stations(table(sst="warm"))
    with pytest.raises(StationsError, match="NaN"):
        read_stations(table(sst=np.nan))


def test_read_stations_drops_nan_values() -> None:
    frame = table()
    frame.loc[3, "sst"] = np.nan
    out = read_stations(frame)
    assert len(out) == 7
    assert out["sst"].notna().all()


def test_read_stations_kelvin() -> None:
    kelvin = table()
    kelvin["sst"] = kelvin["sst"] + 273.15
    out = read_stations(kelvin, units="K")
    np.testing.assert_allclose(out["sst"], np.arange(8) + 10.0, atol=1e-9)


def dsg(**sst_attrs: str) -> xr.Dataset:
    """A CF discrete-sampling-geometry timeSeries dataset with a station dimension."""
    values = np.arange(8, dtype="float64").reshape(2, 4) + 10.0
    return xr.Dataset(
        {
            "sst": (("station", "time"), values, dict(sst_attrs)),
            "lat": ("station", [35.0, 36.5]),
            "lon": ("station", [125.0, 127.25]),
        },
        coords={"station": ["A", "B"], "time": TIMES},
        attrs={"featureType": "timeSeries"},
    )


def test_read_stations_from_dataset() -> None:
    out = read_stations(dsg(units="degC"))
    expected = read_stations(table())
    pd.testing.assert_frame_equal(out, expected)


def test_read_stations_from_dataset_kelvin_and_mapping() -> None:
    ds = dsg(units="K")
    ds["sst"] = ds["sst"] + 273.15
    ds = ds.rename({"sst": "temp", "lat": "latitude", "lon": "longitude"})
    out = read_stations(ds, columns={"sst": "temp", "lat": "latitude", "lon": "longitude"})
    expected = read_stations(table())
    pd.testing.assert_frame_equal(out, expected, atol=1e-9)


def test_read_stations_from_dataset_without_station_coordinate() -> None:
    out = read_stations(dsg(units="degC").drop_vars("station"))
    assert sorted(out["station"].unique()) == ["0", "1"]
    assert len(out) == 8


def test_read_stations_dataset_errors() -> None:
    with pytest.raises(StationsError, match="'station' dimension"):
        read_stations(dsg().rename({"station": "site"}))
    with pytest.raises(StationsError, match="'lat'"):
        read_stations(dsg().drop_vars("lat"))


# -- drop_outside ----------------------------------------------------------------------

GRID_LAT = 34.125 + 0.25 * np.arange(16)  # cells cover 34.0 .. 38.0
GRID_LON = 124.125 + 0.25 * np.arange(16)  # cells cover 124.0 .. 128.0


def test_drop_outside_names_dropped_stations() -> None:
    frame = read_stations(
        pd.concat(
            [
                table(),
                table(station="FAR", lat=50.0).iloc[:4],
                table(station="WEST", lon=110.0).iloc[:4],
            ],
            ignore_index=True,
        )
    )
    with pytest.warns(UserWarning, match="outside the grid") as record:
        out = drop_outside(frame, GRID_LAT, GRID_LON, TIMES.values)
    message = str(record[0].message)
    assert "FAR" in message
    assert "WEST" in message
    assert "'A'" not in message
    assert sorted(out["station"].unique()) == ["A", "B"]


def test_drop_outside_on_land() -> None:
    ocean = np.ones((16, 16), dtype=bool)
    ocean[:6, :6] = False  # land under station A (35.0N, 125.0E)
    with pytest.warns(UserWarning, match=r"on land.*'A'"):
        out = drop_outside(read_stations(table()), GRID_LAT, GRID_LON, TIMES.values, ocean)
    assert out["station"].unique().tolist() == ["B"]


def test_drop_outside_keeps_everything_silently() -> None:
    frame = read_stations(table())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = drop_outside(frame, GRID_LAT, GRID_LON, TIMES.values, np.ones((16, 16), bool))
    assert len(out) == len(frame)


def test_drop_outside_everything_raises() -> None:
    frame = read_stations(table(lat=-20.0))
    with (
        pytest.raises(StationsError, match="no station is left"),
        pytest.warns(UserWarning, match="outside the grid"),
    ):
        drop_outside(frame, GRID_LAT, GRID_LON, TIMES.values)


def test_drop_outside_rows_outside_record() -> None:
    frame = read_stations(table())
    with pytest.warns(UserWarning, match="2 station row"):
        out = drop_outside(frame, GRID_LAT, GRID_LON, TIMES.values[:3])
    assert out["time"].max() == TIMES[2]


def test_drop_outside_wraps_longitude() -> None:
    frame = read_stations(table(lon=125.0 - 360.0))
    out = drop_outside(frame, GRID_LAT, GRID_LON, TIMES.values)
    np.testing.assert_allclose(out["lon"], 125.0)


def test_drop_outside_descending_latitude() -> None:
    ocean = np.ones((16, 16), dtype=bool)
    ocean[-6:, :6] = False  # with latitude descending, the south-west corner is the last rows
    with pytest.warns(UserWarning, match=r"on land.*'A'"):
        out = drop_outside(read_stations(table()), GRID_LAT[::-1], GRID_LON, TIMES.values, ocean)
    assert out["station"].unique().tolist() == ["B"]


# -- align_to_times --------------------------------------------------------------------


def test_align_to_times_nearest() -> None:
    obs = pd.DataFrame(
        {
            "station": ["S1", "S1", "S1", "S2", "S2", "S2"],
            "time": pd.to_datetime(
                [
                    "2020-01-01 11:00",  # nearest: Jan 1
                    "2020-01-02 13:00",  # nearest: Jan 3
                    "2020-01-03 02:00",  # also Jan 3: averaged with the previous one
                    "2019-12-31 13:00",  # 11 h before Jan 1: within half a step
                    "2020-01-04 11:00",  # 11 h after the last step: kept
                    "2020-01-05 00:00",  # a day after the last step: dropped
                ]
            ),
            "lat": [35.0] * 3 + [36.0] * 3,
            "lon": [125.0] * 6,
            "sst": [1.0, 2.0, 4.0, 10.0, 20.0, 99.0],
        }
    )
    ids, values = align_to_times(obs, TIMES.values)
    assert ids == ["S1", "S2"]
    assert values.shape == (4, 2)
    np.testing.assert_array_equal(values[:, 0], [1.0, np.nan, 3.0, np.nan])
    np.testing.assert_array_equal(values[:, 1], [10.0, np.nan, np.nan, 20.0])


def test_align_to_times_single_step() -> None:
    ids, values = align_to_times(read_stations(table()), TIMES.values[:1])
    assert ids == ["A", "B"]
    assert values.shape == (1, 2)
    assert np.isfinite(values).all()


# -- sample_field ----------------------------------------------------------------------


def linear_field(with_time: bool = True) -> xr.DataArray:
    lat = GRID_LAT
    lon = GRID_LON
    t = np.arange(TIMES.size, dtype="float64")
    values = 2.0 + 0.7 * lat[None, :, None] - 0.3 * lon[None, None, :] + 0.25 * t[:, None, None]
    field = xr.DataArray(
        values, dims=("time", "lat", "lon"), coords={"time": TIMES, "lat": lat, "lon": lon}
    )
    return field if with_time else field.isel(time=0, drop=True)


def exact(lat: np.ndarray, lon: np.ndarray, step: np.ndarray) -> np.ndarray:
    return 2.0 + 0.7 * lat - 0.3 * lon + 0.25 * step


def test_sample_field_bilinear_is_exact_on_linear_field() -> None:
    rng = np.random.default_rng(3)
    n = 6
    lat = rng.uniform(GRID_LAT[0], GRID_LAT[-1], n)
    lon = rng.uniform(GRID_LON[0], GRID_LON[-1], n)
    rows = [
        {
            "station": f"S{i}",
            "time": TIMES[k] + pd.Timedelta(hours=h),
            "lat": lat[i],
            "lon": lon[i],
            "sst": 0.0,
        }
        for i in range(n)
        for k, h in ((0, 0), (2, 5), (3, -7))  # observation times off the grid's steps
    ]
    frame = read_stations(pd.DataFrame(rows))
    out = sample_field(linear_field(), frame, "lat", "lon", "time")
    assert len(out) == len(frame)
    assert {"model", "sst", "station", "time"} <= set(out.columns)
    step = np.rint((out["time"] - TIMES[0]) / pd.Timedelta(days=1)).to_numpy()
    np.testing.assert_allclose(
        out["model"], exact(out["lat"].to_numpy(), out["lon"].to_numpy(), step), atol=1e-9
    )


def test_sample_field_without_time() -> None:
    frame = read_stations(table(lat=35.1, lon=126.33))
    out = sample_field(linear_field(with_time=False), frame, "lat", "lon", None)
    np.testing.assert_allclose(out["model"], exact(35.1, 126.33, 0.0), atol=1e-9)
    assert len(out) == len(frame)


def test_sample_field_drops_rows_far_from_every_step() -> None:
    """Days a field leaves out (a selection with a gap) are not scored against a step days
    away; the rows near a kept step are, in any order of the steps."""
    frame = read_stations(table())
    kept = linear_field().isel(time=[3, 1, 0])  # days 1, 2 and 4, stored backwards
    with pytest.warns(UserWarning, match="half a time step"):
        out = sample_field(kept, frame, "lat", "lon", "time")
    assert sorted(out["time"].dt.day.unique()) == [1, 2, 4]
    step = ((out["time"] - TIMES[0]) / pd.Timedelta(days=1)).to_numpy()
    np.testing.assert_allclose(
        out["model"], exact(out["lat"].to_numpy(), out["lon"].to_numpy(), step), atol=1e-9
    )


def test_sample_field_at_one_kept_time_scores_that_day_only() -> None:
    frame = read_stations(table())
    one = linear_field().isel(time=2)  # keeps time as a scalar coordinate
    with pytest.warns(UserWarning, match=r"12 hours.*drop_vars\('time'\)"):
        out = sample_field(one, frame, "lat", "lon", None)
    assert list(out["time"].dt.day.unique()) == [3]
    with pytest.raises(StationsError, match="within 12 hours"):
        sample_field(one, frame[frame["time"] != TIMES[2]], "lat", "lon", None)


def test_sample_field_interpolates_across_the_seam_of_a_global_grid() -> None:
    """A station between a global grid's last and first columns (lon 359 and 1) is ocean
    on both sides: it is scored, from both columns, not left out as outside the axis."""
    lon = np.arange(1.0, 360.0, 2.0)
    lat = np.array([-1.0, 1.0])
    values = np.broadcast_to(np.arange(lon.size, dtype="float64"), (TIMES.size, 2, lon.size))
    field = xr.DataArray(
        values, dims=("time", "lat", "lon"), coords={"time": TIMES, "lat": lat, "lon": lon}
    )
    frame = read_stations(table(lat=0.0, lon=np.repeat([0.0, -0.5], 4)))
    out = sample_field(field, frame, "lat", "lon", "time")
    last = float(lon.size - 1)
    expected = np.repeat([0.5 * last, 0.75 * last], 4)  # 0.0 halfway, -0.5 a quarter of the way
    np.testing.assert_allclose(out.sort_values(["station", "time"])["model"], expected)


# -- times, units and layouts as real tables come ----------------------------------------


def test_timezone_aware_times_are_converted_to_utc() -> None:
    plain = read_stations(table())
    aware = table(time=np.tile(TIMES.tz_localize("UTC").tz_convert("Asia/Seoul"), 2))
    got = read_stations(aware)
    pd.testing.assert_frame_equal(got, plain, check_dtype=False)
    assert got["time"].dt.tz is None


def test_mixed_offsets_are_converted_to_utc() -> None:
    frame = table().iloc[:2].copy()
    frame["time"] = ["2020-01-01T09:00:00+09:00", "2020-01-02T00:00:00+00:00"]
    got = read_stations(frame)
    assert list(got["time"]) == [pd.Timestamp("2020-01-01"), pd.Timestamp("2020-01-02")]


def test_cftime_times_become_datetimes() -> None:
    cftime = pytest.importorskip("cftime")
    dates = [cftime.DatetimeNoLeap(2020, 1, d + 1) for d in range(4)]
    got = read_stations(table(time=np.tile(np.array(dates, dtype=object), 2)))
    pd.testing.assert_frame_equal(got, read_stations(table()), check_dtype=False)


def test_cftime_dates_outside_the_gregorian_calendar_are_refused() -> None:
    cftime = pytest.importorskip("cftime")
    dates = np.array([cftime.Datetime360Day(2020, 2, 30)] * 8, dtype=object)
    with pytest.raises(StationsError, match="to_datetimeindex"):
        read_stations(table(time=dates))


def test_kelvin_tables_need_units_k() -> None:
    kelvin = table(sst=table()["sst"] + 273.15)
    pd.testing.assert_frame_equal(
        read_stations(kelvin, units="K"), read_stations(table()), check_exact=False, atol=1e-9
    )
    with pytest.raises(StationsError, match=r"look like kelvin.*units='K'"):
        read_stations(kelvin)
    with pytest.raises(StationsError, match="look like degC"):
        read_stations(table(), units="K")


def test_dataset_made_from_the_table_the_natural_way() -> None:
    frame = table().iloc[[0, 1, 2, 5, 6]]  # B lacks some days: NaN holes in (station, time)
    ds = frame.set_index(["station", "time"]).to_xarray()
    assert ds["lat"].dims == ("station", "time")
    pd.testing.assert_frame_equal(read_stations(ds), read_stations(frame), check_dtype=False)


def test_moving_station_in_a_dataset_is_still_refused() -> None:
    frame = table()
    frame.loc[1, "lat"] = 35.5  # station A moves on its second day
    ds = frame.set_index(["station", "time"]).to_xarray()
    with pytest.raises(StationsError, match="change position over time"):
        read_stations(ds)
