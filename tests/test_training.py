"""``fit``: the returned Model, the nine losses, reproducibility, checkpoints, errors, learning.

Every fit here is tiny (a 32 x 32 or 64 x 64 synthetic field, a handful of steps) so the whole
file runs in well under a minute on two CPU cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xsstsr
from xsstsr import training
from xsstsr.datasets import synthetic_sst, synthetic_stations
from xsstsr.grid import coarsen_truth
from xsstsr.nn import METHOD_CONFIGS
from xsstsr.stations import read_stations, sample_field

ROOT = Path(__file__).resolve().parents[1]
# tiny fits cannot beat bicubic; the warning that says so is tested on its own below
pytestmark = pytest.mark.filterwarnings("ignore::xsstsr.SkillWarning")

# The smallest useful run: 32 x 32 truth -> 8 x 8 inputs at factor 4, 2 steps, from
# scratch (init=None: what these tests check is the training itself, not the released start).
TINY: dict[str, Any] = dict(
    init=None,
    factor=4,
    epochs=1,
    steps_per_epoch=2,
    batch_size=4,
    patch_size=8,
    n_critic=1,
    progress=False,
)
HISTORY_COLUMNS = [
    "step",
    "critic",
    "wasserstein",
    "gp",
    "generator",
    "adversarial",
    "pixel",
    "station",
    "val_rmse",
    "val_rmse_bicubic",
]
LOSS_COLUMNS = ["critic", "wasserstein", "gp", "generator", "adversarial", "pixel", "station"]


@pytest.fixture(scope="module")
def truth() -> xr.Dataset:
    return synthetic_sst(32, 32, periods=8, seed=0)


@pytest.fixture(scope="module")
def stations(truth: xr.Dataset) -> pd.DataFrame:
    return synthetic_stations(truth, n=6, noise=0.05, seed=1)


def assert_same_state(a: xsstsr.Model, b: xsstsr.Model, atol: float = 0.0) -> None:
    sa, sb = a.state, b.state
    assert sa.keys() == sb.keys()
    for key in sa:
        np.testing.assert_allclose(sa[key], sb[key], rtol=0, atol=atol, err_msg=key)


def max_state_diff(a: xsstsr.Model, b: xsstsr.Model) -> float:
    sa, sb = a.state, b.state
    return max(float(np.abs(sa[k] - sb[k]).max()) for k in sa)


def trained(history: pd.DataFrame) -> pd.DataFrame:
    """The training steps' rows (row 0 is the starting point's validation)."""
    return history[history["step"] > 0]


def quiet_fit(*args: Any, **kwargs: Any) -> xsstsr.Model:
    """fit, ignoring the expected station-dropping warnings."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dropped", category=UserWarning)
        return xsstsr.fit(*args, **kwargs)


# -- the returned model ----------------------------------------------------------------


def test_fit_returns_a_model(truth: xr.Dataset, stations: pd.DataFrame) -> None:
    model = quiet_fit(truth, stations, loss="gumbel", r=1.1, seed=3, **TINY)
    assert isinstance(model, xsstsr.Model)
    assert model.factor == 4.0
    assert model.window == 3
    assert model.inputs == ["sst"]
    meta = model.metadata
    for key in ("factor", "window", "halo", "inputs", "normalisation", "training"):
        assert key in meta
    assert meta["halo"] > 0
    mean, std = model.normalisation
    ocean = truth.sst.values[np.isfinite(truth.sst.values)]
    assert abs(mean - ocean.mean()) < 0.5
    assert std > 0.1
    info = meta["training"]
    assert info["loss"] == {"name": "gumbel", "r": 1.1}
    assert info["steps"] == 2
    assert info["seed"] == 3
    assert info["mode"] == "coarsened-truth"
    assert info["n_stations"] >= 1
    assert info["batch_size"] == 4
    assert info["n_critic"] == 1

    history = model.history
    assert isinstance(history, pd.DataFrame)
    assert set(HISTORY_COLUMNS) <= set(history.columns)
    assert history["step"].tolist() == [0, 1, 2]  # step 0: the starting point, validated
    assert np.isfinite(trained(history)[LOSS_COLUMNS].to_numpy()).all()
    last = history.iloc[-1]
    assert np.isfinite(last["val_rmse"])
    assert np.isfinite(last["val_rmse_bicubic"])
    assert history["station"].abs().sum() > 0  # the station term was active


