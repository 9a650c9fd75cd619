"""Atomic writes of netCDF and zarr, failures and interrupts mid-write, extensions."""

from __future__ import annotations

import errno
import os
import signal
import warnings
from pathlib import Path

import dask
import dask.array as dsa
import dask.threaded
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback
from helpers import make_model, sst_field

import xsstsr
from xsstsr.errors import InputDataError, WriteError
from xsstsr.io import PARTIAL_SUFFIX, atomic, open_any, output_format, write_dataset
from xsstsr.io import write as writer

FORMATS = ["out.nc", "out.zarr"]


def field(nt: int = 4) -> xr.DataArray:
    return sst_field(nt=nt, ny=8, nx=10, land=True)


def failing(da: xr.DataArray, exc: type[BaseException], block: int = 2) -> xr.DataArray:
    """``da`` chunked by time, whose block ``block`` raises ``exc`` when computed."""

    def maybe_fail(x: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        if block_info is not None and block_info[0]["chunk-location"][0] == block:
            raise exc("boom")
        return x

    lazy = da.chunk(time=1)
    return lazy.copy(data=dsa.map_blocks(maybe_fail, lazy.data, dtype=lazy.dtype))


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("name", FORMATS)
def test_round_trip_leaves_only_the_destination(tmp_path: Path, name: str) -> None:
    da = field()
    out = write_dataset(da.chunk(time=2), tmp_path / name)
    assert out == tmp_path / name
    assert listing(tmp_path) == [name]
    with open_any(out) as back:
        xr.testing.assert_allclose(back["sst"].load(), da)
        assert back["sst"].attrs["units"] == "degC"


@pytest.mark.parametrize("name", FORMATS)
def test_in_memory_dataset_and_lazy_reading(tmp_path: Path, name: str) -> None:
    ds = field().to_dataset()
    write_dataset(ds, tmp_path / name)
    back = open_any(tmp_path / name, chunks={})
    assert isinstance(back["sst"].data, dsa.Array)
    xr.testing.assert_allclose(back["sst"].compute(), ds["sst"])


def test_netcdf_is_compressed_and_chunked_like_dask(tmp_path: Path) -> None:
    write_dataset(field(nt=6).chunk(time=3), tmp_path / "c.nc")
    with xr.open_dataset(tmp_path / "c.nc") as back:
        enc = back["sst"].encoding
    assert enc["zlib"] is True
    assert enc["chunksizes"] == (3, 8, 10)


@pytest.mark.parametrize("name", FORMATS)
def test_failure_mid_write_leaves_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        write_dataset(failing(field(), RuntimeError), tmp_path / name)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", FORMATS)
def test_failure_keeps_the_existing_destination(tmp_path: Path, name: str) -> None:
    old = field() + 100.0
    write_dataset(old, tmp_path / name)
    with pytest.raises(RuntimeError, match="boom"):
        write_dataset(failing(field(), RuntimeError), tmp_path / name, overwrite=True)
    assert listing(tmp_path) == [name]
    with open_any(tmp_path / name) as back:
        xr.testing.assert_allclose(back["sst"].load(), old)


@pytest.mark.parametrize("name", FORMATS)
def test_keyboard_interrupt_mid_write_leaves_nothing(tmp_path: Path, name: str) -> None:
    with pytest.raises(KeyboardInterrupt):
        write_dataset(failing(field(nt=8), KeyboardInterrupt, block=5), tmp_path / name)
    assert listing(tmp_path) == []


@pytest.mark.parametrize("name", FORMATS)
def test_overwrite(tmp_path: Path, name: str) -> None:
    write_dataset(field(), tmp_path / name)
    new = field() + 1.0
    write_dataset(new, tmp_path / name, overwrite=True)
    with open_any(tmp_path / name) as back:
        xr.testing.assert_allclose(back["sst"].load(), new)
    with pytest.raises(WriteError, match="exists; pass overwrite=True") as info:
        write_dataset(field() + 2.0, tmp_path / name)  # the default keeps what is there
    assert info.value.errno == errno.EEXIST
    assert listing(tmp_path) == [name]
    with open_any(tmp_path / name) as back:
        xr.testing.assert_allclose(back["sst"].load(), new)


def test_zarr_swap_failing_half_way_restores_the_old_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = field() + 100.0
    write_dataset(old, tmp_path / "s.zarr")
    real_replace = os.replace
    calls = []

    def flaky_replace(src: os.PathLike[str], dst: os.PathLike[str]) -> None:
        calls.append((Path(src).name, Path(dst).name))
        if len(calls) == 2:  # moving the new store into place
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        write_dataset(field(), tmp_path / "s.zarr", overwrite=True)
    monkeypatch.setattr(os, "replace", real_replace)
    assert listing(tmp_path) == ["s.zarr"]
    with open_any(tmp_path / "s.zarr") as back:
        xr.testing.assert_allclose(back["sst"].load(), old)


def test_temporary_is_a_hidden_sibling(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def listing_get(dsk, keys, **kwargs):  # what the folder holds while dask computes
        seen.append(listing(tmp_path / "sub"))
        return dask.threaded.get(dsk, keys, **kwargs)

    with dask.config.set(scheduler=listing_get):
        write_dataset(field().chunk(time=2), tmp_path / "sub" / "x.nc")  # makes the folder
    assert seen
    for names in seen:
        assert len(names) == 1
        assert names[0].startswith(".x.nc.")
        assert names[0].endswith(PARTIAL_SUFFIX)
    assert listing(tmp_path / "sub") == ["x.nc"]


def test_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dataset(field().chunk(time=1), tmp_path / "p.nc", progress=True)
    assert "100% Completed" in capsys.readouterr().out
    write_dataset(field().chunk(time=1), tmp_path / "q.nc")
    assert "Completed" not in capsys.readouterr().out


@pytest.mark.parametrize("name", FORMATS)
def test_synchronous_scheduler(tmp_path: Path, name: str) -> None:
    with dask.config.set(scheduler="synchronous"):
        write_dataset(field().chunk(time=1), tmp_path / name)
        with pytest.raises(RuntimeError):
            write_dataset(failing(field(), RuntimeError), tmp_path / ("bad" + name))
    assert listing(tmp_path) == [name]


def test_dataarray_without_name(tmp_path: Path) -> None:
    write_dataset(field().rename(None), tmp_path / "n.nc")
    with open_any(tmp_path / "n.nc") as back:
        assert list(back.data_vars) == ["sst"]


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("a.nc", "netcdf"),
        ("a.NC4", "netcdf"),
        ("dir/a.cdf", "netcdf"),
        ("a.netcdf", "netcdf"),
        ("a.zarr", "zarr"),
        (Path("b.zarr"), "zarr"),
    ],
)
def test_output_format(path: str, kind: str) -> None:
    assert output_format(path) == kind


