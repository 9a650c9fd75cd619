"""Property tests of ``downscale`` over random grids, land masks, dtypes and chunkings.

For any regular grid (size, spacing, ascending or descending latitude, longitude
offset, global or regional), any land mask, float32 or float64 data and any dask
chunking:

* the input is never modified (values, coordinates, attrs, encodings);
* every fine ocean cell (one whose coarse cell is finite) is finite, every other is NaN
  (an infinite input value counts as missing, like NaN);
* the fine coordinates and bounds are exactly the coarse cells divided by the factor;
* the provenance attributes are present and the input's attributes kept;
* the chunked (lazy) result equals the in-memory result to 1e-4 degC.

Fixed-field chunking cases and tile sizes are in tests/test_downscale.py
(``test_chunk_independence``); here the grid itself is random.
"""

from __future__ import annotations

import copy
from functools import partial

import dask
import numpy as np
import pytest
import xarray as xr
from helpers import make_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xsstsr
from xsstsr.models import Model

TOL = 1e-4


#: a generator with a ~10 pixel halo and a correction far from zero
small_model = partial(make_model, window=2, seed=5, scale=0.05, small_halo=True, tag="prop")


@pytest.fixture(scope="module")
def models() -> dict[float, Model]:
    return {4.0: small_model(4, 1), 2.5: small_model(5, 2)}


