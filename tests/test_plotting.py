"""Plots return a Figure, never show it, and draw what they say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import make_model, sst_field

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import xsstsr  # noqa: E402
from xsstsr import plotting  # noqa: E402
from xsstsr.errors import (  # noqa: E402
    GridError,
    InputDataError,
    InputTypeError,
    ModelMismatchError,
    OptionError,
    StationsError,
)
from xsstsr.grid import coarsen_truth  # noqa: E402
from xsstsr.models import Model  # noqa: E402

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
    assert titles(fig) == [
        "coarse input (8x8)",
        "downscaled (32x32)",
        "truth (32x32)",
        "downscaled - truth (32x32)",
    ]
    assert fig.get_suptitle() == "time = 2021-01-01"
    colorbars = [ax.get_ylabel() for ax in fig.axes if not ax.get_title()]
    assert colorbars == ["SST (degC)", "difference (K)"]


def test_plot_compare_shows_every_panel_at_the_same_step(
    hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray
) -> None:
    """Each panel once took its own nearest step: a truth of other dates was drawn under
    the downscaled field's date, and their difference was a change of days."""
    fig = hi.isel(time=[0, 1]).sstsr.plot_compare(truth=truth, coarse=coarse, time="2021-01-02")
    assert fig.get_suptitle() == "time = 2021-01-02"
    with pytest.raises(InputDataError, match=r"truth panel has no time step at 2021-01-02"):
        hi.isel(time=[0, 1]).sstsr.plot_compare(truth=truth.isel(time=[3]), time="2021-01-02")
    with pytest.raises(InputDataError, match="coarse input panel"):
        hi.isel(time=[0, 1]).sstsr.plot_compare(coarse=coarse.isel(time=[2, 3]), time="2021-01-02")


def map_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.get_title()]


def test_plot_compare_draws_as_the_field_does(
    hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray
) -> None:
    """Degrees on the axes, thermal SST, grey land, and the error on a scale centred on 0."""
    fig = hi.sstsr.plot_compare(coarse=coarse, truth=truth)
    axes = map_axes(fig)
    assert len(axes) == 4
    assert [ax.get_xlabel() for ax in axes] == ["longitude (degrees east)"] * 4
    assert axes[0].get_ylabel() == "latitude (degrees north)"
    grey = (0.75, 0.75, 0.75, 1.0)
    for ax in axes[:3]:
        mesh = ax.collections[0]
        assert mesh.get_cmap().name == "thermal"
        assert tuple(mesh.get_cmap().get_bad()) == grey
    diff = axes[3].collections[0]
    assert diff.get_cmap().name == "balance"
    assert tuple(diff.get_cmap().get_bad()) == grey
    low, high = diff.get_clim()
    assert high == -low > 0
    expected = hi.isel(time=0).values - truth.isel(time=0).values
    np.testing.assert_allclose(diff.get_array().reshape(expected.shape), expected, rtol=1e-6)
    land = np.isnan(truth.isel(time=0).values)
    assert land.any()
    assert np.ma.getmaskarray(diff.get_array()).reshape(land.shape)[land].all()


def test_plot_compare_without_cmocean(
    hi: xr.DataArray, truth: xr.DataArray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "cmocean", None)  # import cmocean: ImportError
    fig = xsstsr.plot_compare(hi, truth=truth)
    axes = map_axes(fig)
    assert [ax.collections[0].get_cmap().name for ax in axes] == ["viridis"] * 2 + ["RdBu_r"]
    assert tuple(axes[0].collections[0].get_cmap().get_bad()) == (0.75, 0.75, 0.75, 1.0)
    fig = xsstsr.plot_compare(hi, truth=truth, cmap="magma", diff_cmap="PuOr_r")
    assert [ax.collections[0].get_cmap().name for ax in map_axes(fig)][-2:] == ["magma", "PuOr_r"]


def test_plot_compare_difference_against_the_baseline(
    hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray
) -> None:
    fig = xsstsr.plot_compare(hi, coarse, baseline="nearest")
    assert titles(fig)[-1] == "downscaled - nearest (32x32)"
    near = xsstsr.evaluation.nearest_baseline(coarse, like=hi).isel(time=0).values
    diff = map_axes(fig)[-1].collections[0].get_array().reshape(near.shape)
    np.testing.assert_allclose(diff, hi.isel(time=0).values - near, rtol=1e-6)
    fig = xsstsr.plot_compare(hi, coarse)  # nothing to subtract: no difference panel
    assert titles(fig) == ["coarse input (8x8)", "downscaled (32x32)"]
    with pytest.raises(GridError, match="difference panel"):
        xsstsr.plot_compare(hi, truth=truth.isel(lon=slice(1, None)))


def test_plot_compare_older_calling_form_and_baseline(
    hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray
) -> None:
    fig = xsstsr.plot_compare(coarse, result=hi, truth=truth, baseline="nearest", time="2021-01-03")
    assert titles(fig) == [
        "coarse input (8x8)",
        "nearest (32x32)",
        "downscaled (32x32)",
        "truth (32x32)",
        "downscaled - truth (32x32)",
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
    with pytest.raises(OptionError, match="cmap must be a colormap"):
        xsstsr.plot_compare(hi, diff_cmap=3)


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


def test_plot_spectrum_averages_the_same_rows_for_every_fine_field(
    hi: xr.DataArray, coarse: xr.DataArray, truth: xr.DataArray
) -> None:
    """Land in the truth's first rows and in the result's last: each line is drawn from the
    rows both hold whole (each once used its own, different latitudes)."""
    wet_truth = truth.where(truth["lat"] > truth["lat"][3])
    wet_hi = hi.where(hi["lat"] < hi["lat"][-4])
    fig = wet_hi.sstsr.plot_spectrum(coarse=coarse, truth=wet_truth)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    common = wet_hi.where(wet_truth.notnull())
    for label, field in (("downscaled", common), ("truth", wet_truth.where(common.notnull()))):
        expected = xsstsr.evaluation.zonal_spectrum(field, nan="skip")
        np.testing.assert_allclose(lines[label].get_ydata(), expected.values, rtol=1e-6)


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
