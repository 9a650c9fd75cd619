"""Shared fixtures: small generators made in the test session, small SST fields, the
scheduler matrix (threads, processes, a dask.distributed LocalCluster). Helpers that tests
import live in ``helpers.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import xarray as xr
from helpers import local_cluster, make_model, sst_field

from xsstsr.models import Model


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


# -- the scheduler matrix ------------------------------------------------------------------


@pytest.fixture(scope="session")
def dask_client() -> Iterator[object]:
    """A dask.distributed LocalCluster of two single-threaded worker processes."""
    pytest.importorskip("distributed")
    with local_cluster(set_as_default=False) as client:
        yield client


@pytest.fixture(
    params=["threads", "processes", pytest.param("distributed", marks=pytest.mark.distributed)]
)
def scheduler(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the test's computes on each of dask's schedulers in turn (two workers each)."""
    import dask

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # for the worker processes started here
    if request.param == "distributed":
        client = request.getfixturevalue("dask_client")
        with dask.config.set(scheduler=client.get):
            yield request.param
    else:
        with dask.config.set(scheduler=request.param, num_workers=2):
            yield request.param