def test_save_load_downscale(truth: xr.Dataset, tmp_path: Path) -> None:
    model = xsstsr.fit(truth, seed=1, **TINY)
    path = model.save(tmp_path / "fitted.safetensors")
    loaded = xsstsr.load_model(path)
    assert_same_state(model, loaded)
    assert loaded.metadata["training"] == model.metadata["training"]
    assert loaded.inputs == model.inputs
    np.testing.assert_allclose(
        loaded.history["val_rmse"].to_numpy(), model.history["val_rmse"].to_numpy()
    )

    coarse = coarsen_truth(truth, 4)
    out_path = xsstsr.downscale(coarse, model=str(path), device="cpu")
    out_model = coarse.sstsr.downscale(model=model, device="cpu")
    assert out_path.sst.shape == truth.sst.shape
    np.testing.assert_allclose(out_path.sst.values, out_model.sst.values, atol=1e-6)
    assert np.isfinite(out_path.sst.values).any()


def test_accessor_is_fit(truth: xr.Dataset, stations: pd.DataFrame) -> None:
    direct = quiet_fit(truth, stations, seed=2, **TINY)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dropped", category=UserWarning)
        through = truth.sstsr.fit(stations, seed=2, **TINY)
    assert_same_state(direct, through)
    assert direct.metadata["training"]["n_stations"] == through.metadata["training"]["n_stations"]


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=lambda c: c.describe())
def test_all_nine_losses_run(truth: xr.Dataset, stations: pd.DataFrame, config: Any) -> None:
    params = {k: v for k, v in config.to_dict().items() if k != "name"}
    model = quiet_fit(truth, stations, loss=config.name, **params, seed=0, **TINY)
    history = trained(model.history)
    assert len(history) == 2
    assert np.isfinite(history[LOSS_COLUMNS].to_numpy()).all()
    assert np.isfinite(history["val_rmse"].iloc[-1])
    assert model.metadata["training"]["loss"] == config.to_dict()
    assert all(np.isfinite(v).all() for v in model.state.values())


# -- reproducibility and checkpoints ---------------------------------------------------


def test_same_seed_same_weights(truth: xr.Dataset, stations: pd.DataFrame) -> None:
    kwargs = dict(TINY, n_critic=2, seed=11)
    first = quiet_fit(truth, stations, **kwargs)
    second = quiet_fit(truth, stations, **kwargs)
    assert_same_state(first, second, atol=1e-7)
    clocks = ["seconds", "data_wait_s"]  # wall-clock columns differ between any two runs
    pd.testing.assert_frame_equal(
        first.history.drop(columns=clocks), second.history.drop(columns=clocks)
    )
    other = quiet_fit(truth, stations, **dict(kwargs, seed=12))
    assert max_state_diff(first, other) > 1e-4


def test_dtype_and_memory_order_do_not_change_the_model() -> None:
    """The same values in float64, or stored (lon, lat, time) in memory (as a file written
    that way reads), train the same model: coarsening and the normalisation's sums once
    rounded in the input's dtype and order (0.02 K apart after 20 steps)."""
    truth = xsstsr.datasets.open_sample("truth")  # big enough for summation order to show
    stations = xsstsr.datasets.open_sample_stations()
    kwargs = dict(TINY, steps_per_epoch=6, seed=3, keep="last")
    sst = truth["sst"]
    stored = np.ascontiguousarray(sst.transpose("lon", "lat", "time").values)
    transposed = truth.assign(sst=(("lon", "lat", "time"), stored, sst.attrs))
    assert transposed["sst"].values.flags["C_CONTIGUOUS"]
    first = quiet_fit(truth, stations, **kwargs)
    for other in (transposed, truth.astype("float64")):
        assert max_state_diff(first, quiet_fit(other, stations, **kwargs)) == 0.0
    lazy = transposed.chunk({"time": 4})
    assert max_state_diff(first, quiet_fit(lazy, stations, **kwargs)) == 0.0


