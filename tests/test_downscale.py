"""Tests of xsstsr.downscale and the ``.sstsr`` accessor: results, laziness, chunking,
schedulers, land, coordinates, units, extra dims, metadata and model resolution.

The generators are made here (a small architecture, so that fields of a few dozen
pixels can be split into chunks wider than the halo) or come from conftest.
"""

from __future__ import annotations

import copy
import hashlib
import re
import warnings
from functools import partial
from pathlib import Path

import cloudpickle
import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr
from helpers import DATA, counting_scheduler, make_model, sst_field
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xsstsr
from xsstsr.evaluation import bicubic_baseline
from xsstsr.inference import cached_models, register
from xsstsr.models import Model

TOL = 1e-4  # K or degC: tiled vs whole-field inference


#: generators with a ~10-pixel halo and a correction far from zero
small_model = partial(make_model, seed=1, scale=0.05, small_halo=True, tag="small")


@pytest.fixture(scope="module")
def m4() -> Model:
    return small_model(4, 1)


@pytest.fixture(scope="module")
def m25() -> Model:
    return small_model(5, 2)


@pytest.fixture(scope="module")
def m25c() -> Model:
    return small_model(5, 2, conserve=True)


@pytest.fixture(scope="module")
def m4s() -> Model:
    """A generator that scales its inputs and correction by the local RMS of the anomalies."""
    return small_model(4, 1, architecture={"scale_radius": 3}, name="small-x4-scaled")


def run(obj, model, **kwargs):
    kwargs.setdefault("device", "cpu")
    return xsstsr.downscale(obj, model=model, **kwargs)


def coarse_index(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Index of the coarse cell whose extent holds each fine centre (edges go up)."""
    step = coarse[1] - coarse[0]
    edge = coarse[0] - step / 2
    return np.floor((fine - edge) / step + 1e-9).astype(int)


def expected_nan(coarse: xr.DataArray, fine: xr.DataArray) -> np.ndarray:
    """NaN pattern on the fine grid implied by the coarse NaN cells (time, lat, lon)."""
    iy = coarse_index(fine["lat"].values, coarse["lat"].values)
    ix = coarse_index(fine["lon"].values, coarse["lon"].values)
    return np.isnan(coarse.values)[..., iy, :][..., ix]


def assert_close_nan(a, b, tol: float = TOL) -> None:
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    assert np.max(np.abs(a[ok] - b[ok])) <= tol


# -- accessor and API ---------------------------------------------------------------------


def test_accessor_registered_and_types(m4):
    da = sst_field()
    assert isinstance(da.sstsr, xsstsr.accessor.SSTSRAccessor)
    assert isinstance(da.to_dataset().sstsr, xsstsr.accessor.SSTSRAccessor)

    out = da.sstsr.downscale(model=m4, device="cpu")
    assert isinstance(out, xr.DataArray)
    assert out.name == "sst"
    assert out.dims == ("time", "lat", "lon")
    assert out.shape == (6, 96, 128)

    ds = da.to_dataset()
    ds["note"] = xr.DataArray(np.arange(6.0), dims="time")  # not on the grid: kept
    out_ds = ds.sstsr.downscale(model=m4, device="cpu")
    assert isinstance(out_ds, xr.Dataset)
    assert set(out_ds.data_vars) == {"sst", "note"}
    np.testing.assert_array_equal(out_ds["note"].values, np.arange(6.0))
    assert out_ds["lat_bnds"].dims == ("lat", "bnds")
    assert out_ds["lon_bnds"].dims == ("lon", "bnds")
    assert out_ds["lat_bnds"].shape == (96, 2)
    assert out_ds["lat"].attrs["bounds"] == "lat_bnds"
    assert out_ds["lon"].attrs["bounds"] == "lon_bnds"
    np.testing.assert_array_equal(out_ds["sst"].values, out.values)

    by_function = xsstsr.downscale(da, model=m4, device="cpu")
    by_accessor_factor = da.sstsr.downscale(4, model=m4, device="cpu")
    for other in (by_function, by_accessor_factor):
        xr.testing.assert_identical(out.drop_attrs(), other.drop_attrs())
        a, b = dict(out.attrs), dict(other.attrs)
        assert a.pop("history").split(": ", 1)[1] == b.pop("history").split(": ", 1)[1]
        assert a == b


def test_result_is_bicubic_plus_small_correction(m4):
    """A sanity check of the numbers: the output's coarse means track the input."""
    da = sst_field(land=False)
    out = run(da, m4)
    coarse_mean = out.coarsen(lat=4, lon=4).mean().values
    assert np.nanmax(np.abs(coarse_mean - da.values)) < 1.0
    assert np.all(np.isfinite(out.values))
    # the correction branch is not zero: the output is not plain bicubic of the input
    zero = small_model(4, 1, scale=0.0)
    assert float(np.abs(run(da, zero) - out).max()) > 1e-3


# -- laziness and chunks ----------------------------------------------------------------------


def test_graph_building_computes_nothing(m4):
    calls = {"blocks": 0}

    def touch(block):
        calls["blocks"] += 1
        return block

    da = sst_field()
    data = dsa.from_array(da.values, chunks=(2, 12, 16)).map_blocks(
        touch, dtype="float32", meta=np.empty((0, 0, 0), dtype="float32")
    )
    lazy = da.copy(data=data)
    with counting_scheduler() as computes:
        out = run(lazy, m4)
        out_ds = run(lazy.to_dataset(), m4)
        assert computes == []
        assert calls == {"blocks": 0}
        assert isinstance(out.data, dsa.Array)
        assert isinstance(out_ds["sst"].data, dsa.Array)
        values = out.values
    assert len(computes) >= 1
    assert calls["blocks"] == 3 * 2 * 2  # each input block read exactly once
    assert_close_nan(values, run(da, m4).values)


def even(n: int) -> int:
    return n + n % 2


def boundaries(chunks) -> set[int]:
    return {int(b) for b in np.cumsum(chunks)}


@pytest.mark.parametrize("factor", [4, 2.5])
def test_output_chunks(m4, m25, factor):
    model = m4 if factor == 4 else m25
    h, f = model.halo, model.factor
    a, b = even(h), even(h + 4)
    da = sst_field(ny=a + b, nx=2 * a + b)

    def fine(*chunks):
        return tuple(round(c * f) for c in chunks)

    # chunks at least as wide as the halo are kept: lat/lon times the factor, time unchanged
    cases = [
        ({"time": 2, "lat": (a, b), "lon": (a, b, a)}, ((2, 2, 2), fine(a, b), fine(a, b, a))),
        ({"time": (3, 3), "lat": -1, "lon": (b, 2 * a)}, ((3, 3), fine(a + b), fine(b, 2 * a))),
        ({"time": (2, 4)}, ((2, 4), fine(a + b), fine(2 * a + b))),
    ]
    for chunks, expected in cases:
        out = run(da.chunk(chunks), model)
        assert out.chunks == expected
        assert out.dtype == np.float32

    # narrower chunks are computed in larger blocks, and the output keeps the input's
    # chunks times the factor (rounded to whole fine cells); one-step time chunks, with a
    # window of 3, are computed in merged blocks and come back one step each (so that the
    # other variables of a Dataset, chunked alike, still agree with the SST's chunks)
    src = da.chunk(time=1, lat=3, lon=5)
    out = run(src, model)
    assert out.chunks[0] == src.chunks[0]
    for axis in (1, 2):
        coarse = [c / f for c in out.chunks[axis]]
        assert all(c == int(c) and int(c) % model.pool == 0 for c in coarse)
        assert boundaries(coarse) <= boundaries(src.chunks[axis])
        assert max(coarse) <= 2 * src.chunks[axis][0]  # not merged to the halo
        assert sum(coarse) == src.shape[axis]
        if model.pool == 1:
            assert coarse == list(src.chunks[axis])
    blocks = [layer for layer in out.data.dask.layers if layer.startswith("sstsr-downscale")]
    assert len(out.data.dask.layers[blocks[0]]) < out.data.npartitions  # fewer compute blocks
    assert_close_nan(out.values, run(da, model).values)


def _cuts(n: int):
    """Chunk sizes summing to n, any widths (1 included)."""
    return st.sets(st.integers(1, n - 1), max_size=5).map(
        lambda cuts: tuple(int(c) for c in np.diff([0, *sorted(cuts), n]))
    )


_REFERENCE: dict[str, tuple[xr.DataArray, np.ndarray]] = {}


def _reference(model: Model) -> tuple[xr.DataArray, np.ndarray]:
    """A field two to three halos wide, with a hole at one time, and its in-memory result."""
    if model.name not in _REFERENCE:
        h = model.halo
        da = sst_field(seed=3, ny=even(2 * h + 4), nx=even(3 * h + 2))
        da[2, 10:12, 20:23] = np.nan
        _REFERENCE[model.name] = (da, run(da, model).values)
    return _REFERENCE[model.name]


@pytest.mark.parametrize("factor", [4, 2.5, "2.5-conserve", "4-scaled"])
@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), tile=st.sampled_from([None, 6, 8, 12]))
def test_chunk_independence(m4, m25, m25c, m4s, factor, data, tile):
    model = {4: m4, 2.5: m25, "2.5-conserve": m25c, "4-scaled": m4s}[factor]
    da, reference = _reference(model)
    chunks = {
        "time": data.draw(st.one_of(st.just((1,) * da.sizes["time"]), _cuts(da.sizes["time"]))),
        "lat": data.draw(_cuts(da.sizes["lat"])),
        "lon": data.draw(_cuts(da.sizes["lon"])),
    }
    out = run(da.chunk(chunks), model, tile_size=tile)
    with dask.config.set(scheduler="synchronous"):
        values = out.values
    assert_close_nan(values, reference)


