"""Plots return a Figure, never show it, and draw what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from conftest import make_model, sst_field

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import xsstsr  # noqa: E402
from xsstsr import plotting  # noqa: E402
from xsstsr.datasets import coarsen_truth  # noqa: E402
from xsstsr.errors import (  # noqa: E402
    InputDataError,
    InputTypeError,
    ModelMismatchError,
    OptionError,
    StationsError,
)
from xsstsr.model import Model  # noqa: E402

FINE = dict(ny=32, nx=32, step=0.0625, lat0=33.0, lon0=124.0)


@pytest.fixture(autouse=True)
def _no_show_and_close(monkeypatch: pytest.MonkeyPatch):
    def fail(*args, **kwargs):
        raise AssertionError("plt.show() must never be called")

    monkeypatch.setattr(plt, "show", fail)
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def truth() -> xr.DataArray:
    return sst_field(nt=4, seed=1, **FINE)


@pytest.fixture(scope="module")
def coarse(truth: xr.DataArray) -> xr.DataArray:
    return coarsen_truth(truth, 4)


@pytest.fixture(scope="module")
def hi(coarse: xr.DataArray) -> xr.DataArray:
    return xsstsr.downscale(coarse, model=make_model(4, 1))


@pytest.fixture(scope="module")
def stations(truth: xr.DataArray) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ids = ["A", "B", "C"]
    lat = truth.lat.values[[12, 20, 28]]
    lon = truth.lon.values[[20, 14, 26]]
    nt = truth.sizes["time"]
    return pd.DataFrame(
        {
            "station": np.repeat(ids, nt)[:-1],  # C has one observation less
            "time": np.tile(truth.time.values, 3)[:-1],
            "lat": np.repeat(lat, nt)[:-1],
            "lon": np.repeat(lon, nt)[:-1],
            "sst": 20 + rng.normal(0, 1, 3 * nt)[:-1],
        }
    )


def titles(fig: Figure) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_visible() and ax.get_title()]


def test_exported_from_the_package() -> None:
    for name in ("plot_compare", "plot_spectrum", "plot_stations"):
        assert getattr(xsstsr, name) is getattr(plotting, name)
        assert callable(getattr(xr.Dataset.sstsr, name))


# -- plot_compare ------------------------------------------------------------------------


def test_plot_compare_panels(hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray) -> None:
    fig = hi.sstsr.plot_compare(coarse=coarse, truth=truth)
    assert isinstance(fig, Figure)
    assert titles(fig) == ["coarse input (8x8)", "downscaled (32x32)", "truth (32x32)"]
    assert fig.get_suptitle() == "time = 2021-01-01"
    colorbar = fig.axes[-1]
    assert colorbar.get_ylabel() == "SST (degC)"


def test_plot_compare_older_calling_form_and_baseline(
    hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray
) -> None:
    fig = xsstsr.plot_compare(coarse, result=hi, truth=truth, baseline="nearest", time="2021-01-03")
    assert titles(fig) == [
        "coarse input (8x8)",
        "nearest (32x32)",
        "downscaled (32x32)",
        "truth (32x32)",
    ]
    assert fig.get_suptitle() == "time = 2021-01-03"
    with pytest.raises(InputTypeError, match="not both"):
        xsstsr.plot_compare(coarse, coarse, result=hi)
    with pytest.raises(OptionError, match="pass coarse="):
        xsstsr.plot_compare(hi, baseline="bicubic")
    with pytest.raises(OptionError, match="baseline must be one of"):
        xsstsr.plot_compare(hi, coarse, baseline="cubic")


def test_plot_compare_converts_kelvin(hi: xr.DataArray, truth: xr.DataArray) -> None:
    kelvin = (truth + 273.15).assign_attrs(units="K")
    fig = xsstsr.plot_compare(hi, truth=kelvin)
    mesh = fig.axes[1].collections[0]
    assert np.nanmax(mesh.get_array()) < 40  # degC, not K
    assert mesh.get_clim()[1] < 40


def test_plot_compare_all_nan(hi: xr.DataArray) -> None:
    with pytest.raises(InputDataError, match="pick another one with time="):
        xsstsr.plot_compare(hi * np.nan)


def test_plot_compare_bad_time_and_cmap(hi: xr.DataArray) -> None:
    with pytest.raises(OptionError, match="time='2021-01-01'"):
        xsstsr.plot_compare(hi, time="not a date")
    with pytest.raises(OptionError, match="time='2021-01-01'"):
        xsstsr.plot_compare(hi, time=3)
    with pytest.raises(OptionError, match="cmap='RdYlBu_r'"):
        xsstsr.plot_compare(hi, cmap="no-such-map")


def test_plot_compare_dataset(hi: xr.DataArray, coarse: xr.DataArray) -> None:
    fig = hi.to_dataset().sstsr.plot_compare(coarse=coarse.to_dataset(), figsize=(6, 3))
    assert tuple(fig.get_size_inches()) == (6, 3)


# -- plot_spectrum ----------------------------------------------------------------------


def test_plot_spectrum_lines(hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray) -> None:
    fig = hi.sstsr.plot_spectrum(coarse=coarse, truth=truth)
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["coarse input", "bicubic", "downscaled", "truth"]
    assert ax.get_xscale() == "log"
    assert ax.get_yscale() == "log"
    assert "cycles per degree" in ax.get_xlabel()
    nyquist = [line for line in ax.get_lines() if line.get_label().startswith("_")]
    assert nyquist
    assert nyquist[0].get_xdata()[0] == pytest.approx(2.0)
    result_line = ax.get_lines()[2]
    assert "ocean only" in ax.get_title()  # every field has rows without land
    expected = xsstsr.evaluation.zonal_spectrum(hi, nan="skip")
    np.testing.assert_allclose(result_line.get_ydata(), expected.values)


def test_plot_spectrum_options(hi: xr.DataArray, coarse: xr.DataArray) -> None:
    fig, ax = plt.subplots()
    out = xsstsr.plot_spectrum(hi, coarse=coarse, baseline=None, units="km", ax=ax)
    assert out is fig
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert labels == ["coarse input", "downscaled"]
    assert "cycles per km" in ax.get_xlabel()
    fig = xsstsr.plot_spectrum(hi.chunk(time=1))
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["downscaled"]
    with pytest.raises(OptionError, match="units"):
        xsstsr.plot_spectrum(hi, units="miles")
    with pytest.raises(OptionError, match="nan"):
        xsstsr.plot_spectrum(hi, nan="zero")


# -- plot_stations -------------------------------------------------------------------------


def test_plot_stations(
    hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray, stations: pd.DataFrame
) -> None:
    fig = hi.sstsr.plot_stations(stations, n=2, coarse=coarse, truth=truth)
    shown = titles(fig)
    assert [t.split()[0] for t in shown] == ["A", "B"]  # the most observations, then by name
    assert "RMSE (K): downscaled" in shown[0]
    assert "bicubic" in shown[0]
    assert "truth" in shown[0]
    ax = next(ax for ax in fig.axes if ax.get_visible())
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["observed", "downscaled", "bicubic", "truth"]
    observed = ax.get_lines()[0].get_ydata()
    np.testing.assert_allclose(observed, stations.loc[stations.station == "A", "sst"])


def test_plot_stations_choices(hi: xr.DataArray, stations: pd.DataFrame) -> None:
    fig = xsstsr.plot_stations(hi, stations, station_ids=["C"])
    assert [t.split()[0] for t in titles(fig)] == ["C"]
    fig = xsstsr.plot_stations(hi, stations, n=3)
    assert len(titles(fig)) == 3
    assert sum(not ax.get_visible() for ax in fig.axes) == 1
    with pytest.raises(StationsError, match="not in the table"):
        xsstsr.plot_stations(hi, stations, station_ids=["Z"])
    with pytest.raises(OptionError, match="positive integer"):
        xsstsr.plot_stations(hi, stations, n=0)


# -- plot_history --------------------------------------------------------------------------


def test_plot_history() -> None:
    model = make_model(4, 1)
    steps = np.arange(1, 11)
    model.history = pd.DataFrame(
        {
            "step": steps,
            "pixel": 1 / steps,
            "station": 0.5 / steps,
            "wasserstein": np.linspace(1, 0, 10),
            "adversarial": np.linspace(0, 1, 10),
            "val_rmse": np.where(steps % 5 == 0, 0.3, np.nan),
            "val_rmse_bicubic": np.where(steps % 5 == 0, 0.4, np.nan),
        }
    )
    fig = model.plot_history()
    assert titles(fig) == ["point-wise losses", "WGAN-GP", "validation RMSE (degC)"]
    val_lines = fig.axes[2].get_lines()
    np.testing.assert_allclose(val_lines[0].get_xdata(), [5, 10])


def test_plot_history_needs_history() -> None:
    with pytest.raises(ModelMismatchError, match=r"no training history.*xsstsr\.fit"):
        plotting.plot_history(Model(make_model(4, 1).state, make_model(4, 1).metadata))
    with pytest.raises(InputTypeError, match="xsstsr Model"):
        plotting.plot_history("weights.safetensors")  # type: ignore[arg-type]