def test_a_global_grid_trains_the_same_wherever_its_seam_is(
    truth: xr.Dataset, stations: pd.DataFrame
) -> None:
    """The same global record stored 0..360 and -180..180 (and its stations in either
    convention): the same patches, so the same model and validation."""
    lon = 360.0 / 32 * (np.arange(32) + 0.5)
    east = truth.assign_coords(lon=("lon", lon, truth["lon"].attrs))
    moved = east.assign_coords(lon=(east["lon"] + 180) % 360 - 180).sortby("lon")
    assert not np.array_equal(moved["sst"].values, east["sst"].values)  # a real roll
    sta = stations.assign(lon=np.interp(stations["lon"], truth["lon"].values, lon))
    sta_west = sta.assign(lon=(sta["lon"] + 180) % 360 - 180)
    kwargs = dict(TINY, seed=3, validation=0.25)
    first = quiet_fit(east, sta, **kwargs)
    second = quiet_fit(moved, sta_west, **kwargs)
    assert first.metadata["training"]["n_stations"] == len(stations["station"].unique())
    assert second.metadata["training"]["n_stations"] == first.metadata["training"]["n_stations"]
    assert_same_state(first, second, atol=1e-4)
    assert second.validation["rmse"] == pytest.approx(first.validation["rmse"], rel=1e-5)
    # target mode with a fusion source, each in its file's own convention
    sources = []
    for grid in (east, moved):
        low = coarsen_truth(grid, 4)
        lagged = (low.sst.shift(time=1).fillna(low.sst) * 0.5 + 3.0).rename("lagged")
        lagged.attrs = {"units": "degC"}
        sources.append((low, grid, lagged))
    fused = [
        xsstsr.fit(low, target=grid, sources=[lagged], **dict(TINY, seed=3, validation=0.25))
        for low, grid, lagged in sources
    ]
    assert_same_state(fused[0], fused[1], atol=1e-4)


def test_stations_on_a_record_without_datetimes_get_the_fix(
    truth: xr.Dataset, stations: pd.DataFrame
) -> None:
    noleap = truth.convert_calendar("noleap")
    with pytest.raises(xsstsr.StationsError, match=r"convert_calendar\('standard'"):
        quiet_fit(noleap, stations, **TINY)
    numeric = truth.assign_coords(time=("time", np.arange(8.0), {"units": "days since 2000-01-01"}))
    with pytest.raises(xsstsr.StationsError, match=r"assign_coords\(time=pd\.date_range"):
        quiet_fit(numeric, stations, time="time", **TINY)
    mended = quiet_fit(noleap.convert_calendar("standard", use_cftime=False), stations, **TINY)
    assert mended.metadata["training"]["n_stations"] > 0


def test_an_infinite_truth_value_is_missing_as_in_downscale(truth: xr.Dataset) -> None:
    holed = truth.copy(deep=True)
    holed["sst"].values[3, 10, 10] = np.inf
    nan = truth.copy(deep=True)
    nan["sst"].values[3, 10, 10] = np.nan
    model = xsstsr.fit(holed, **TINY)
    assert np.isfinite(model.domain["sst_range_degC"]).all()
    assert_same_state(model, xsstsr.fit(nan, **TINY))
    assert np.isinf(holed["sst"].values[3, 10, 10])  # the input is untouched


def test_a_validation_share_that_holds_nothing_out_says_so(truth: xr.Dataset) -> None:
    with pytest.warns(UserWarning, match=r"holds none out .* validation>=0\.125"):
        model = xsstsr.fit(truth, **dict(TINY, validation=0.01))  # round(8 x 0.01) = 0
    assert model.validation["held_out"] is False
    assert model.metadata["training"]["validation_steps"] == []
    held = xsstsr.fit(truth, **dict(TINY, validation=0.125))
    assert held.validation["held_out"] is True
    assert len(held.metadata["training"]["validation_steps"]) == 1


RESUME: dict[str, Any] = dict(
    factor=4,
    epochs=2,
    steps_per_epoch=6,
    batch_size=4,
    patch_size=8,
    n_critic=2,
    seed=5,
    checkpoint_every=2,
    progress=False,
)