@pytest.mark.parametrize("path", ["a.txt", "a", "a.nc.gz", "a.h5", "zarr"])
def test_unknown_extensions(tmp_path: Path, path: str) -> None:
    with pytest.raises(InputDataError, match=r"\.nc.*\.zarr"):
        output_format(path)
    with pytest.raises(InputDataError, match="extension"):
        write_dataset(field(), tmp_path / path)
    with pytest.raises(InputDataError, match="extension"):
        open_any(tmp_path / path)
    assert listing(tmp_path) == []


def test_open_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_any(tmp_path / "missing.nc")


def _signal_inside_deferred_block(sig: signal.Signals, times: int, log: list) -> None:
    with atomic.deferred_interrupts():
        for _ in range(times):
            # raise_signal runs the handler before it returns; os.kill to the process could be
            # taken by another thread and handled only after the block (a race under load)
            signal.raise_signal(sig)
        log.append("the block finished")


def test_deferred_interrupts_deliver_after_the_block() -> None:
    log: list = []
    # Python's own SIGINT handler (an earlier test's cluster or kernel may have replaced it)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):  # the held signal, delivered at the end
            _signal_inside_deferred_block(signal.SIGINT, 1, log)
        assert log == ["the block finished"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_deferred_interrupts_second_signal_interrupts_at_once() -> None:
    log: list = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: log.append(signum))
    try:
        with pytest.raises(KeyboardInterrupt):
            _signal_inside_deferred_block(signal.SIGTERM, 2, log)
        assert log == [signal.SIGTERM]  # not finished; the held one still reached the handler
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_odd_record_with_small_chunks_writes_to_zarr(tmp_path: Path) -> None:
    """Chunks merged to hold the time window must not leave zarr-incompatible chunks."""
    from helpers import make_model

    import xsstsr

    da = sst_field(nt=7, ny=24, nx=32).chunk({"time": 2})  # 2, 2, 2, 1: the 1 is merged
    high = xsstsr.downscale(da, model=make_model(4, 1), device="cpu")
    chunks = high.chunks[0]
    assert set(chunks[:-1]) == {chunks[0]}
    assert chunks[-1] <= chunks[0]
    out = write_dataset(high, tmp_path / "odd.zarr")
    back = xr.open_zarr(out)["sst"].load()
    np.testing.assert_allclose(back.values, high.values, atol=1e-6, equal_nan=True)