@st.composite
def grids(draw):
    """A random SST field on a random regular grid, with random land and gaps."""
    factor = draw(st.sampled_from([4.0, 2.5]))
    pool = 2 if factor == 2.5 else 1
    step = draw(st.sampled_from([0.1, 0.25, 1.0, 15.0]))
    nt = draw(st.integers(1, 3))
    if step == 15.0:  # a global grid: the longitudes wrap around
        ny, nx = 12, 24
    else:
        ny = pool * draw(st.integers(2 // pool + 1, 22 // pool))
        nx = pool * draw(st.integers(2 // pool + 1, 22 // pool))
    lat0 = draw(st.floats(-60, 60 - ny * step)) if step < 15 else -90.0
    lon0 = draw(st.sampled_from([-180.0, -7.3, 0.0, 100.0, 350.0]))
    lat = lat0 + step / 2 + step * np.arange(ny)
    lon = lon0 + step / 2 + step * np.arange(nx)
    if draw(st.booleans()):
        lat = lat[::-1]  # descending latitude (north to south)

    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    base = 20.0 + 5 * np.sin(yy / 5.0) + 2 * np.cos(xx / 3.0)
    values = base[None] + rng.normal(0, 0.5, (nt, ny, nx))
    land = rng.random((ny, nx)) < draw(st.sampled_from([0.0, 0.1, 0.4]))
    values[:, land] = np.nan
    if draw(st.booleans()):  # a transient gap (cloud) at one time
        t, y, x = rng.integers(nt), rng.integers(ny), rng.integers(nx)
        values[t, y : y + 2, x : x + 3] = np.nan
    if draw(st.booleans()):  # a bad value (a wrong fill value): treated as missing
        values[rng.integers(nt), rng.integers(ny), rng.integers(nx)] = rng.choice([np.inf, -np.inf])
    values[0, 0, 0] = 18.0  # never all NaN
    dtype = draw(st.sampled_from(["float32", "float64"]))
    kelvin = draw(st.booleans())
    da = xr.DataArray(
        (values + (273.15 if kelvin else 0.0)).astype(dtype),
        dims=("time", "lat", "lon"),
        coords={
            "time": np.datetime64("2022-03-01") + np.arange(nt).astype("timedelta64[D]"),
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        name="sst",
        attrs={"standard_name": "sea_surface_temperature", "units": "K" if kelvin else "degC"},
    )
    if nt == 1 and draw(st.booleans()):
        da = da.isel(time=0)  # a single 2-D map (time becomes a scalar coordinate)
    chunks = {dim: draw(st.integers(1, size)) for dim, size in da.sizes.items()}
    as_dataset = draw(st.booleans())
    return factor, da, chunks, as_dataset


def fine_expected(coarse: np.ndarray, upsample: int, pool: int) -> np.ndarray:
    """The fine centres, computed independently of the library: edges then midpoints."""
    step = (coarse[-1] - coarse[0]) / (coarse.size - 1)
    edges = (
        coarse[0]
        - step / 2
        + np.arange(coarse.size * upsample // pool + 1) * step * pool / upsample
    )
    return (edges[:-1] + edges[1:]) / 2


def coarse_of(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Index of the coarse cell that holds each fine centre (a centre on a coarse cell
    boundary, at factor 2.5, goes to the upper cell in ascending order: descending data
    are downscaled in ascending order and flipped back)."""
    if coarse[0] > coarse[-1]:
        return coarse.size - 1 - coarse_of(fine[::-1], coarse[::-1])[::-1]
    step = (coarse[-1] - coarse[0]) / (coarse.size - 1)
    return np.floor((fine - (coarse[0] - step / 2)) / step + 1e-9).astype(int)


def unchanged(obj, before) -> None:
    xr.testing.assert_identical(obj, before)
    assert obj.attrs == before.attrs
    names = obj.variables if isinstance(obj, xr.Dataset) else obj.coords
    for name in names:
        assert obj[name].attrs == before[name].attrs
        assert obj[name].encoding == before[name].encoding


@settings(
    max_examples=14,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(grid=grids())
def test_downscale_properties(models, grid):
    factor, da, chunks, as_dataset = grid
    model = models[factor]
    up, pool = model.upsample, model.pool
    obj = da.to_dataset().assign_attrs(title="t") if as_dataset else da
    before = copy.deepcopy(obj)

    eager = xsstsr.downscale(obj, model=model, device="cpu")
    lazy = xsstsr.downscale(obj.chunk(chunks), model=model, device="cpu")
    with dask.config.set(scheduler="synchronous"):
        lazy = lazy.compute()
    unchanged(obj, before)

    out = eager["sst"] if as_dataset else eager
    lazy_out = lazy["sst"] if as_dataset else lazy
    assert out.dims == da.dims
    assert out.dtype == da.dtype

    # coordinates: exact, with the input's attributes; other coordinates kept
    for dim in ("lat", "lon"):
        expected = fine_expected(da[dim].values, up, pool)
        np.testing.assert_allclose(
            out[dim].values, expected, rtol=0, atol=1e-9 * abs(expected).max()
        )
        kept = {k: v for k, v in out[dim].attrs.items() if k != "bounds"}  # Datasets add it
        assert kept == da[dim].attrs
        np.testing.assert_array_equal(lazy_out[dim].values, out[dim].values)
    np.testing.assert_array_equal(out["time"].values, da["time"].values)
    if as_dataset:
        for dim in ("lat", "lon"):
            bounds = eager[f"{dim}_bnds"].values
            np.testing.assert_allclose(bounds.mean(axis=1), eager[dim].values, atol=1e-9 * 360)
            np.testing.assert_allclose(bounds[1:, 0], bounds[:-1, 1], atol=1e-9 * 360)

    # ocean cells finite, land and gaps NaN (following the coarse cells)
    iy = coarse_of(out["lat"].values, da["lat"].values)
    ix = coarse_of(out["lon"].values, da["lon"].values)
    assert iy.min() == 0
    assert iy.max() == da.sizes["lat"] - 1
    ocean = np.isfinite(da.values)[..., iy, :][..., ix]
    values = out.values
    assert np.isfinite(values[ocean]).all()
    assert np.isnan(values[~ocean]).all()

    # attributes: provenance stamped, the input's kept
    attrs = out.attrs
    assert attrs["standard_name"] == "sea_surface_temperature"
    assert attrs["units"] == da.attrs["units"]
    assert attrs["xsstsr_model"] == model.name
    assert attrs["xsstsr_model_sha256"] == model.sha256
    assert attrs["xsstsr_factor"] == factor
    assert attrs["xsstsr_version"] == xsstsr.__version__
    history = eager.attrs["history"]
    assert "downscale(factor=" in history
    assert model.sha256[:12] in history
    if as_dataset:
        assert eager.attrs["title"] == f"t (downscaled x{factor:g} by xsstsr {model.name})"

    # chunking does not change the result
    np.testing.assert_array_equal(np.isnan(lazy_out.values), np.isnan(values))
    diff = np.abs(lazy_out.values.astype("float64") - values.astype("float64"))
    assert np.nanmax(diff, initial=0.0) <= TOL