# Builds the same data and calls the same fit in a child process; PatchSampler.load is slowed
# (without changing any number) so that the parent reliably kills it part-way through.
CHILD = textwrap.dedent(
    """
    import sys, time, warnings
    import torch
    torch.set_num_threads({threads})
    import xsstsr
    from xsstsr import training
    from xsstsr.datasets import synthetic_sst, synthetic_stations

    load = training.PatchSampler.load

    def slow_load(self, positions):
        time.sleep(0.15)
        return load(self, positions)

    training.PatchSampler.load = slow_load
    warnings.simplefilter("ignore")
    truth = synthetic_sst(32, 32, periods=8, seed=0)
    stations = synthetic_stations(truth, n=6, noise=0.05, seed=1)
    xsstsr.fit(truth, stations, checkpoint_dir=sys.argv[1], **{kwargs!r})
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_resume_after_kill_matches_uninterrupted(
    truth: xr.Dataset, stations: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = RESUME["epochs"] * RESUME["steps_per_epoch"]
    ckpt = tmp_path / "ckpt"
    script = CHILD.format(threads=torch.get_num_threads(), kwargs=RESUME)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(ckpt)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (ckpt / training.CHECKPOINT_STATE).exists():
            if child.poll() is not None:
                pytest.fail(f"the child fit ended early: {child.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint appeared within 120 s")
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    killed_at = json.loads((ckpt / training.CHECKPOINT_STATE).read_text())["step"]
    assert 0 < killed_at < total, "the child was not killed part-way"
    assert killed_at % RESUME["checkpoint_every"] == 0

    restored: list[int] = []
    original = training.loop.load_checkpoint

    def spy(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        restored.append(None if out is None else out[0])
        return out

    monkeypatch.setattr(training.loop, "load_checkpoint", spy)
    resumed = quiet_fit(truth, stations, checkpoint_dir=ckpt, resume=True, **RESUME)
    assert restored == [killed_at]
    whole = quiet_fit(truth, stations, **RESUME)
    assert max_state_diff(resumed, whole) <= 1e-5
    assert resumed.history["step"].tolist() == list(range(total + 1))
    np.testing.assert_allclose(
        resumed.history["pixel"].to_numpy(), whole.history["pixel"].to_numpy(), rtol=1e-4
    )
    assert json.loads((ckpt / training.CHECKPOINT_STATE).read_text())["step"] == total
    # one tensors file is kept, the one the record names
    assert len(list(ckpt.glob("*.safetensors"))) == 1


def test_kill_between_the_two_checkpoint_writes(
    truth: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after a checkpoint's tensors are written but before its record: resume works."""
    kwargs = dict(TINY, steps_per_epoch=5, checkpoint_every=2, seed=6)
    ckpt = tmp_path / "ckpt"
    real = training.checkpoints.write_atomic
    records: list[str] = []

    def dying(path: Path, data: bytes) -> None:
        if path.name == training.CHECKPOINT_STATE:
            records.append(path.name)
            if len(records) == 2:  # the step-4 tensors are on disk, their record is not
                raise KeyboardInterrupt
        real(path, data)

    monkeypatch.setattr(training.checkpoints, "write_atomic", dying)
    with pytest.raises(KeyboardInterrupt):
        xsstsr.fit(truth, checkpoint_dir=ckpt, **kwargs)
    monkeypatch.setattr(training.checkpoints, "write_atomic", real)
    assert json.loads((ckpt / training.CHECKPOINT_STATE).read_text())["step"] == 2
    resumed = xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)
    whole = xsstsr.fit(truth, **kwargs)
    assert max_state_diff(resumed, whole) <= 1e-5