def test_a_local_scale_model_corrects_in_proportion_to_the_anomalies(m4, m4s):
    """Twice the anomalies about a constant, twice the departure from it: the correction
    of a ``scale_radius`` model grows with the field's texture; a plain one's does not."""
    da = sst_field(seed=4, land=False)
    centre = float(da.mean())
    stretched = centre + 2.0 * (da - centre)
    stretched.attrs = da.attrs
    assert m4s.halo == m4.halo + 3  # the scale's window widens the halo by its radius
    out = run(da, m4s).values - centre
    assert_close_nan(run(stretched, m4s).values - centre, 2.0 * out, tol=2e-4)
    base = bicubic_baseline(da, factor=4).transpose(*da.dims).values - centre
    assert np.abs(out - base).max() > 1e-3  # the correction is not nothing
    plain = run(da, m4).values - centre
    assert np.abs(run(stretched, m4).values - centre - 2.0 * plain).max() > 1e-3


def test_the_local_scale_is_taken_over_ocean_cells_only():
    """Land's filled values (stepping to 0 inland) never set the scale of the coast."""
    from xsstsr.nn.networks import Generator

    gen = Generator(3, 4, scale_radius=3)
    anomalies = torch.randn(1, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    ocean = torch.ones(1, 1, 20, 20, dtype=torch.bool)
    ocean[..., :, 12:] = False
    on_land = anomalies.clone()
    on_land[..., :, 12:] = 50.0  # the fill's step, far from the ocean's values
    scale = gen.local_scale(anomalies, ocean)
    torch.testing.assert_close(gen.local_scale(on_land, ocean)[..., :12], scale[..., :12])
    rms = anomalies[..., 4:11, 2:9].pow(2).mean().sqrt()  # a window all ocean
    torch.testing.assert_close(scale[..., 7, 5].squeeze(), rms, rtol=1e-4, atol=1e-4)


# -- schedulers ----------------------------------------------------------------------------


def test_in_memory_models_are_registered_through_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XSSTSR_CACHE", str(tmp_path))
    model = small_model(4, 1, seed=7)  # in memory: workers must find it through a file
    ref = register(model)
    assert ref.path == str(tmp_path / "models" / f"{model.sha256}.safetensors")
    assert hashlib.sha256(Path(ref.path).read_bytes()).hexdigest() == model.sha256


def test_every_scheduler_gives_the_eager_answer(scheduler):
    model = small_model(4, 1, seed=7)
    da = sst_field(seed=5)
    with dask.config.set(scheduler="sync"):
        expected = run(da, model).values
    values = run(da.chunk(time=2, lat=12, lon=16), model).values
    assert_close_nan(values, expected, tol=1e-5)
    ds_values = run(da.to_dataset().chunk(time=3), model)["sst"].values
    assert_close_nan(ds_values, expected, tol=1e-5)


@pytest.mark.distributed
def test_distributed_workers_load_the_model_from_its_file(dask_client, tmp_path, monkeypatch):
    monkeypatch.setenv("XSSTSR_CACHE", str(tmp_path))
    model = small_model(4, 1, seed=11)
    da = sst_field(seed=6)
    expected = run(da, model).values
    lazy = run(da.chunk(time=2, lat=12, lon=16), model)
    assert (tmp_path / "models" / f"{model.sha256}.safetensors").is_file()
    values = dask_client.compute(lazy).result().values
    assert_close_nan(values, expected, tol=1e-5)
    # the workers loaded the in-memory model from the registered file
    per_worker = dask_client.run(cached_models)
    assert len(per_worker) == 2
    assert any(model.sha256 in models for models in per_worker.values())


# -- geometric self-ensemble ---------------------------------------------------------------


def _turn(values: np.ndarray, code: int) -> np.ndarray:
    """Transpose (bit 4), then flip x (bit 1) and y (bit 2), on the last two axes."""
    v = np.swapaxes(values, -1, -2) if code & 4 else values
    v = v[..., ::-1] if code & 1 else v
    return v[..., ::-1, :] if code & 2 else v


def _unturn(values: np.ndarray, code: int) -> np.ndarray:
    v = values[..., ::-1, :] if code & 2 else values
    v = v[..., ::-1] if code & 1 else v
    return np.swapaxes(v, -1, -2) if code & 4 else v


@pytest.mark.parametrize("factor", [4, 2.5])
def test_self_ensemble_is_the_mean_over_the_eight_turns(m4, m25, factor):
    model = m4 if factor == 4 else m25
    coarse = sst_field(nt=3, ny=24, nx=24, seed=5)
    ensemble = run(coarse, model, self_ensemble=True)
    plain = run(coarse, model)
    turns = []
    for code in range(8):
        turned = coarse.copy(data=_turn(coarse.values, code).copy())
        turns.append(_unturn(run(turned, model).values, code))
    expected = np.mean(turns, axis=0)
    assert_close_nan(ensemble.values, expected)
    assert np.nanmax(np.abs(ensemble.values - plain.values)) > 1e-3  # not the plain pass
    assert ensemble.attrs["xsstsr_self_ensemble"] == "mean over 8 flips and transposes"
    assert "self_ensemble=True" in ensemble.attrs["history"]
    assert "xsstsr_self_ensemble" not in plain.attrs


def test_self_ensemble_is_chunk_and_layout_invariant(m4):
    coarse = sst_field(nt=4, ny=40, nx=36, seed=6)
    eager = run(coarse, m4, self_ensemble=True, tile_size=16)
    lazy = run(coarse.chunk({"time": 1, "lat": 8, "lon": 12}), m4, self_ensemble=True)
    assert isinstance(lazy.data, dsa.Array)
    assert_close_nan(lazy.values, eager.values)
    descending = run(coarse.isel(lat=slice(None, None, -1)), m4, self_ensemble=True)
    assert_close_nan(descending.isel(lat=slice(None, None, -1)).values, eager.values)


def test_self_ensemble_must_be_a_bool(m4):
    with pytest.raises(xsstsr.InputTypeError, match="self_ensemble must be True or False"):
        run(sst_field(), m4, self_ensemble="yes")


def test_graph_does_not_carry_the_model(model_x4):
    da = sst_field().chunk(time=2, lat=12, lon=16)
    out = run(da, model_x4)
    graph = cloudpickle.dumps(dict(out.data.__dask_graph__()))
    weights = model_x4.to_bytes()
    assert len(graph) < 100_000 < len(weights)
    big = max(model_x4.state.values(), key=lambda a: a.size)
    assert big.tobytes()[:256] not in graph
    assert weights[8:264] not in graph  # nor the header


# -- land -----------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [4, 2.5])
@pytest.mark.parametrize("lazy", [False, True])
def test_land_follows_coarse_nan(m4, m25, factor, lazy):
    model = m4 if factor == 4 else m25
    da = sst_field(seed=2)
    da[1, 14:16, 20:21] = np.nan  # a transient gap (clouds)
    da[4, 23, 0] = np.nan
    src = da.chunk(time=3, lat=12, lon=16) if lazy else da
    out = run(src, model).compute()
    nan = expected_nan(da, out)
    np.testing.assert_array_equal(np.isnan(out.values), nan)
    assert np.all(np.isfinite(out.values[~nan]))
    assert nan[1].sum() > nan[0].sum()  # the gap shows at its time only


def test_land_mask_replaces_coarse_mask(m4):
    da = sst_field(seed=2)
    plain = run(da, m4)
    mask = xr.zeros_like(plain.isel(time=0, drop=True), dtype=bool)
    mask[40:50, 60:90] = True  # "land" inside the open ocean; the coarse NaN corner is ocean
    mask.attrs = {}
    for masked in (
        run(da, m4, land_mask=mask),
        run(da.chunk(time=2, lat=12, lon=16), m4, land_mask=mask).compute(),
        run(da, m4, land_mask=mask.astype("int8")),
    ):
        expect = np.broadcast_to(mask.values, masked.shape)
        np.testing.assert_array_equal(np.isnan(masked.values), expect)
        assert np.all(np.isfinite(masked.values[~expect]))
        # away from the coarse land (and its fill) the values are the unmasked ones
        sea = (~expect) & ~np.isnan(plain.values)
        np.testing.assert_allclose(masked.values[sea], plain.values[sea], atol=1e-5)


# -- coordinates ----------------------------------------------------------------------------


def check_fine_axis(
    fine: xr.DataArray, bounds: np.ndarray, coarse: xr.DataArray, factor: float
) -> None:
    c = coarse.values
    step = c[1] - c[0]
    f = fine.values
    assert f.size == round(c.size * factor)
    np.testing.assert_allclose(np.diff(f), step / factor, rtol=0, atol=1e-12)
    first_edge, last_edge = c[0] - step / 2, c[-1] + step / 2
    lo, hi = min(first_edge, last_edge), max(first_edge, last_edge)
    assert np.all((f > lo) & (f < hi))
    np.testing.assert_allclose(bounds[0, 0], first_edge, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bounds[-1, 1], last_edge, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bounds[1:, 0], bounds[:-1, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(bounds.mean(axis=1), f, rtol=0, atol=1e-12)
    attrs = dict(fine.attrs)
    assert attrs.pop("bounds", None) in (None, f"{fine.name}_bnds")
    assert attrs == coarse.attrs


@pytest.mark.parametrize("factor", [4, 2.5])
def test_fine_coordinates_and_bounds(m4, m25, factor):
    model = m4 if factor == 4 else m25
    da = sst_field()
    out = run(da.to_dataset(), model)
    check_fine_axis(out["lat"], out["lat_bnds"].values, da["lat"], factor)
    check_fine_axis(out["lon"], out["lon_bnds"].values, da["lon"], factor)
    np.testing.assert_array_equal(out["time"].values, da["time"].values)
    assert out["lat"].values[0] == pytest.approx(30.0 + 0.25 / (2 * factor), abs=1e-12)


def test_descending_latitude(m4):
    da = sst_field(seed=4).isel(lat=slice(None, None, -1))
    out = run(da.to_dataset(), m4)
    assert np.all(np.diff(out["lat"].values) < 0)
    check_fine_axis(out["lat"], out["lat_bnds"].values, da["lat"], 4)
    np.testing.assert_array_equal(np.isnan(out["sst"].values), expected_nan(da, out["sst"]))
    tiled = run(da.chunk(lat=12, lon=16), m4).values
    assert_close_nan(tiled, out["sst"].values)


def test_longitude_conventions(m4):
    da = sst_field(seed=8, lon0=-4.0)  # -4 .. 4, across Greenwich
    east = da.assign_coords(lon=da["lon"] + 360.0)  # 356 .. 364: not wrapped to 0..360
    west = da.assign_coords(lon=da["lon"] - 176.0)  # -180 .. -172
    pacific = da.assign_coords(lon=da["lon"] + 176.0)  # 172 .. 180 in 0..360
    out = run(da.to_dataset(), m4)
    check_fine_axis(out["lon"], out["lon_bnds"].values, da["lon"], 4)
    assert out["lon"].values.min() > -4.0
    assert out["lon"].values.max() < 4.0
    for shifted, offset in ((east, 360.0), (west, -176.0), (pacific, 176.0)):
        res = run(shifted.to_dataset(), m4)
        np.testing.assert_allclose(res["lon"].values, out["lon"].values + offset, atol=1e-9)
        check_fine_axis(res["lon"], res["lon_bnds"].values, shifted["lon"], 4)
        # the values do not depend on the longitude convention of a regional grid
        np.testing.assert_array_equal(res["sst"].values, out["sst"].values)


def global_field(nt: int = 3, ny: int = 10, lon0: float = -180.0) -> xr.DataArray:
    """A 2-degree global band: 180 longitudes, smooth and periodic, with an island."""
    rng = np.random.default_rng(9)
    lon = lon0 + 1.0 + 2.0 * np.arange(180)
    lat = -10.0 + 1.0 + 2.0 * np.arange(ny)
    rad = np.deg2rad(lon)
    base = 26.0 + 3.0 * np.sin(rad)[None, :] + 1.5 * np.cos(3 * rad)[None, :] - 0.1 * lat[:, None]
    values = base[None] + rng.normal(0, 0.2, (nt, ny, 180))
    values[:, 4:6, 88:91] = np.nan
    return xr.DataArray(
        values.astype("float32"),
        dims=("time", "lat", "lon"),
        coords={
            "time": np.arange(nt).astype("datetime64[D]"),
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        name="sst",
        attrs={"units": "degC", "standard_name": "sea_surface_temperature"},
    )


def test_global_grid_wraps_in_longitude(m4):
    da = global_field()
    eager = run(da, m4)
    assert eager.sizes["lon"] == 720
    for chunks in ({"lon": 60}, {"lon": (7, 80, 93)}, {"lon": -1}, {"lon": 45, "time": 1}):
        tiled = run(da.chunk(chunks), m4).compute()
        assert_close_nan(tiled.values, eager.values)

    # the same field in 0..360: rolled by half the globe, so the seam moves to Greenwich
    rolled = da.assign_coords(lon=da["lon"] % 360.0).sortby("lon")
    assert rolled["lon"].values[0] == 1.0
    out_rolled = run(rolled, m4)
    back = out_rolled.assign_coords(lon=((out_rolled["lon"] + 180.0) % 360.0) - 180.0).sortby("lon")
    np.testing.assert_allclose(back["lon"].values, eager["lon"].values, atol=1e-9)
    assert_close_nan(back.values, eager.values)
    tiled_rolled = run(rolled.chunk(lon=(100, 80)), m4).compute()
    assert_close_nan(tiled_rolled.values, out_rolled.values)

    # seamless: the jump across the dateline is like the jumps between other columns
    seam = np.abs(eager.values[..., 0] - eager.values[..., -1]).max()
    inner = np.nanmax(np.abs(np.diff(eager.values, axis=-1)))
    assert seam <= inner

    # a regional grid (one column short of global) does not wrap: the edges differ
    regional = run(da.isel(lon=slice(0, 179)), m4)
    regional_rolled = run(da.isel(lon=slice(0, 179)).roll(lon=90, roll_coords=False), m4)
    edge = np.abs(
        regional.values[..., :4] - np.roll(regional_rolled.values, -360, axis=-1)[..., :4]
    )
    assert np.nanmax(edge) > 1e-3


def test_ferret_coordinate_names():
    path = DATA / "coads_subset.nc"
    if not path.is_file():
        pytest.skip("tests/data/coads_subset.nc is not there")
    model = small_model(4, 1)
    with xr.open_dataset(path, decode_times=False) as ds:
        ds = ds.load()
    before = ds.copy(deep=True)
    out = ds.sstsr.downscale(model=model, device="cpu")
    xr.testing.assert_identical(ds, before)
    sst = out["SST"]
    assert sst.dims == ("TIME", "COADSY", "COADSX")
    assert sst.shape == (ds.sizes["TIME"], 4 * ds.sizes["COADSY"], 4 * ds.sizes["COADSX"])
    assert {"COADSY_bnds", "COADSX_bnds"} <= set(out.coords)
    np.testing.assert_array_equal(out["TIME"].values, ds["TIME"].values)
    check_fine_axis(out["COADSX"], out["COADSX_bnds"].values, ds["COADSX"], 4)
    iy = coarse_index(out["COADSY"].values, ds["COADSY"].values)
    ix = coarse_index(out["COADSX"].values, ds["COADSX"].values)
    nan = np.isnan(ds["SST"].values)[:, iy][:, :, ix]
    assert nan.any()
    np.testing.assert_array_equal(np.isnan(sst.values), nan)
    assert sst.attrs["units"] == ds["SST"].attrs["units"]
    assert out.attrs["history"].splitlines()[:-1] == ds.attrs["history"].splitlines()
    sea = sst.values[~nan]
    assert sea.min() > -3.0
    assert sea.max() < 35.0


# -- units, dims ----------------------------------------------------------------------------


def test_kelvin_in_kelvin_out(m4):
    c = sst_field(seed=12)
    k = sst_field(seed=12, units="K")
    out_c = run(c, m4)
    for src in (k, k.chunk(time=3, lat=12, lon=16)):
        out_k = run(src, m4).compute()
        assert out_k.attrs["units"] == "K"
        assert out_k.attrs["standard_name"] == "sea_surface_temperature"
        assert out_k.dtype == np.float32
        assert_close_nan(out_k.values, out_c.values + 273.15, tol=1e-3)
        assert 280.0 < np.nanmean(out_k.values) < 310.0
    assert out_c.attrs["units"] == "degC"


def test_extra_dims_keep_their_order(m4):
    da = sst_field(seed=13)
    deep = xr.concat([da, da - 1.0, da + 0.5], dim=xr.DataArray([0.0, 10.0, 50.0], dims="depth"))
    deep = deep.transpose("depth", "time", "lat", "lon")
    deep.attrs = da.attrs
    out = run(deep, m4)
    assert out.dims == ("depth", "time", "lat", "lon")
    np.testing.assert_array_equal(out["depth"].values, [0.0, 10.0, 50.0])
    for i, shift in enumerate((0.0, -1.0, 0.5)):
        single = (da + shift).assign_attrs(da.attrs)
        assert_close_nan(out.isel(depth=i).values, run(single, m4).values)
    lazy = run(deep.chunk(depth=1, time=2, lat=12), m4)
    assert lazy.dims == out.dims
    assert_close_nan(lazy.values, out.values)

    other_order = run(deep.transpose("time", "depth", "lat", "lon"), m4)
    assert other_order.dims == ("time", "depth", "lat", "lon")
    assert_close_nan(other_order.transpose(*out.dims).values, out.values)

    members = xr.concat([da.isel(time=t, drop=True) for t in (0, 3, 5)], dim="member")
    members = members.assign_coords(member=[1, 2, 3]).assign_attrs(da.attrs)
    out_m = run(members, m4)
    assert out_m.dims == ("member", "lat", "lon")
    assert "__time__" not in out_m.dims
    assert "__time__" not in out_m.coords
    np.testing.assert_array_equal(out_m["member"].values, [1, 2, 3])
    for i, t in enumerate((0, 3, 5)):
        single = run(da.isel(time=t, drop=True), m4)
        assert single.dims == ("lat", "lon")
        assert_close_nan(out_m.isel(member=i).values, single.values)
    lazy_m = run(members.chunk(member=1, lon=16), m4)
    assert_close_nan(lazy_m.values, out_m.values)
    # members are not time steps: a member does not see the previous one
    first_only = run(members.isel(member=[0]), m4)
    assert_close_nan(first_only.isel(member=0).values, out_m.isel(member=0).values)
    one_step = run(da.isel(time=[3]), m4)  # the first step of a record repeats itself
    assert_close_nan(out_m.isel(member=1).values, one_step.isel(time=0).values)


# -- metadata, encodings, files ------------------------------------------------------------


def test_metadata_and_history(m4):
    da = sst_field().assign_attrs(history="2020-01-01: created by hand", source="tests")
    out = run(da, m4)
    assert out.attrs["long_name"] == "sea surface temperature"
    assert out.attrs["source"].startswith("tests; downscaled x4 by xsstsr")
    assert out.attrs["xsstsr_model"] == m4.name
    assert out.attrs["xsstsr_model_sha256"] == m4.sha256
    assert out.attrs["xsstsr_factor"] == 4.0
    assert out.attrs["xsstsr_version"] == xsstsr.__version__
    lines = out.attrs["history"].splitlines()
    assert len(lines) == 2
    assert lines[0] == "2020-01-01: created by hand"
    assert "xsstsr" in lines[1]
    assert "downscale(factor=4" in lines[1]
    assert m4.sha256[:12] in lines[1]

    bare = run(da, m4, keep_attrs=False)
    assert "long_name" not in bare.attrs
    # the values are still in the input's units: those are kept whatever keep_attrs says
    assert bare.attrs["units"] == da.attrs["units"]
    kelvin = (da + 273.15).assign_attrs(units="K", standard_name="sea_surface_temperature")
    bare_k = run(kelvin, m4, keep_attrs=False)
    assert bare_k.attrs["units"] == "K"
    assert bare_k.attrs["standard_name"] == "sea_surface_temperature"
    assert bare.attrs["source"].startswith("downscaled x4 by xsstsr")  # ours only
    assert bare.attrs["xsstsr_model_sha256"] == m4.sha256
    assert bare.attrs["history"].count("\n") == 0

    ds = da.to_dataset().assign_attrs(title="test", history="line one\nline two")
    out_ds = run(ds, m4)
    assert out_ds.attrs["title"] == f"test (downscaled x4 by xsstsr {m4.name})"
    assert out_ds.attrs["history"].splitlines()[:2] == ["line one", "line two"]
    assert len(out_ds.attrs["history"].splitlines()) == 3
    assert out_ds["sst"].attrs["xsstsr_factor"] == 4.0
    # the variable's own history gets the line as well as the dataset's
    var_history = run(da.to_dataset(), m4)["sst"].attrs["history"].splitlines()
    assert var_history[0] == "2020-01-01: created by hand"
    # the same line but for its time stamp (to the second: two runs may straddle one)
    assert var_history[1].split(": ", 1)[1] == lines[1].split(": ", 1)[1]
    assert "title" not in run(ds, m4, keep_attrs=False).attrs

    again = run(out.isel(lat=slice(-24, None), lon=slice(-32, None)), m4)
    assert len(again.attrs["history"].splitlines()) == 3


@pytest.fixture
def stored_input(tmp_path):
    """An SST dataset written to netCDF with compression and chunking, then opened lazily."""
    ds = sst_field().to_dataset().assign_attrs(history="made for the tests")
    path = tmp_path / "coarse.nc"
    ds.to_netcdf(path, encoding={"sst": {"zlib": True, "complevel": 4, "chunksizes": (1, 12, 16)}})
    with xr.open_dataset(path, chunks={}) as opened:
        yield opened


def test_encodings_dropped_and_files_written(m4, stored_input, tmp_path):
    assert stored_input["sst"].encoding["zlib"] is True
    assert "source" in stored_input["sst"].encoding
    out = run(stored_input, m4)
    for name in ("sst", "lat", "lon", "time", "lat_bnds", "lon_bnds"):
        enc = out[name].encoding
        assert not {"chunksizes", "zlib", "source", "original_shape", "preferred_chunks"} & set(enc)
    computed = out.compute()

    nc = tmp_path / "fine.nc"
    out.to_netcdf(nc)
    with xr.open_dataset(nc) as back:
        xr.testing.assert_allclose(back.load(), computed, rtol=0, atol=1e-6)
        assert back["sst"].attrs["xsstsr_model_sha256"] == m4.sha256
        assert back["lat"].attrs["bounds"] == "lat_bnds"

    store = tmp_path / "fine.zarr"
    out.to_zarr(store, consolidated=False)
    with xr.open_zarr(store, consolidated=False) as back:
        xr.testing.assert_allclose(back.load(), computed, rtol=0, atol=1e-6)
        assert back.attrs["history"] == computed.attrs["history"]


@pytest.mark.parametrize("kind", ["array", "dataset", "lazy", "file"])
def test_input_never_modified(m4, stored_input, kind):
    da = sst_field().assign_attrs(history="h0")
    da["lat"].encoding = {"dtype": "float64", "zlib": True}
    obj = {"array": da, "dataset": da.to_dataset(), "lazy": da.chunk(time=2), "file": stored_input}[
        kind
    ]
    before = copy.deepcopy(obj)
    out = run(obj, m4, land_mask=None)
    if hasattr(out, "compute"):
        out.compute()
    xr.testing.assert_identical(obj, before)
    assert obj.attrs == before.attrs
    assert obj.encoding == before.encoding
    for name in obj.coords:
        assert obj[name].attrs == before[name].attrs
        assert obj[name].encoding == before[name].encoding
    if isinstance(obj, xr.Dataset):
        for name in obj.data_vars:
            assert obj[name].encoding == before[name].encoding
            assert obj[name].attrs == before[name].attrs


# -- model and factor resolution -------------------------------------------------------------


def test_model_resolution(m4, model_x4, model_path, model_x2_5):
    da = sst_field(ny=12, nx=16, nt=3)
    with pytest.raises(xsstsr.ModelMismatchError, match=r"2\.5"):
        da.sstsr.downscale(2.5, model=m4, device="cpu")
    with pytest.raises(xsstsr.ModelMismatchError):
        xsstsr.downscale(da, 4, model=model_x2_5, device="cpu")

    by_object = da.sstsr.downscale(4, model=model_x4, device="cpu")
    by_str = da.sstsr.downscale(model=str(model_path), device="cpu")
    by_path = da.sstsr.downscale(4.0, model=model_path, device="cpu")
    for other in (by_str, by_path):
        np.testing.assert_array_equal(other.values, by_object.values)
        assert other.attrs["xsstsr_model_sha256"] == model_x4.sha256
    assert by_object.attrs["xsstsr_model"] == model_x4.name

    half = da.sstsr.downscale(model=model_x2_5, device="cpu")
    assert half.sizes["lat"] == 30
    assert half.attrs["xsstsr_factor"] == 2.5


def test_factor_without_released_model(tmp_path, monkeypatch, model_x4):
    da = sst_field(ny=12, nx=16, nt=3)
    with pytest.raises(xsstsr.FactorError, match="available models"):
        da.sstsr.downscale(3)
    release = tmp_path / "release"
    release.mkdir()
    model_x4.save(release / "sst-x4.safetensors")
    (release / "registry.txt").write_text(f"sst-x4.safetensors {model_x4.sha256}\n")
    monkeypatch.setattr(xsstsr.models.weights, "bundled_dir", lambda: release)
    with pytest.raises(xsstsr.FactorError, match=r"sst-x4") as info:
        da.sstsr.downscale(3, device="cpu")
    assert "3" in str(info.value)
    # and the released factor resolves to the registered file
    out = da.sstsr.downscale(4, device="cpu")
    assert out.attrs["xsstsr_model"] == model_x4.name
    assert out.attrs["xsstsr_model_sha256"] == model_x4.sha256


@pytest.mark.parametrize("factor", [0.5, 1, 3.3333, "4", True, float("nan")])
def test_bad_factor(factor):
    with pytest.raises(xsstsr.FactorError):
        sst_field().sstsr.downscale(factor)


@pytest.mark.filterwarnings("ignore:guessed 'latitude'")
def test_the_cyclic_point_and_coordinate_fixes_in_the_errors_work(m4):
    """A global grid with its first meridian repeated, and lat as a data variable: each
    error's own fix gives the answer of the plain global grid."""
    plain = sst_field(nt=2, ny=8, nx=18, step=20.0, lat0=-80.0, lon0=0.0)
    cyclic = xr.concat([plain, plain.isel(lon=[0]).assign_coords(lon=[370.0])], dim="lon")
    with pytest.raises(xsstsr.GridError, match="cyclic point") as info:
        cyclic.sstsr.downscale(model=m4, device="cpu")
    fix = re.search(r"ds\.isel\(lon=slice\(0, -1\)\)", str(info.value)).group(0)
    expected = plain.sstsr.downscale(model=m4, device="cpu")
    np.testing.assert_array_equal(
        eval(fix, {"ds": cyclic}).sstsr.downscale(model=m4, device="cpu").values, expected.values
    )
    stored = plain.to_dataset().swap_dims(lat="latitude").reset_coords("lat")
    with pytest.raises(xsstsr.CoordinateError, match="data variable") as info:
        stored.sstsr.downscale(model=m4, device="cpu")
    fix = str(info.value).split("ds = ")[-1].rstrip(".")
    mended = eval(fix, {"ds": stored}).sstsr.downscale(model=m4, device="cpu")
    np.testing.assert_array_equal(mended["sst"].values, expected.values)


def test_the_one_gridded_variable_is_the_sst(m4):
    """Beside NCL-style 1-D lat/lon data variables, a time series and time bounds, the one
    field with two dims or more is the SST (they were listed as candidates)."""
    plain = sst_field(nt=2, ny=8, nx=8)
    plain.attrs.pop("standard_name", None)
    ds = xr.Dataset(
        {
            "temp": plain,
            "lat_values": ("lat", plain["lat"].values),
            "series": plain.mean(("lat", "lon")),
            "time_bnds": (("time", "nv"), np.zeros((2, 2))),
        }
    )
    ds["time"].attrs["bounds"] = "time_bnds"
    with pytest.warns(UserWarning, match=r"\['lat_values'\], are not in the result"):
        out = ds.sstsr.downscale(model=m4, device="cpu")
    expected = plain.sstsr.downscale(model=m4, device="cpu")
    np.testing.assert_array_equal(out["temp"].values, expected.values)
    with pytest.raises(xsstsr.AmbiguousVariableError, match=r"among \('temp', 'other'\)"):
        ds.assign(other=ds["temp"] + 1).sstsr.downscale(model=m4, device="cpu")


def test_other_gridded_variables_are_left_out_with_a_warning(m4):
    plain = sst_field(nt=2, ny=8, nx=8)
    ds = xr.Dataset({"sst": plain, "airt": plain - 1, "series": plain.mean(("lat", "lon"))})
    with pytest.warns(UserWarning, match=r"or longitude, \['airt'\], are not in the result"):
        out = ds.sstsr.downscale(model=m4, device="cpu", variable="sst")
    assert set(out.data_vars) == {"sst", "series"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as the warning says: select first, and it is quiet
        ds[["sst", "series"]].sstsr.downscale(model=m4, device="cpu")


def test_the_seam_fix_in_the_error_works(m4):
    """A box over the prime meridian stored as 0..360: the GridError's own fix runs."""
    box = sst_field(nt=2, lon0=-4.0, step=0.25).assign_coords(lon=lambda d: d.lon % 360)
    cut = box.sortby("lon")  # 0.125 .. 3.875, 356.125 .. 359.875
    with pytest.raises(xsstsr.GridError, match="seam") as info:
        cut.sstsr.downscale(model=m4, device="cpu")
    fix = str(info.value).split("with ")[-1].rstrip(".")
    assert fix == "ds.assign_coords(lon=(ds['lon'] + 180) % 360 - 180).sortby('lon')"
    mended = cut.assign_coords(lon=(cut["lon"] + 180) % 360 - 180).sortby("lon")
    out = mended.sstsr.downscale(model=m4, device="cpu")
    np.testing.assert_allclose(out["lon"][[0, -1]], [-4 + 0.25 / 8, 4 - 0.25 / 8])
    expected = box.assign_coords(lon=(box["lon"] + 180) % 360 - 180).sstsr.downscale(
        model=m4, device="cpu"
    )
    np.testing.assert_array_equal(out.values, expected.values)


def test_guessed_names_warn_at_the_callers_line(m4):
    plain = sst_field(nt=2)
    for name in plain.coords:
        plain[name].attrs = {}
    with pytest.warns(UserWarning, match="guess") as by_function:
        xsstsr.downscale(plain, model=m4, device="cpu")
    with pytest.warns(UserWarning, match="guess") as by_accessor:
        plain.sstsr.downscale(model=m4, device="cpu")
    assert {w.filename for w in [*by_function, *by_accessor]} == {__file__}


# -- devices ------------------------------------------------------------------------------------


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(m4):
    da = sst_field(seed=14)
    cpu = run(da, m4, device="cpu")
    gpu = run(da, m4, device="cuda")
    assert gpu.attrs["xsstsr_device"] == "cuda"
    assert_close_nan(gpu.values, cpu.values, tol=0.01)
    lazy = run(da.chunk(time=2, lat=12, lon=16), m4, device="cuda").compute()
    assert_close_nan(lazy.values, cpu.values, tol=0.01)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_gpu_raises(m4):
    for device in ("cuda", "cuda:0"):
        with pytest.raises(xsstsr.DeviceError, match="cpu"):
            sst_field().sstsr.downscale(model=m4, device=device)
    auto = sst_field(nt=2).sstsr.downscale(model=m4, device="auto")
    assert auto.attrs["xsstsr_device"] == "cpu"


@pytest.mark.parametrize("device", ["tpu", 0, None])
def test_unknown_device(m4, device):
    with pytest.raises(xsstsr.DeviceError):
        sst_field().sstsr.downscale(model=m4, device=device)


def test_odd_record_keeps_its_short_last_chunk():
    # Only a chunk with a successor must hold the window's look-back; merging a short last
    # chunk made one heavier task whose output was split again for zarr.
    model = small_model(4)
    da = sst_field(nt=7, seed=3)
    out = run(da.chunk(time=2), model)
    assert out.chunks[0] == (2, 2, 2, 1)
    assert not [name for name in out.data.dask.layers if name.startswith("rechunk")]
    assert_close_nan(out.values, run(da, model).values, tol=1e-5)
    # a short chunk inside is computed merged with the next and comes back as stored
    single = run(da.chunk(time=(2, 1, 2, 2)), model)
    assert single.chunks[0] == (2, 1, 2, 2)
    assert_close_nan(single.values, run(da, model).values, tol=1e-5)


def test_conserving_model_keeps_the_coarse_means():
    model = small_model(4, 1, conserve=True, scale=0.2)
    da = sst_field(seed=4, land=False)
    out = run(da, model)
    back = out.coarsen(lat=4, lon=4).mean()
    np.testing.assert_allclose(back.values, da.values, atol=2e-4)
    plain = run(da, small_model(4, 1, scale=0.2)).coarsen(lat=4, lon=4).mean()
    assert float(np.abs(plain.values - da.values).max()) > 1e-2  # without it they drift


def test_in_memory_model_eagerly_needs_no_writable_cache(tmp_path, monkeypatch) -> None:
    """Computed here and now, an in-memory model is never written to the cache."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("XSSTSR_CACHE", str(blocker / "cache"))  # cannot be created
    model = make_model(4, 1, seed=21, name="in-memory")
    out = xsstsr.downscale(sst_field(nt=2), model=model, device="cpu")
    assert np.isfinite(out.values).any()
    assert not (blocker.parent / "cache").exists()


def _with_domain(model, **domain):
    return Model(model.state, {**model.metadata, "domain": domain})


def test_input_outside_the_declared_domain_warns(model_x4) -> None:
    model = _with_domain(
        model_x4,
        input_spacing_deg=[0.05, 0.5],
        time_spacing_days=[1, 1],
        sst_range_degC=[5.0, 30.0],
    )
    assert model.domain == {
        "input_spacing_deg": (0.05, 0.5),
        "time_spacing_days": (1.0, 1.0),
        "sst_range_degC": (5.0, 30.0),
    }
    inside = sst_field(nt=3)  # 0.25 degrees, daily, 17..27 degC
    with warnings.catch_warnings():
        warnings.simplefilter("error", xsstsr.DomainWarning)
        xsstsr.downscale(inside, model=model, device="cpu")
    coarse = sst_field(nt=3, step=2.0, lat0=-20.0).assign_coords(
        time=pd.date_range("2021-01-01", periods=3, freq="MS")
    )
    with pytest.warns(xsstsr.DomainWarning, match=r"grid spacing 2 deg.*time step 29.5 days"):
        xsstsr.downscale(coarse, model=model, device="cpu")
    with pytest.warns(xsstsr.DomainWarning, match=r"SST .* degC \(trained on 5\.0\.\.30\.0\)"):
        xsstsr.downscale(inside + 8.0, model=model, device="cpu")


def test_refused_input_gets_the_error_without_a_domain_warning(model_x4) -> None:
    model = _with_domain(model_x4, sst_range_degC=[5.0, 30.0])
    kelvin_as_celsius = sst_field(nt=2) + 273.15  # still labelled degC
    all_nan = sst_field(nt=2) * np.nan
    for bad, error in ((kelvin_as_celsius, xsstsr.UnitsError), (all_nan, xsstsr.InputDataError)):
        with warnings.catch_warnings():
            warnings.simplefilter("error", xsstsr.DomainWarning)
            with pytest.raises(error):
                xsstsr.downscale(bad, model=model, device="cpu")


@pytest.mark.parametrize(
    ("units", "step", "warns"),
    [
        ("hours since 0000-01-01", 24.0, False),  # daily, counted in hours
        ("seconds since 1970-01-01", 86400.0, False),
        ("days since 2000-01-01", 1.0, False),
        ("months since 2000-01-01", 1.0, True),  # monthly against a daily domain
        ("hours since 0000-01-01", 730.5, True),  # COADS's monthly climatology, undecoded
        ("fortnights since 2000-01-01", 1.0, False),  # no known unit: no claim
    ],
)
def test_undecoded_time_is_read_in_its_units(model_x4, units, step, warns) -> None:
    model = _with_domain(model_x4, time_spacing_days=[1, 1])
    da = sst_field(nt=3)
    da = da.assign_coords(time=("time", np.arange(3) * step, {"units": units}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xsstsr.downscale(da, model=model, device="cpu")
    domain = [w for w in caught if issubclass(w.category, xsstsr.DomainWarning)]
    assert bool(domain) == warns, [str(w.message) for w in domain]
    if warns:
        assert re.search(r"time step 30\.4\d* days", str(domain[0].message))


def test_cells_beyond_a_pole_warn_with_the_fix(m4) -> None:
    polar = sst_field(nt=2, step=2.0, lat0=-91.0)  # centres -90, -88, ...: cells from -91
    for da in (polar, polar.isel(lat=slice(None, None, -1))):  # either orientation
        with pytest.warns(xsstsr.PoleWarning, match=r"2 row\(s\).*up to 90\.75") as caught:
            out = run(da, m4)
        assert float(np.abs(out["lat"]).max()) == 90.75  # what was warned of
        fix = re.search(r"hi\.isel\(.*?<= 90\)", str(caught[0].message)).group(0)
        kept = eval(fix, {"hi": out, "abs": abs})  # the fix the warning gives, as given
        assert float(np.abs(kept["lat"]).max()) == 89.75
        assert kept.sizes["lat"] == out.sizes["lat"] - 2
    with warnings.catch_warnings():
        warnings.simplefilter("error", xsstsr.PoleWarning)
        run(sst_field(nt=2, step=2.0, lat0=-90.0), m4)  # edge on the pole: nothing beyond


def test_output_never_below_freezing_seawater() -> None:
    model = make_model(4, 1, seed=3, scale=2.0)  # a large, noisy correction
    cold = sst_field(nt=2, land=False) * 0.0 - 1.85
    cold = cold + xr.DataArray(np.random.default_rng(0).normal(0, 0.05, cold.shape), dims=cold.dims)
    cold = cold.assign_attrs(units="degC")
    out = xsstsr.downscale(cold, model=model, device="cpu")
    assert float(out.min()) == pytest.approx(-1.9)  # clipped, not below
    assert out.attrs["xsstsr_bounds_degC"] == [-1.9, 40.0]


def test_output_says_it_was_downscaled_and_by_which_model(m4):
    """The kept title and source describe the coarse input: both are amended, on the
    Dataset and on the variable, with the model's name, the factor and its sha256."""
    da = sst_field().assign_attrs(source="OISST v2.1", title="variable title")
    ds = da.to_dataset().assign_attrs(
        title="OISST daily 1/4 degree", source="NOAA", comment="kept as is"
    )
    out = run(ds, m4)
    done = f"downscaled x4 by xsstsr {xsstsr.__version__} with model {m4.name!r} (sha256 "
    assert out.attrs["title"] == f"OISST daily 1/4 degree (downscaled x4 by xsstsr {m4.name})"
    assert out.attrs["source"] == f"NOAA; {done}{m4.sha256[:12]})"
    assert out.attrs["comment"] == "kept as is"
    assert out["sst"].attrs["source"] == f"OISST v2.1; {done}{m4.sha256[:12]})"
    assert out["sst"].attrs["title"].startswith("variable title (downscaled x4")
    # the input is untouched
    assert ds.attrs["title"] == "OISST daily 1/4 degree"
    assert ds["sst"].attrs["source"] == "OISST v2.1"

    bare = run(ds, m4, keep_attrs=False)
    assert "title" not in bare.attrs  # no input title to amend, none invented
    assert bare.attrs["source"] == f"{done}{m4.sha256[:12]})"
    assert bare["sst"].attrs["source"] == bare.attrs["source"]

    plain = run(sst_field(), m4)  # a DataArray without source or title
    assert plain.attrs["source"] == f"{done}{m4.sha256[:12]})"
    assert "title" not in plain.attrs


def _fill_reference(frames: np.ndarray, iterations: int) -> np.ndarray:
    """fill_nan's rule in float64 loops: each pass, a NaN cell with valid 3 x 3 neighbours
    takes their mean; what is left is 0."""
    values = frames.astype("f8")
    for _ in range(iterations):
        grown = values.copy()
        for idx in zip(*np.nonzero(np.isnan(values)), strict=True):
            *lead, y, x = idx
            window = values[(*lead, slice(max(0, y - 1), y + 2), slice(max(0, x - 1), x + 2))]
            if np.isfinite(window).any():
                grown[idx] = np.nanmean(window)
        values = grown
    return np.nan_to_num(values, nan=0.0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_land_fill_matches_its_rule(channels_last):
    import torch

    from xsstsr.nn.networks import fill_nan

    rng = np.random.default_rng(3)
    frames = rng.normal(size=(2, 3, 17, 23)).astype("f4")
    frames[:, :, 4:12, 6:15] = np.nan  # a lake too wide to fill in 2 passes
    frames[0, 1, 0, :] = np.nan  # a coast on the field's edge
    x = torch.from_numpy(frames.copy())
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    filled = fill_nan(x, 2).numpy()
    np.testing.assert_allclose(filled, _fill_reference(frames, 2), atol=1e-6)
    ocean = np.isfinite(frames)
    assert np.array_equal(filled[ocean], frames[ocean])  # valid cells untouched
    assert (filled[:, :, 8, 10] == 0).all()  # beyond 2 passes: 0, the mean


@pytest.mark.parametrize(
    ("ny", "nx", "tile", "multiple", "halo", "count"),
    [
        (180, 360, 256, 1, 0, 1),  # narrower than a tile: one tile, as the whole field
        (180, 398, 256, 1, 19, 1),  # the same with its periodic halo: still one
        (720, 1440, 256, 1, 19, 18),  # 3 rows of 6 near-equal 240 x 240 tiles
        (64, 1024, 256, 1, 0, 1),
        (40, 4096, 256, 1, 19, 2),  # a band: wide tiles, no more memory than a square
        (101, 77, 32, 2, 4, 8),  # x2.5: cuts at whole fine cells
    ],
)
def test_tiles_cover_the_field_once_within_a_squares_memory(ny, nx, tile, multiple, halo, count):
    from xsstsr.inference.tiling import tile_grid

    tiles = tile_grid(ny, nx, tile, multiple, halo)
    assert len(tiles) == count
    for sizes in ({y1 - y0 for y0, y1, _, _ in tiles}, {x1 - x0 for _, _, x0, x1 in tiles}):
        assert max(sizes) - min(sizes) < 2 * multiple  # near-equal, so they batch
    cover = np.zeros((ny, nx), dtype=int)
    for y0, y1, x0, x1 in tiles:
        cover[y0:y1, x0:x1] += 1
        height = min(ny, y1 + halo) - max(0, y0 - halo)
        width = min(nx, x1 + halo) - max(0, x0 - halo)
        assert height * width <= (tile + 2 * halo) ** 2
        inner = [e for e in (y0, y1, x0, x1) if e not in (ny, nx)]
        assert all(e % multiple == 0 for e in inner)
    assert (cover == 1).all()


@pytest.mark.parametrize(
    ("blocks", "target"),
    [
        (((3,), (40, 24), (64,)), {1: (8,) * 8, 2: (16,) * 4}),  # inside blocks: slices
        (((3,), (40, 24), (64,)), {1: (32, 32)}),  # 32 spans two blocks: a plain rechunk
        (((2, 2, 3), (64,), (64,)), {0: (2, 2, 2, 1)}),  # a merged time tail undone
    ],
)
def test_split_chunks_equals_rechunk(blocks, target):
    import dask.array

    from xsstsr.inference.tiling import split_chunks

    values = np.arange(np.prod([sum(c) for c in blocks]), dtype="f4").reshape(
        [sum(c) for c in blocks]
    )
    arr = dask.array.from_array(values, chunks=blocks)
    out = split_chunks(arr, target)
    expected = arr.rechunk(target)
    assert out.chunks == expected.chunks
    np.testing.assert_array_equal(out.compute(), values)
    inside = all(
        all(any(lo >= a and hi <= b for a, b in _edges(blocks[ax])) for lo, hi in _edges(new))
        for ax, new in target.items()
    )
    tasks = len(out.dask) - len(arr.dask)
    assert (tasks == out.npartitions) == inside


def _edges(chunks):
    import itertools

    return list(itertools.pairwise(np.cumsum((0, *chunks))))


def test_small_chunks_cost_a_read_and_a_split_each(m4):
    # 288 storage chunks of 8 x 8 cells: the range check, the stacking and the kernel run
    # once per compute block (3: time merged to the window's look-back, space one block);
    # each storage chunk costs only its read and one output slice.
    da = sst_field(nt=6, ny=48, nx=64, seed=5).chunk(time=1, lat=8, lon=8)
    out = run(da, m4)
    assert out.chunks[1:] == ((32,) * 6, (32,) * 8)
    layers = out.data.dask.layers
    per_block = {
        name: len(layer)
        for name, layer in layers.items()
        if name.startswith(("_checked_range", "stack", "sstsr-downscale"))
    }
    assert sorted(name.split("-")[0] for name in per_block) == ["_checked_range", "sstsr", "stack"]
    assert set(per_block.values()) == {3}, per_block
    n_in, n_out = da.data.npartitions, out.data.npartitions
    assert len(out.data.dask) <= n_in + n_out + 30
    assert_close_nan(out.values, run(da.compute(), m4).values, tol=1e-5)
