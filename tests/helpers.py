"""Helpers the tests share (import them: ``from helpers import make_model``): the one builder
of small generators, small SST fields, and a scheduler that counts computes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import dask.threaded
import numpy as np
import xarray as xr

from xsstsr.models import Model, init_model, new_metadata

DATA = Path(__file__).parent / "data"
#: a generator with a ~10-pixel halo, so fields of a few dozen pixels split into chunks
SMALL_ARCH = {"features": 8, "blocks": 1, "up_features": 4, "fill_iterations": 1}


def make_model(
    upsample: int = 4,
    pool: int = 1,
    window: int = 3,
    seed: int = 0,
    inputs: tuple[str, ...] = ("sst",),
    name: str | None = None,
    scale: float = 0.01,
    architecture: dict[str, Any] | None = None,
    *,
    small_halo: bool = False,
    conserve: bool = False,
    tag: str = "test",
) -> Model:
    """A generator whose correction branch is small but not zero (so tiling matters).

    ``small_halo`` gives :data:`SMALL_ARCH` (a ~10-pixel halo); ``scale=0`` a generator that
    is exactly bicubic. The name is ``tag-xF`` (plus the extra inputs and ``-conserve``)
    unless ``name`` is given.
    """
    if small_halo or conserve:
        architecture = {**SMALL_ARCH, **(architecture or {}), "conserve": conserve}
    if name is None:
        extra = "".join(f"-{source}" for source in inputs[1:])
        name = f"{tag}-x{upsample / pool:g}{extra}{'-conserve' if conserve else ''}"
    meta = new_metadata(
        name=name,
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
    return xr.DataArray(
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


@contextlib.contextmanager
def counting_scheduler() -> Iterator[list[Any]]:
    """Run dask on threads and count the graphs it executes: ``with counting_scheduler() as
    computes: ...; assert len(computes) == 1``. Each entry is the keys asked for."""
    computes: list[Any] = []

    def get(dsk: Any, keys: Any, **kwargs: Any) -> Any:
        computes.append(keys)
        return dask.threaded.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=get):
        yield computes


@contextlib.contextmanager
def local_cluster(*, set_as_default: bool = True) -> Iterator[Any]:
    """A dask.distributed client on a LocalCluster of two single-threaded worker processes."""
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            worker_dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster, set_as_default=set_as_default) as client,
    ):
        yield client