def test_ema_returns_the_running_average_and_resumes(
    truth: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = dict(TINY, steps_per_epoch=6, checkpoint_every=2, seed=7, ema=0.9, keep="last")
    plain = xsstsr.fit(truth, **dict(kwargs, ema=None))
    ckpt = tmp_path / "ckpt"
    averaged = xsstsr.fit(truth, checkpoint_dir=ckpt, **kwargs)
    assert averaged.metadata["training"]["ema"] == 0.9
    # the same training steps, so the same raw weights; the model returned is their average
    from safetensors.numpy import load_file

    state = json.loads((ckpt / training.CHECKPOINT_STATE).read_text())
    tensors = load_file(ckpt / state["tensors"])
    for key, value in averaged.state.items():
        np.testing.assert_allclose(tensors[f"average/{key}"], value, rtol=0, atol=0)
        np.testing.assert_allclose(tensors[f"generator/{key}"], plain.state[key], atol=1e-6)
    assert max_state_diff(averaged, plain) > 1e-6
    # the same validation start (the average starts at the initial weights)
    assert averaged.history["val_rmse"].iloc[0] == plain.history["val_rmse"].iloc[0]

    # interrupted after step 4's checkpoint, resumed: the same average as the whole run
    real = training.checkpoints.write_atomic
    records: list[str] = []

    def dying(path: Path, data: bytes) -> None:
        real(path, data)
        if path.name == training.CHECKPOINT_STATE:
            records.append(path.name)
            if len(records) == 2:
                raise KeyboardInterrupt

    monkeypatch.setattr(training.checkpoints, "write_atomic", dying)
    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        xsstsr.fit(truth, checkpoint_dir=broken, **kwargs)
    monkeypatch.setattr(training.checkpoints, "write_atomic", real)
    assert json.loads((broken / training.CHECKPOINT_STATE).read_text())["step"] == 4
    resumed = xsstsr.fit(truth, checkpoint_dir=broken, resume=True, **kwargs)
    assert max_state_diff(resumed, averaged) <= 1e-6


def test_a_released_start_resumes_however_it_was_named(truth: xr.Dataset, tmp_path: Path) -> None:
    # started by init="auto", resumed with the same weights named: the same start
    kwargs = {k: v for k, v in TINY.items() if k != "init"}
    kwargs.update(steps_per_epoch=3, checkpoint_every=2, seed=4, validation=0.0)
    ckpt = tmp_path / "ckpt"
    first = xsstsr.fit(truth, checkpoint_dir=ckpt, **kwargs)
    assert first.metadata["training"]["init"]["auto"] is True
    again = xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, init="sst-x4", **kwargs)
    assert_same_state(first, again)


def test_a_fine_tune_begun_at_the_former_default_rate_says_how_to_resume(
    truth: xr.Dataset, tmp_path: Path
) -> None:
    # before lr defaulted to the start's rate, an unset lr was 2e-3; a start trained slower
    # (as the 48-feature sst-x4 of 2026-12-07 was, at 1e-3) now sets a lower default
    start = xsstsr.fit(truth, **dict(TINY, lr=3e-4)).save(tmp_path / "slow.safetensors")
    kwargs = dict(TINY, init=start, steps_per_epoch=3, checkpoint_every=2, seed=4)
    ckpt = tmp_path / "ckpt"
    first = xsstsr.fit(truth, checkpoint_dir=ckpt, **dict(kwargs, lr=2e-3))
    with pytest.raises(xsstsr.TrainingError, match=r"lr now defaults .*pass lr=0\.002") as err:
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)
    assert "init=None" not in str(err.value)
    again = xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **dict(kwargs, lr=2e-3))
    assert_same_state(first, again)


