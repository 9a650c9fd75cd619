"""Shared fixtures: small generators made in the test session, small SST fields."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import xsstsr
from xsstsr.model import Model, init_model, new_metadata

DATA = Path(__file__).parent / "data"
SMALL_ARCH = {"features": 8, "blocks": 1, "up_features": 4, "fill_iterations": 1}


def make_model(
    upsample: int = 4,
    pool: int = 1,
    window: int = 3,
    seed: int = 0,
    inputs: tuple[str, ...] = ("sst",),
    name: str | None = None,
    scale: float = 0.01,
    architecture: dict[str, int] | None = None,
) -> Model:
    """A generator whose correction branch is small but not zero (so tiling matters).

    ``architecture=SMALL_ARCH`` gives a ~10-pixel halo, so fields of a few dozen pixels
    can be split into chunks wider than the halo.
    """
    meta = new_metadata(
        name=name or f"test-x{upsample / pool:g}",
        upsample=upsample,
        pool=pool,
        window=window,
        inputs=list(inputs),
        mean=15.0,
        std=8.0,
        architecture=architecture,
    )
    state = init_model(meta, seed=seed).state
    rng = np.random.default_rng(seed)
    state["tail.weight"] = rng.normal(0, scale, state["tail.weight"].shape).astype("float32")
    return Model(state, meta)


def sst_field(
    nt: int = 6,
    ny: int = 24,
    nx: int = 32,
    *,
    seed: int = 0,
    land: bool = True,
    units: str = "degC",
    lat0: float = 30.0,
    lon0: float = 120.0,
    step: float = 0.25,
) -> xr.DataArray:
    """A smooth random SST field with a land corner, CF attributes and a time axis."""
    rng = np.random.default_rng(seed)
    lat = lat0 + step / 2 + step * np.arange(ny)
    lon = lon0 + step / 2 + step * np.arange(nx)
    yy, xx = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    base = 25.0 - 0.3 * yy + 0.5 * np.sin(xx / 4.0)
    values = base[None] + rng.normal(0, 0.3, (nt, ny, nx)) + np.linspace(0, 1, nt)[:, None, None]
    if land:
        values[:, : ny // 4, : nx // 4] = np.nan
    if units == "K":
        values = values + 273.15
    da = xr.DataArray(
        values.astype("float32"),
        dims=("time", "lat", "lon"),
        coords={
            "time": np.datetime64("2021-01-01") + np.arange(nt).astype("timedelta64[D]"),
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        name="sst",
        attrs={
            "standard_name": "sea_surface_temperature",
            "units": units,
            "long_name": "sea surface temperature",
        },
    )
    return da


@pytest.fixture(scope="session")
def model_x4() -> Model:
    return make_model(4, 1)


@pytest.fixture(scope="session")
def model_x2_5() -> Model:
    return make_model(5, 2)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory, model_x4: Model) -> Path:
    path = tmp_path_factory.mktemp("weights") / "tiny-x4.safetensors"
    model_x4.save(path)
    return path


@pytest.fixture
def sst() -> xr.DataArray:
    return sst_field()


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: the tests' tiny models gain nothing from more, and on a busy
    machine OpenMP threads spinning against other processes make them many times slower.
    Child processes (resumed fits, torchrun) are given the same count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Never touch the user's cache; never download from the release URL."""
    monkeypatch.setenv("XSSTSR_CACHE", str(tmp_path_factory.getbasetemp() / "xsstsr-cache"))
    monkeypatch.delenv("XSSTSR_WEIGHTS_URL", raising=False)


__all__ = ["DATA", "SMALL_ARCH", "make_model", "sst_field", "xsstsr"]
