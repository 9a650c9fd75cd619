"""Fault injection: a writer killed mid-compute, a dask worker killed mid-downscale, a
download cut halfway.

* A process running ``downscale`` + :func:`xsstsr.io.write_dataset` is SIGKILLed while
  its dask graph is computing: the destination is absent (or the file already there is
  intact); only a hidden ``.partial`` sibling may remain, and the next write clears it.
* A dask.distributed worker process is SIGKILLed while it runs a downscale task: the
  nanny restarts it, the lost tasks are recomputed and the result equals the threaded one.
* The model download is cut halfway: pooch retries, the cache ends with the verified file,
  and the final name never holds a partial file.

The fit kill/resume fault test is in tests/test_training.py; a tampered download in
tests/test_weights.py (``test_tampered_download_refused``).
"""

from __future__ import annotations

import hashlib
import http.server
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from functools import partial
from pathlib import Path

import numpy as np
import pooch.core
import pytest
import xarray as xr
from helpers import local_cluster, make_model, sst_field

import xsstsr
import xsstsr.io
import xsstsr.models

ROOT = Path(__file__).resolve().parent.parent


small_model = partial(make_model, 4, 1, 2, seed=3, scale=0.05, small_halo=True, tag="fault")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    return small_model().save(tmp_path_factory.mktemp("fault-model") / "fault-x4.safetensors")


def child_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        XSSTSR_CACHE=str(tmp_path / "cache"),
        OMP_NUM_THREADS="1",
    )
    return env