def test_checkpoint_guards(truth: xr.Dataset, tmp_path: Path) -> None:
    kwargs = dict(TINY, steps_per_epoch=3, checkpoint_every=2, seed=4)
    ckpt = tmp_path / "ckpt"
    first = xsstsr.fit(truth, checkpoint_dir=ckpt, **kwargs)
    state = json.loads((ckpt / training.CHECKPOINT_STATE).read_text())
    assert state["step"] == 3

    # resuming a finished run gives its weights back
    again = xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)
    assert_same_state(first, again)
    assert again.history["step"].tolist() == [0, 1, 2, 3]

    # resume=True on an empty directory starts from scratch
    fresh = xsstsr.fit(truth, checkpoint_dir=tmp_path / "empty", resume=True, **kwargs)
    assert_same_state(first, fresh, atol=1e-7)

    with pytest.raises(xsstsr.TrainingError, match="resume=True"):
        xsstsr.fit(truth, checkpoint_dir=ckpt, **kwargs)
    # the error names what changed (and no start hint when the start did not)
    with pytest.raises(
        xsstsr.TrainingError, match=r"differs in .*training\.lr \(0\.002 then, 0\.0002 now\)"
    ) as err:
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **dict(kwargs, lr=2e-4))
    assert "init=None" not in str(err.value)
    assert "config.lr" not in str(err.value)  # one setting, named once
    with pytest.raises(xsstsr.TrainingError, match="different configuration"):
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **dict(kwargs, loss="gumbel", r=1.0))
    # this run started from scratch: the default start (the released model) is another
    # configuration, and the error says how to resume it
    auto = {k: v for k, v in kwargs.items() if k != "init"}
    with pytest.raises(xsstsr.TrainingError, match="pass init=None"):
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **auto)

    tensors = ckpt / state.get("tensors", training.CHECKPOINT_TENSORS)
    record = (ckpt / training.CHECKPOINT_STATE).read_text()
    # a record that hashes right but lacks a field (another version's layout)
    (ckpt / training.CHECKPOINT_STATE).write_text(
        json.dumps({k: v for k, v in state.items() if k != "param_groups"})
    )
    with pytest.raises(xsstsr.TrainingError, match="another xsstsr version"):
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)
    # the loop's own state, or a step, edited by hand: refused, not a KeyError later on
    for edit in ({"loop": {}}, {"step": -1}):
        (ckpt / training.CHECKPOINT_STATE).write_text(json.dumps({**state, **edit}))
        with pytest.raises(xsstsr.TrainingError, match="cannot be restored"):
            xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)
    (ckpt / training.CHECKPOINT_STATE).write_text(record)

    blob = bytearray(tensors.read_bytes())
    blob[-20:] = bytes(20)
    tensors.write_bytes(bytes(blob))
    with pytest.raises(xsstsr.TrainingError, match="corrupt"):
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)
    tensors.unlink()
    with pytest.raises(xsstsr.TrainingError, match="unreadable"):
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)
    (ckpt / training.CHECKPOINT_STATE).write_text("{not json")
    with pytest.raises(xsstsr.TrainingError, match="unreadable"):
        xsstsr.fit(truth, checkpoint_dir=ckpt, resume=True, **kwargs)


# -- target mode and fusion ------------------------------------------------------------


@pytest.fixture(scope="module")
def fine() -> xr.Dataset:
    return synthetic_sst(32, 32, periods=8, seed=2)


def test_target_mode_factor_from_grids(fine: xr.Dataset) -> None:
    low = coarsen_truth(fine, 4)
    kwargs = {k: v for k, v in TINY.items() if k != "factor"}
    model = xsstsr.fit(low, target=fine, seed=0, **kwargs)
    assert model.factor == 4.0
    assert model.metadata["training"]["mode"] == "target"
    assert model.metadata["training"]["shape"] == [8, 8, 8]
    assert np.isfinite(model.history["val_rmse"].iloc[-1])
    out = xsstsr.downscale(low, model=model, device="cpu")
    np.testing.assert_allclose(out.lat, fine.lat, atol=1e-9)


def test_target_on_misaligned_grid_warns(fine: xr.Dataset) -> None:
    low = coarsen_truth(fine, 4)
    shifted = fine.assign_coords(lat=fine.lat + 0.1 * float(fine.lat[1] - fine.lat[0]))
    kwargs = {k: v for k, v in TINY.items() if k != "factor"}
    with pytest.warns(UserWarning, match="interpolating") as record:
        model = xsstsr.fit(low, target=shifted, seed=0, **kwargs)
    assert next(w for w in record if "interpolating" in str(w.message)).filename == __file__
    assert model.factor == 4.0
    assert np.isfinite(trained(model.history)[LOSS_COLUMNS].to_numpy()).all()


def test_target_kelvin_and_time_subset(fine: xr.Dataset) -> None:
    low = coarsen_truth(fine, 4)
    kelvin = fine.isel(time=slice(1, None)) + 273.15
    kelvin.sst.attrs = dict(fine.sst.attrs, units="K")
    kwargs = {k: v for k, v in TINY.items() if k != "factor"}
    model = xsstsr.fit(low, target=kelvin, seed=0, **kwargs)
    info = model.metadata["training"]
    assert info["shape"][0] == 7  # the time steps both share
    assert info["period"][0].startswith(str(fine.time.values[1])[:10])
    # the inputs are in degC, so a correct conversion keeps the targets close to them
    assert model.history["val_rmse"].iloc[-1] < 2.0