def test_irregular_chunks_are_made_storable_in_zarr(tmp_path: Path) -> None:
    da = sst_field(nt=6, ny=24, nx=32).chunk({"time": 2, "lat": (10, 6, 8)})
    out = write_dataset(da, tmp_path / "irregular.zarr")
    back = xr.open_zarr(out)["sst"].load()
    np.testing.assert_allclose(back.values, da.values, equal_nan=True)


@pytest.mark.parametrize("series_chunk", [1, 3])
def test_a_dataset_with_other_time_variables_writes_to_zarr(
    tmp_path: Path, series_chunk: int
) -> None:
    """A time series beside the SST (or time bounds) chunked like the input, or otherwise:
    the result's chunks agree, and a store written in passes holds every value."""
    field = sst_field(nt=12, ny=24, nx=32)
    ds = xr.Dataset({"sst": field, "sst_mean": field.mean(("lat", "lon"))})
    lazy = ds.chunk({"time": 1})
    lazy["sst_mean"] = lazy["sst_mean"].chunk({"time": series_chunk})
    high = xsstsr.downscale(lazy, model=make_model(4, 1), variable="sst", device="cpu")
    if series_chunk == 1:
        assert high["sst"].chunksizes["time"] == high["sst_mean"].chunksizes["time"]
    out = high.sstsr.write(tmp_path / "series.zarr")
    back = xr.open_zarr(out).load()
    np.testing.assert_allclose(back["sst"].values, high["sst"].values, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(back["sst_mean"].values, ds["sst_mean"].values)


def test_lazy_time_bounds_from_year_zero_write_to_zarr_in_passes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ferret's climatologies count hours from year 0; their time bounds, lazy, once failed
    in the passes (xarray decoded the store's not yet written bounds)."""
    from xsstsr.cli import open_input

    monkeypatch.setattr(writer, "MIN_CHUNKS_PER_PASS", 2)
    monkeypatch.setattr(writer, "CHUNKS_PER_PASS_PER_WORKER", 1)
    field = sst_field(nt=6, ny=16, nx=16)
    hours = 24.0 * (15 + 30.5 * np.arange(6))
    units = {"units": "hour since 0000-01-01 00:00:00"}
    raw = field.to_dataset().assign_coords(time=("time", hours, {**units, "bounds": "time_bnds"}))
    raw["time_bnds"] = (("time", "nv"), np.stack([hours - 360, hours + 360], -1), units)
    raw.to_netcdf(tmp_path / "year0.nc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds, _ = open_input(str(tmp_path / "year0.nc"), chunks={"time": 1}, what="IN")
        assert ds["time_bnds"].chunks is not None
        out = write_dataset(ds, tmp_path / "year0.zarr")
        back = xr.open_zarr(out, use_cftime=True).load()
    np.testing.assert_array_equal(back["sst"].values, ds["sst"].values)
    assert back["time_bnds"].values[0, 0] == ds["time_bnds"].values[0, 0]


@pytest.mark.parametrize("name", ["out.nc", "out.zarr"])
def test_coordinates_and_bounds_get_no_fill_value(tmp_path: Path, name: str) -> None:
    """CF: coordinates and cell bounds have no missing values; xarray would add NaN."""
    high = xsstsr.downscale(sst_field(nt=2, ny=8, nx=8), model=make_model(4, 1), device="cpu")
    ds = high.to_dataset().assign_coords(
        lat_bnds=(("lat", "bnds"), np.stack([high.lat - 0.1, high.lat + 0.1], -1))
    )
    ds["lat"].attrs["bounds"] = "lat_bnds"
    out = write_dataset(ds.chunk({"time": 1}), tmp_path / name)
    back = open_any(out)
    for coord in ("lat", "lon", "lat_bnds"):
        assert back[coord].encoding.get("_FillValue") is None, coord
    assert np.isnan(back["sst"].encoding["_FillValue"])


# -- leftovers of writers killed outright ---------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def leftover(dest: Path, pid: int, suffix: str, data: xr.Dataset | None = None) -> Path:
    tag = atomic.host_tag()
    path = dest.with_name(f".{dest.name}.{tag}-{pid}-0123abcd{suffix}")
    if data is None:
        path.mkdir()
        (path / "chunk").write_bytes(b"half")
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zarr 3 on consolidated metadata
            data.to_zarr(path, mode="w")
    return path


@pytest.mark.skipif(os.name != "posix", reason="pid checks are POSIX")
def test_next_write_clears_a_dead_writers_temporaries(tmp_path):
    dest = tmp_path / "out.zarr"
    dead = leftover(dest, dead_pid(), PARTIAL_SUFFIX)
    live = leftover(dest, os.getpid(), PARTIAL_SUFFIX)  # a write under way in this process
    other = tmp_path / ".other.zarr.host-1-0123abcd.partial"  # another destination's
    other.mkdir()
    write_dataset(field(), dest)
    assert not dead.exists()
    assert live.exists()
    assert other.exists()
    with open_any(dest) as back:
        np.testing.assert_array_equal(back["sst"].values, field().values)


@pytest.mark.skipif(os.name != "posix", reason="pid checks are POSIX")
def test_a_previous_store_moved_aside_is_put_back(tmp_path):
    """Killed between moving the old store aside and renaming the new one in: the old
    result comes back at its name (and is what remains if the next write fails)."""
    dest = tmp_path / "out.zarr"
    previous = field().to_dataset().assign_attrs(title="previous")
    aside = leftover(dest, dead_pid(), atomic.OLD_SUFFIX, previous)
    half = leftover(dest, dead_pid(), PARTIAL_SUFFIX)
    assert atomic.sweep_stale(dest) == sorted([aside, half], key=lambda p: p.name)
    assert listing(tmp_path) == ["out.zarr"]
    with open_any(dest) as back:
        assert back.attrs["title"] == "previous"

    aside = leftover(dest, dead_pid(), atomic.OLD_SUFFIX, previous)
    with pytest.raises(ValueError, match="boom"):
        write_dataset(failing(field(), ValueError), dest, overwrite=True)
    assert listing(tmp_path) == ["out.zarr"]  # the stale copy is gone, the result kept
    with open_any(dest) as back:
        assert back.attrs["title"] == "previous"


@pytest.mark.skipif(os.name != "posix", reason="pid checks are POSIX")
def test_model_save_clears_a_dead_writers_temporary(tmp_path):
    from helpers import make_model

    dest = tmp_path / "model.safetensors"
    stale = dest.with_name(f".{dest.name}.{atomic.host_tag()}-{dead_pid()}-")
    stale = stale.with_name(stale.name + "0123abcd" + PARTIAL_SUFFIX)
    stale.write_bytes(b"half a model")
    make_model().save(dest)
    assert listing(tmp_path) == ["model.safetensors"]
    assert (dest.stat().st_mode & 0o777) == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class _Computes(Callback):
    """Per dask compute: the tasks of the graph the scheduler was given (after culling),
    and the most arrays with a time axis held in dask's cache at once."""

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[int] = []
        self.held: list[int] = []

    def _start(self, dsk) -> None:
        self.tasks.append(len(dsk))
        self.held.append(0)

    def _posttask(self, key, result, dsk, state, id) -> None:
        held = sum(
            isinstance(v, np.ndarray) and v.ndim >= 3 and v.size > 0
            for v in state["cache"].values()
        )
        self.held[-1] = max(self.held[-1], held)


def lazy_field(nt: int, n: int, lon0: float, step: float, lat_chunk: int) -> xr.DataArray:
    """``nt`` steps made inside the graph (as when reading a store), 2 steps a chunk."""
    one = sst_field(1, n, n, lon0=lon0, lat0=-45.0, step=step)
    lat_step = min(step, 90.0 / n)  # a global field's latitudes stay within -45..45
    one = one.assign_coords(lat=("lat", -45.0 + lat_step * (0.5 + np.arange(n)), one.lat.attrs))
    data = dsa.zeros((nt, n, n), chunks=(2, lat_chunk, n), dtype="float32") + one.values[0]
    time = one["time"].values[0] + np.arange(nt).astype("timedelta64[D]")
    return one.isel(time=[0] * nt).copy(data=data).assign_coords(time=time)


STREAMED_CASES = pytest.mark.parametrize(
    ("n", "lon0", "step", "lat_chunk"),
    [(16, 120.0, 0.25, 16), (16, 0.0, 22.5, 16), (32, 120.0, 0.25, 16)],
    ids=["regional", "global", "chunked-in-space"],
)


def _largest_compute(
    tmp_path: Path, scheduler: str, n: int, lon0: float, step: float, lat_chunk: int
) -> dict[int, tuple[int, int]]:
    """Record length -> (tasks, blocks held) of the largest compute writing it to zarr."""
    model = make_model(4, small_halo=True)
    largest = {}
    for nt in (48, 192):
        out = xsstsr.downscale(lazy_field(nt, n, lon0, step, lat_chunk), model=model, device="cpu")
        with dask.config.set(scheduler=scheduler, num_workers=2), _Computes() as computes:
            write_dataset(out, tmp_path / f"{nt}.zarr")
        largest[nt] = (max(computes.tasks), max(computes.held))
        written = xr.open_zarr(tmp_path / f"{nt}.zarr")["sst"]
        np.testing.assert_allclose(written.values, out.values, rtol=0, atol=1e-6)
    return largest


@pytest.mark.parametrize("scheduler", ["synchronous", "threads"])
@STREAMED_CASES
def test_streaming_write_holds_the_same_whatever_the_record_length(
    tmp_path: Path, scheduler: str, n: int, lon0: float, step: float, lat_chunk: int
) -> None:
    # What one compute can hold is bounded by its graph: a pass's graph must not grow with
    # the record (in one graph: regional 147 tasks at 48 steps, 579 at 192; chunked in
    # space 628 and 2500, holding 99 and 387 blocks). The graph is deterministic, as is
    # the synchronous scheduler's order; the threads' order depends on timing and load,
    # so what they hold at once is not compared.
    largest = _largest_compute(tmp_path, scheduler, n, lon0, step, lat_chunk)
    (tasks_48, held_48), (tasks_192, held_192) = largest[48], largest[192]
    assert tasks_192 <= tasks_48, largest
    if scheduler == "synchronous":  # a block more or less is order; growth would be ~4x
        assert held_192 <= held_48 + 1, largest


def test_the_streaming_measure_sees_one_graph(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without passes (one graph per store), the measure above grows with the record."""
    monkeypatch.setattr(writer, "MIN_CHUNKS_PER_PASS", 10**9)
    largest = _largest_compute(tmp_path, "synchronous", 32, 120.0, 0.25, 16)
    (tasks_48, held_48), (tasks_192, held_192) = largest[48], largest[192]
    assert tasks_192 > 3 * tasks_48, largest
    assert held_192 > 3 * held_48, largest


@pytest.fixture
def small_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "MIN_CHUNKS_PER_PASS", 2)
    monkeypatch.setattr(writer, "CHUNKS_PER_PASS_PER_WORKER", 1)


@pytest.mark.usefixtures("small_passes")
def test_zarr_passes_write_every_variable(tmp_path: Path) -> None:
    da = field(nt=9)
    ds = xr.Dataset(
        {
            "sst": da.chunk(time=2),  # 5 chunks: passes of 2, 2 and 1
            "sst_in_memory": da + 1.0,
            "mean": da.mean("time").chunk(),  # lazy, without the streamed dimension
        },
        attrs={"title": "passes"},
    ).assign_coords(day=("time", np.arange(9)))
    with dask.config.set(scheduler="threads", num_workers=2):
        write_dataset(ds, tmp_path / "p.zarr")
    with open_any(tmp_path / "p.zarr") as back:
        xr.testing.assert_identical(back.load(), ds.compute())
    assert listing(tmp_path) == ["p.zarr"]


@pytest.mark.usefixtures("small_passes")
@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_failure_in_a_later_pass_keeps_the_existing_store(
    tmp_path: Path, exc: type[BaseException]
) -> None:
    old = field(nt=8) + 100.0
    write_dataset(old, tmp_path / "s.zarr")
    with pytest.raises(exc, match="boom"):  # block 5 is in the third pass of two chunks
        write_dataset(failing(field(nt=8), exc, block=5), tmp_path / "s.zarr", overwrite=True)
    assert listing(tmp_path) == ["s.zarr"]
    with open_any(tmp_path / "s.zarr") as back:
        xr.testing.assert_allclose(back["sst"].load(), old)


@pytest.mark.usefixtures("small_passes")
def test_progress_over_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_dataset(field(nt=8).chunk(time=1), tmp_path / "p.zarr", progress=True)
    err = capsys.readouterr().err
    assert "writing p.zarr" in err
    assert "8/8" in err
    write_dataset(field(nt=8).chunk(time=1), tmp_path / "q.zarr")
    assert "writing" not in capsys.readouterr().err


def test_accessor_write_delegates(tmp_path: Path) -> None:
    da = field().chunk(time=2)
    assert da.sstsr.write(tmp_path / "a.zarr", progress=False) == tmp_path / "a.zarr"
    assert da.to_dataset().sstsr.write(tmp_path / "d.nc") == tmp_path / "d.nc"
    for name in ("a.zarr", "d.nc"):
        with open_any(tmp_path / name) as back:
            xr.testing.assert_allclose(back["sst"].load(), da.compute())
    with pytest.raises(WriteError, match="overwrite=True"):
        da.sstsr.write(tmp_path / "a.zarr")
    da.sstsr.write(tmp_path / "a.zarr", overwrite=True)  # forwarded to write_dataset


# -- refusals before any compute ------------------------------------------------------------


class _Starts(Callback):
    """Counts the dask computes started (any local scheduler)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def _start(self, dsk) -> None:
        self.count += 1


def observed(calls: list[int]) -> xr.Dataset:
    """A lazy dataset whose computed blocks are recorded in ``calls``."""
    da = field().chunk(time=1)

    def record(x: np.ndarray, block_info: dict | None = None) -> np.ndarray:
        calls.append(block_info[0]["chunk-location"][0])
        return x

    # meta given: dask does not call ``record`` on a dummy to infer it
    meta = np.empty((0, 0, 0), dtype=da.dtype)
    return da.copy(data=dsa.map_blocks(record, da.data, meta=meta)).to_dataset()


def _parent_is_a_file(tmp: Path, ds: xr.Dataset) -> tuple[xr.Dataset, Path, dict]:
    (tmp / "notes").write_text("a file, not a folder")
    return ds, tmp / "notes" / "out.nc", {}


def _grandparent_is_a_file(tmp: Path, ds: xr.Dataset) -> tuple[xr.Dataset, Path, dict]:
    (tmp / "notes").write_text("a file, not a folder")
    return ds, tmp / "notes" / "sub" / "out.zarr", {"overwrite": True}


def _netcdf_path_is_a_directory(tmp: Path, ds: xr.Dataset) -> tuple[xr.Dataset, Path, dict]:
    (tmp / "out.nc").mkdir()
    return ds, tmp / "out.nc", {"overwrite": True}


def _zarr_path_is_a_file(tmp: Path, ds: xr.Dataset) -> tuple[xr.Dataset, Path, dict]:
    (tmp / "out.zarr").write_bytes(b"not a store")
    return ds, tmp / "out.zarr", {"overwrite": True}


def _directory_not_a_store(tmp: Path, ds: xr.Dataset) -> tuple[xr.Dataset, Path, dict]:
    (tmp / "out.zarr").mkdir()
    (tmp / "out.zarr" / "results.csv").write_text("a,b\n1,2\n")
    return ds, tmp / "out.zarr", {"overwrite": True}


def _existing(name: str) -> object:
    def make(tmp: Path, ds: xr.Dataset) -> tuple[xr.Dataset, Path, dict]:
        write_dataset(field() + 100.0, tmp / name)  # in memory: no dask compute
        return ds, tmp / name, {}

    return make


def _attr(where: str, value: object) -> object:
    def make(tmp: Path, ds: xr.Dataset) -> tuple[xr.Dataset, Path, dict]:
        target = ds if where == "dataset" else ds[where]
        target.attrs["flag"] = value
        return ds, tmp / "out.nc", {}

    return make


REFUSALS = {
    "parent-is-a-file": (_parent_is_a_file, errno.ENOTDIR, r"'.*notes' is a file, not a folder"),
    "grandparent-is-a-file": (_grandparent_is_a_file, errno.ENOTDIR, r"is a file, not a folder"),
    "netcdf-path-is-a-directory": (
        _netcdf_path_is_a_directory,
        errno.EISDIR,
        r"is a directory, and a netCDF output is a single file; choose another name",
    ),
    "zarr-path-is-a-file": (
        _zarr_path_is_a_file,
        errno.ENOTDIR,
        r"is a file, and a zarr store is a directory; choose another name",
    ),
    "directory-not-a-zarr-store": (
        _directory_not_a_store,
        errno.EEXIST,
        r"not a zarr store, and replacing it would delete what it holds",
    ),
    "existing-netcdf": (_existing("out.nc"), errno.EEXIST, r"exists; pass overwrite=True"),
    "existing-zarr": (_existing("out.zarr"), errno.EEXIST, r"exists; pass overwrite=True"),
    "bool-attr-of-dataset": (
        _attr("dataset", True),
        errno.EINVAL,
        r"attribute 'flag' of the dataset is a bool \(True\).*int\(\) for a bool",
    ),
    "dict-attr-of-variable": (
        _attr("sst", {"a": 1}),
        errno.EINVAL,
        r"attribute 'flag' of variable 'sst' is a dict.*json\.dumps\(\)",
    ),
    "none-attr-of-coordinate": (
        _attr("lat", None),
        errno.EINVAL,
        r"attribute 'flag' of coordinate 'lat' is None.*or drop it",
    ),
    "nested-list-attr": (_attr("lon", [[1, 2], [3, 4]]), errno.EINVAL, r"a nested list"),
    "mixed-list-attr": (_attr("sst", ["a", 1]), errno.EINVAL, r"mixing strings and numbers"),
}


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


@pytest.mark.parametrize("accessor", [False, True], ids=["write_dataset", "accessor"])
@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_before_any_compute(tmp_path: Path, case: str, accessor: bool) -> None:
    make, code, message = REFUSALS[case]
    calls: list[int] = []
    ds, dest, kwargs = make(tmp_path, observed(calls))
    before = _tree(tmp_path)
    write = ds.sstsr.write if accessor else lambda path, **kw: write_dataset(ds, path, **kw)
    with _Starts() as starts, pytest.raises(WriteError, match=message) as info:
        write(dest, **kwargs)
    assert isinstance(info.value, OSError)
    assert info.value.errno == code
    assert calls == []  # no block of the graph was computed
    assert starts.count == 0  # nor any compute started
    assert _tree(tmp_path) == before  # nothing created, nothing replaced
    # the graph is whole: computing it now runs every block once
    ds.compute()
    assert sorted(calls) == list(range(ds.sizes["time"]))


def test_attributes_netcdf_stores_are_written(tmp_path: Path) -> None:
    ds = (
        field()
        .to_dataset()
        .assign_attrs(
            valid_range=[-2.0, 40.0], sources=["a", "b"], levels=np.arange(3), count=np.int8(3)
        )
    )
    write_dataset(ds, tmp_path / "ok.nc")
    with open_any(tmp_path / "ok.nc") as back:
        np.testing.assert_array_equal(back.attrs["valid_range"], [-2.0, 40.0])
        assert list(back.attrs["sources"]) == ["a", "b"]


def test_zarr_stores_what_netcdf_cannot(tmp_path: Path) -> None:
    ds = field().to_dataset().assign_attrs(flag=True, meta={"a": 1}, nothing=None)
    write_dataset(ds, tmp_path / "ok.zarr")
    with open_any(tmp_path / "ok.zarr") as back:
        assert back.attrs["flag"] is True
        assert back.attrs["meta"] == {"a": 1}


def test_an_empty_directory_is_replaced_by_a_store(tmp_path: Path) -> None:
    (tmp_path / "out.zarr").mkdir()
    write_dataset(field(), tmp_path / "out.zarr", overwrite=True)
    with open_any(tmp_path / "out.zarr") as back:
        xr.testing.assert_allclose(back["sst"].load(), field())


# -- a full disk -------------------------------------------------------------------------------


FULL_DISK = """
import resource, signal, sys
import numpy as np, xarray as xr
from xsstsr.errors import WriteError
from xsstsr.io import write_dataset

dest = sys.argv[1]
rng = np.random.default_rng(0)  # random: compression cannot make it fit
ds = xr.Dataset({"sst": (("time", "lat", "lon"), rng.random((8, 64, 64)))}).chunk(time=4)
# past RLIMIT_FSIZE a write fails with EFBIG (SIGXFSZ would kill the process instead)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (32 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
try:
    write_dataset(ds, dest, overwrite=True)
except WriteError as err:
    print(f"WriteError errno={err.errno}: {err}")
else:
    print("written")
"""


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE and SIGXFSZ are POSIX")
@pytest.mark.parametrize("name", FORMATS)
def test_full_disk_is_a_write_error_and_keeps_the_existing_file(tmp_path: Path, name: str) -> None:
    import subprocess
    import sys

    folder = tmp_path / "out"
    dest = folder / name
    write_dataset(field() + 100.0, dest)  # a few kB: under the limit the writer gets
    before = _tree(folder)
    script = tmp_path / "writer.py"
    script.write_text(FULL_DISK)
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, str(script), str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"WriteError errno={errno.EFBIG}: the disk is full" in done.stdout, (
        done.stdout + done.stderr[-3000:]
    )
    assert "free space in" in done.stdout
    assert _tree(folder) == before  # the old bytes, and no temporary beside them
    with open_any(dest) as back:
        xr.testing.assert_allclose(back["sst"].load(), field() + 100.0)
