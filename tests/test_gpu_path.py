"""The GPU path's logic, checked where it does not need a GPU.

Reduced precision: CPU autocast runs the same float16/bfloat16 arithmetic formats as CUDA
autocast, so the released models' error against float32 is measured here on real data.
Out-of-memory: a device running out of memory cannot be provoked on a CPU, so a real
generator is wrapped by one that raises ``torch.OutOfMemoryError`` above a batch size
(the error torch raises on a GPU), and the splitting is checked against the plain pass.
The CUDA run itself is ``pytest -m cuda`` (tests/test_downscale.py) on a GPU machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from helpers import make_model, sst_field

import xsstsr
from xsstsr.inference.devices import autocast_dtype, resolve_precision
from xsstsr.inference.tiling import (
    CPU_BATCH_BYTES,
    GPU_MEMORY_SHARE,
    GPU_TILES,
    TileSpec,
    activation_bytes_per_pixel,
    forward_splitting,
    gpu_tile,
    infer_frames,
    tiles_per_pass,
)

RELEASED = ["sst-x2", "sst-x2.5", "sst-x4", "sst-x5"]


@pytest.fixture(scope="module")
def coarse() -> xr.DataArray:
    return xsstsr.datasets.open_sample("coarse").sst.isel(time=slice(0, 6))


@pytest.mark.parametrize("name", RELEASED)
def test_float16_within_001_K_of_float32(coarse, name):
    exact = xsstsr.downscale(coarse, model=name, device="cpu", precision="float32")
    half = xsstsr.downscale(coarse, model=name, device="cpu", precision="float16")
    assert half.attrs["xsstsr_precision"] == "float16"
    assert exact.attrs["xsstsr_precision"] == "float32"
    assert "precision='float16'" in half.attrs["history"]
    diff = np.abs(half.values - exact.values)
    assert np.array_equal(np.isnan(half.values), np.isnan(exact.values))
    assert np.nanmax(diff) < 0.01  # K
    assert np.nanmax(diff) > 0  # the correction branch really ran in float16


def test_bfloat16_is_coarser_but_close(coarse):
    exact = xsstsr.downscale(coarse, model="sst-x4", device="cpu", precision="float32")
    bf16 = xsstsr.downscale(coarse, model="sst-x4", device="cpu", precision="bfloat16")
    half = xsstsr.downscale(coarse, model="sst-x4", device="cpu", precision="float16")
    err_bf16 = float(np.nanmax(np.abs(bf16.values - exact.values)))
    err_half = float(np.nanmax(np.abs(half.values - exact.values)))
    assert err_half < err_bf16 < 0.05  # 8 vs 11 significant bits: fp16 is the GPU default


def test_auto_precision_follows_the_device():
    assert resolve_precision("auto", "cpu") == "float32"
    assert resolve_precision("auto", "cuda") == "float16"
    assert resolve_precision("auto", "cuda:1") == "float16"
    assert resolve_precision("auto", "auto") == "auto"  # decided on the worker
    assert resolve_precision("bfloat16", "cpu") == "bfloat16"
    assert autocast_dtype("auto", "cpu") is None
    assert autocast_dtype("auto", "cuda:0") is torch.float16
    assert autocast_dtype("bfloat16", "cuda") is torch.bfloat16


def test_lazy_float16_equals_eager_float16(coarse):
    eager = xsstsr.downscale(coarse, model="sst-x4", device="cpu", precision="float16")
    lazy = xsstsr.downscale(
        coarse.chunk(time=2, lat=16, lon=16), model="sst-x4", device="cpu", precision="float16"
    )
    np.testing.assert_allclose(lazy.compute().values, eager.values, atol=2e-3)


@pytest.mark.parametrize("precision", ["half", "fp16", None, 16, "FLOAT32"])
def test_bad_precision(precision):
    da = sst_field()
    with pytest.raises(xsstsr.InputDataError, match="float16") as info:
        da.sstsr.downscale(model=make_model(), device="cpu", precision=precision)
    assert isinstance(info.value, ValueError)


class MemoryLimited(torch.nn.Module):
    """A real generator on a device that holds at most ``max_batch`` tiles at once."""

    def __init__(self, net: torch.nn.Module, max_batch: int) -> None:
        super().__init__()
        self.net = net
        self.max_batch = max_batch
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor, autocast: torch.dtype | None = None) -> torch.Tensor:
        if x.shape[0] > self.max_batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.batches.append(int(x.shape[0]))
        return self.net(x, autocast=autocast)


def _frames(n: int, ny: int = 20, nx: int = 24) -> torch.Tensor:
    rng = np.random.default_rng(3)
    return torch.from_numpy(rng.normal(0, 1, (n, 3, ny, nx)).astype("float32"))


def test_out_of_memory_splits_the_batch():
    net = make_model().network("cpu")
    x = _frames(7)
    limited = MemoryLimited(net, max_batch=2)
    with torch.inference_mode():
        whole = net(x)
        split = forward_splitting(limited, x, None, "cpu")
    assert max(limited.batches) <= 2
    assert sum(limited.batches) == 7
    torch.testing.assert_close(split, whole, atol=1e-6, rtol=0)


def test_one_tile_out_of_memory_says_how_to_fix():
    net = make_model().network("cpu")
    with pytest.raises(xsstsr.DeviceError, match=r"tile_size=") as info, torch.inference_mode():
        forward_splitting(MemoryLimited(net, max_batch=0), _frames(4), None, "cuda:0")
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)
    assert "cuda:0" in str(info.value)


def test_infer_frames_survives_out_of_memory(monkeypatch):
    model = make_model()
    spec = TileSpec(
        ref=xsstsr.inference.register(model),
        device="cpu",
        upsample=4,
        pool=1,
        halo=model.halo,
        window=3,
        mask_output=True,
        batch_size=16,  # asks for more than the "device" holds
        tile=8,
    )
    frames = _frames(3).numpy()
    expected = infer_frames(frames, spec, model)
    limited = MemoryLimited(model.network("cpu"), max_batch=3)
    monkeypatch.setattr(type(model), "network", lambda self, device="cpu": limited)
    got = infer_frames(frames, spec, model)
    assert max(limited.batches) <= 3
    np.testing.assert_allclose(got, expected, atol=1e-6)


GiB = 1024**3


@pytest.mark.parametrize("name", RELEASED)
def test_tile_and_batch_from_free_memory(name):
    model = xsstsr.load_model(name)
    spec = TileSpec(
        ref=xsstsr.inference.register(model),
        device="cuda",
        upsample=model.upsample,
        pool=model.pool,
        halo=model.halo,
        window=model.window,
        mask_output=True,
        batch_size=None,
    )
    per_pixel = activation_bytes_per_pixel(spec, model)
    chosen = {}
    for free in (1 * GiB, 4 * GiB, 12 * GiB, 40 * GiB, 78 * GiB):
        side = gpu_tile(free, per_pixel, model.halo)
        pixels = (side + 2 * model.halo) ** 2
        batch = tiles_per_pass(free, per_pixel, pixels)
        # a whole pass of the chosen batch fits the share of free memory
        assert batch * pixels * per_pixel <= GPU_MEMORY_SHARE * free
        chosen[free] = (side, batch)
    sides = [side for side, _ in chosen.values()]
    assert sides == sorted(sides)  # more memory, larger tiles
    assert chosen[78 * GiB][0] == GPU_TILES[0]  # an H100: the largest tiles, several at once
    assert chosen[78 * GiB][1] >= 4
    assert chosen[1 * GiB][0] < GPU_TILES[0]  # a small GPU still gets a tile that fits


def test_cpu_batches_follow_the_activation_budget():
    assert tiles_per_pass(None, 1000, 1000) == CPU_BATCH_BYTES // 10**6
    assert tiles_per_pass(None, 10**6, 10**6) == 1  # never zero