def test_fusion_sources(fine: xr.Dataset) -> None:
    low = coarsen_truth(fine, 4)
    extra = (low.sst.shift(time=1).fillna(low.sst) * 0.5 + 3.0).rename("lagged")
    extra.attrs = {"units": "degC"}
    model = xsstsr.fit(low, target=fine, sources=[extra], seed=0, **TINY)
    assert model.inputs == ["lagged", "sst"]
    out = xsstsr.downscale(low, model=model, sources=[extra], device="cpu")
    assert out.sst.shape == fine.sst.shape
    assert np.isfinite(out.sst.values).any()
    with pytest.raises(xsstsr.ModelMismatchError):
        xsstsr.downscale(low, model=model, device="cpu")


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(loss="gumbel"), "needs r"),
        (dict(loss="frechet", a=15.0), "needs a and s"),
        (dict(loss="frechet", a=15.0, s=1.7, r=1.1), "not r"),
        (dict(loss="mse", r=1.1), "takes no parameters"),
        (dict(loss="gumbel", r=1.0, a=10.0), "takes only r"),
        (dict(loss="huber"), "unknown loss 'huber'"),
        (dict(loss="gumbel", r=-1.0), "positive"),
    ],
)
def test_bad_loss_config(truth: xr.Dataset, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(xsstsr.LossConfigError, match=match):
        xsstsr.fit(truth, **{**TINY, **kwargs})


@pytest.mark.parametrize(("factor", "crop"), [(4, 28), (2.5, 30)])
def test_a_grid_not_a_multiple_of_the_factor_gets_the_right_crop(truth, factor, crop) -> None:
    odd = truth.isel(lat=slice(0, 31))
    with pytest.raises(xsstsr.GridError, match=rf"isel\(lat=slice\(0, {crop}\)\)"):
        xsstsr.fit(odd, **dict(TINY, factor=factor))
    cropped = odd.isel(lat=slice(0, crop), lon=slice(0, crop if factor == 2.5 else 32))
    assert xsstsr.fit(cropped, **dict(TINY, factor=factor)).metadata["training"]["steps_run"] >= 1


def test_window_longer_than_record() -> None:
    short = synthetic_sst(32, 32, periods=2)
    with pytest.raises(xsstsr.InputDataError, match="window=3"):
        xsstsr.fit(short, **TINY)


def test_bad_numbers(truth: xr.Dataset) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        xsstsr.fit(truth, **{**TINY, "batch_size": 0})
    with pytest.raises(ValueError, match="validation"):
        xsstsr.fit(truth, validation=1.0, **TINY)


def test_stations_outside_are_dropped_with_a_warning(
    truth: xr.Dataset, stations: pd.DataFrame
) -> None:
    far = stations[stations["station"] == "ST01"].assign(station="FAR", lat=60.0)
    with pytest.warns(UserWarning, match="outside") as record:
        model = xsstsr.fit(truth, pd.concat([stations, far]), seed=0, **TINY)
    assert any("FAR" in str(w.message) for w in record)
    assert {w.filename for w in record} == {__file__}  # the user's line, not xsstsr's
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dropped", category=UserWarning)
        base = xsstsr.fit(truth, stations, seed=0, **TINY)
    assert model.metadata["training"]["n_stations"] == base.metadata["training"]["n_stations"]


def test_station_on_land_is_named(truth: xr.Dataset, stations: pd.DataFrame) -> None:
    sst = truth.sst.isel(time=0)
    iy, ix = np.argwhere(np.isnan(sst.values))[len(np.argwhere(np.isnan(sst.values))) // 2]
    land = stations[stations["station"] == "ST01"].assign(
        station="INLAND", lat=float(sst.lat[iy]), lon=float(sst.lon[ix])
    )
    coarse = coarsen_truth(truth, 4).sst.isel(time=0)
    if np.isfinite(coarse.sel(lat=land.lat.iloc[0], lon=land.lon.iloc[0], method="nearest")):
        pytest.skip("the chosen land cell is ocean on the coarse grid")
    with pytest.warns(UserWarning, match=r"on land.*INLAND"):
        xsstsr.fit(truth, pd.concat([stations, land]), seed=0, **TINY)


def test_all_stations_outside(truth: xr.Dataset, stations: pd.DataFrame) -> None:
    with (
        pytest.raises(xsstsr.StationsError, match="no station"),
        pytest.warns(UserWarning, match="outside the grid"),
    ):
        xsstsr.fit(truth, stations.assign(lat=-45.0), **TINY)


def test_station_table_missing_column(truth: xr.Dataset, stations: pd.DataFrame) -> None:
    with pytest.raises(xsstsr.StationsError, match="'sst'"):
        xsstsr.fit(truth, stations.drop(columns="sst"), **TINY)
    renamed = stations.rename(columns={"sst": "temp"})
    model = quiet_fit(truth, renamed, station_columns={"sst": "temp"}, seed=0, **TINY)
    assert model.metadata["training"]["n_stations"] >= 1


# -- laziness --------------------------------------------------------------------------


def test_patches_are_cut_lazily() -> None:
    from dask.callbacks import Callback

    class Peak(Callback):
        """Largest array any dask task produced, and how many tasks ran."""

        def __init__(self) -> None:
            super().__init__()
            self.peak = 0
            self.tasks = 0

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
            self.tasks += 1
            self.peak = max(self.peak, int(getattr(result, "nbytes", 0) or 0))

    ds = synthetic_sst(64, 64, periods=24, chunks={"time": 4})
    chunk_bytes = 4 * 64 * 64 * ds.sst.dtype.itemsize
    total_bytes = ds.sst.nbytes
    assert ds.sst.chunks is not None
    with Peak() as peak:
        model = xsstsr.fit(
            ds,
            factor=4,
            epochs=1,
            steps_per_epoch=1,
            batch_size=1,
            patch_size=8,
            n_critic=1,
            progress=False,
        )
    assert len(trained(model.history)) == 1
    assert peak.tasks > 0  # the dask path was used
    # no task ever held more than one chunk (float64 intermediates at most double it)
    assert peak.peak <= 2 * chunk_bytes
    assert peak.peak <= total_bytes / 3


# -- learning --------------------------------------------------------------------------


@pytest.mark.slow
def test_short_fit_beats_bicubic() -> None:
    ds = synthetic_sst(64, 64, periods=24, seed=0)
    model = xsstsr.fit(ds, factor=4, steps=200, batch_size=8, patch_size=12, seed=0,
                       progress=False, patience=None)  # fmt: skip
    scores = model.history.dropna(subset=["val_rmse"])
    assert len(scores) == 21  # the start and every 10 steps
    assert model.validation is not None
    assert model.validation["held_out"]
    # measured: 0.80 of bicubic on the held-out days (seed 0)
    assert model.validation["ratio"] < 0.9
    assert model.validation["rmse"] < scores["val_rmse"].iloc[0]


@pytest.mark.slow
def test_stations_correct_a_biased_target() -> None:
    truth = synthetic_sst(64, 64, periods=24, seed=0)
    low = coarsen_truth(truth, 4)
    biased = truth + 0.5  # a satellite 0.5 K too warm
    biased.sst.attrs = dict(truth.sst.attrs)
    stations = synthetic_stations(truth, n=16, noise=0.05, seed=1)
    kwargs: dict[str, Any] = dict(
        target=biased,
        steps=60,
        batch_size=8,
        patch_size=12,
        n_critic=1,
        lr=3e-4,
        adv_weight=0.0,
        seed=0,
        progress=False,
    )
    plain = xsstsr.fit(low, **kwargs)
    with_stations = quiet_fit(low, stations, station_weight=5.0, **kwargs)
    table = read_stations(stations)

    def station_scores(model: xsstsr.Model) -> tuple[float, float]:
        field = xsstsr.downscale(low, model=model, device="cpu").sst
        sampled = sample_field(field, table, "lat", "lon", "time")
        err = (sampled["model"] - sampled["sst"]).to_numpy()
        err = err[np.isfinite(err)]
        return float(np.sqrt(np.mean(err**2))), float(np.mean(err))

    rmse_plain, bias_plain = station_scores(plain)
    rmse_st, bias_st = station_scores(with_stations)
    # measured: 0.65 K (bias +0.61) without stations, 0.13 K (bias +0.01) with them
    assert bias_plain > 0.3  # the bias was learned from the target...
    assert abs(bias_st) < 0.5 * bias_plain  # ...and the stations pull it back
    assert rmse_st < 0.5 * rmse_plain