# -- (a) a writer killed mid-compute ----------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np, torch, xarray as xr
    torch.set_num_threads(1)
    import xsstsr, xsstsr.io

    model_path, dest, marker = sys.argv[1:4]
    nt, ny, nx = 6, 8, 8
    rng = np.random.default_rng(0)
    da = xr.DataArray(
        (20 + rng.normal(0, 1, (nt, ny, nx))).astype("float32"),
        dims=("time", "lat", "lon"),
        coords={
            "time": np.datetime64("2021-01-01") + np.arange(nt).astype("timedelta64[D]"),
            "lat": ("lat", 10.125 + 0.25 * np.arange(ny), {"standard_name": "latitude"}),
            "lon": ("lon", 50.125 + 0.25 * np.arange(nx), {"standard_name": "longitude"}),
        },
        name="sst",
        attrs={"standard_name": "sea_surface_temperature", "units": "degC"},
    ).chunk(time=1)

    def slow(block, block_info=None):
        # the first time steps pass at once (their output chunks get written); later
        # ones hang, so the process is surely killed in the middle of the compute
        if block_info[0]["chunk-location"][0] >= 3:
            with open(marker, "w") as fh:
                fh.write(str(os.getpid()))
            time.sleep(300)
        return block

    slowed = da.copy(data=da.data.map_blocks(slow, dtype=da.dtype))
    out = xsstsr.downscale(slowed.to_dataset(), model=model_path, device="cpu")
    xsstsr.io.write_dataset(out, dest, overwrite=True)
    print("FINISHED")
    """
)


def old_dataset() -> xr.Dataset:
    return xr.Dataset(
        {"sst": (("lat", "lon"), np.arange(12.0).reshape(3, 4))},
        coords={"lat": [1.0, 2.0, 3.0], "lon": [1.0, 2.0, 3.0, 4.0]},
        attrs={"title": "the previous result"},
    )


def tree_digest(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (a zarr store) or of the file itself."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {
        str(p.relative_to(path.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }


@pytest.mark.parametrize(
    ("suffix", "existing"),
    [(".nc", False), (".nc", True), (".zarr", False), (".zarr", True)],
    ids=["netcdf-new", "netcdf-existing", "zarr-new", "zarr-existing"],
)
def test_killed_writer_leaves_no_partial_file(model_file, tmp_path, suffix, existing):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    dest = out_dir / f"sst_x4{suffix}"
    before: dict[str, str] = {}
    if existing:
        xsstsr.io.write_dataset(old_dataset(), dest)
        before = tree_digest(dest)
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    marker = tmp_path / "computing"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(model_file), str(dest), str(marker)],
        env=child_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the writer never reached the slow step"
            time.sleep(0.05)
        time.sleep(0.3)  # let the first chunks reach the temporary
        assert proc.poll() is None
        partial = [p.name for p in out_dir.iterdir() if p.name.endswith(".partial")]
        assert partial, "the write should be under way in a hidden temporary"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
    assert proc.returncode == -signal.SIGKILL

    # the destination is untouched: absent, or exactly the previous result
    visible = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith("."))
    if existing:
        assert visible == [dest.name]
        assert tree_digest(dest) == before
        with xsstsr.io.open_any(dest) as back:
            xr.testing.assert_identical(back.load(), old_dataset())
    else:
        assert visible == []
        assert not dest.exists()
    hidden = [p.name for p in out_dir.iterdir() if p.name.startswith(".")]
    assert all(name.endswith(".partial") for name in hidden), hidden

    # and a later run writes the destination whole, clearing the dead writer's temporary
    xsstsr.io.write_dataset(old_dataset().assign_attrs(title="rerun"), dest, overwrite=True)
    with xsstsr.io.open_any(dest) as back:
        assert back.attrs["title"] == "rerun"
    assert sorted(p.name for p in out_dir.iterdir()) == [dest.name]


# -- (b) a dask worker killed mid-downscale ----------------------------------------------------


def _slow_on_workers(block, marker: str):
    """Identity; on a distributed worker, slow, recording which process runs it."""
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return block  # the threaded reference: no delay
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(1.0)
    return block


@pytest.mark.distributed
def test_worker_killed_during_downscale(model_file, tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setenv("XSSTSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    marker = tmp_path / "running"
    da = sst_field(nt=6, ny=8, nx=8, seed=4).chunk(time=1)
    slowed = da.copy(data=da.data.map_blocks(_slow_on_workers, str(marker), dtype=da.dtype))
    lazy = xsstsr.downscale(slowed, model=model_file, device="cpu")
    expected = lazy.compute(scheduler="threads", num_workers=2).values

    with local_cluster() as client:
        pids = set(client.run(os.getpid).values())
        assert len(pids) == 2
        future = client.compute(lazy)
        deadline = time.monotonic() + 120
        while not marker.exists() or not marker.read_text().strip():
            assert not future.done(), future.exception()
            assert time.monotonic() < deadline, "no worker reached the slow step"
            time.sleep(0.05)
        victim = int(marker.read_text().split()[0])
        assert victim in pids
        os.kill(victim, signal.SIGKILL)
        result = future.result(timeout=180)
        client.wait_for_workers(2, timeout=60)
        after = set(client.run(os.getpid).values())

    assert victim not in after  # the nanny started a new worker process
    assert result.attrs["xsstsr_model_sha256"] == lazy.attrs["xsstsr_model_sha256"]
    np.testing.assert_array_equal(np.isnan(result.values), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.max(np.abs(result.values[ok] - expected[ok])) <= 1e-5


# -- (c) a download cut halfway ----------------------------------------------------------------


class CuttingServer:
    """Serves one file over HTTP on 127.0.0.1; the first response stops halfway."""

    def __init__(self, blob: bytes, name: str, cache_file: Path) -> None:
        self.requests: list[str] = []
        self.final_name_seen_during_cut: list[bool] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path != f"/{name}":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                if len(server.requests) == 1:  # cut: half the bytes, then hang up
                    self.wfile.write(blob[: len(blob) // 2])
                    self.wfile.flush()
                    time.sleep(0.2)  # the client has been writing its temporary by now
                    server.final_name_seen_during_cut.append(cache_file.exists())
                    self.close_connection = True
                    return
                self.wfile.write(blob)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def test_cut_download_is_retried_and_verified(tmp_path, monkeypatch):
    model = small_model(seed=8)
    blob = model.to_bytes()
    digest = hashlib.sha256(blob).hexdigest()
    shipped, cache = tmp_path / "shipped", tmp_path / "cache"
    shipped.mkdir()
    (shipped / "registry.txt").write_text(f"sst-x4.safetensors {digest}\n")  # no shipped copy
    monkeypatch.setattr(xsstsr.models.weights, "bundled_dir", lambda: shipped)
    monkeypatch.setenv("XSSTSR_CACHE", str(cache))
    waits: list[float] = []
    monkeypatch.setattr(pooch.core, "time", types.SimpleNamespace(sleep=waits.append))
    final = cache / "sst-x4.safetensors"
    server = CuttingServer(blob, "sst-x4.safetensors", final)
    monkeypatch.setenv("XSSTSR_WEIGHTS_URL", server.url)
    try:
        loaded = xsstsr.load_model("sst-x4")
    finally:
        server.stop()

    assert server.requests == ["/sst-x4.safetensors"] * 2  # cut once, then whole
    assert waits == [1]
    assert server.final_name_seen_during_cut == [False]
    assert hashlib.sha256(final.read_bytes()).hexdigest() == digest
    assert loaded.sha256 == digest == model.sha256
    assert loaded.source == str(final)
    assert sorted(p.name for p in cache.iterdir()) == ["sst-x4.safetensors"]  # no temporaries
