"""``FitConfig`` guards, the loss scale, held-out time blocks, the best checkpoint, early
stopping, the skill warning, non-finite losses and fine-tuning (``init=``)."""

from __future__ import annotations

import itertools
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

import xsstsr
from xsstsr.datasets import synthetic_sst
from xsstsr.nn import LossConfig, pointwise_loss
from xsstsr.training import FitConfig, split_times
from xsstsr.training.config import LOSS_SCALE_MULTIPLIER, ema_decay, learning_rate, resolve

# init=None: from scratch, so the starting point is bicubic (test_default_init_* cover "auto")
TINY: dict[str, Any] = dict(
    init=None,
    factor=4,
    steps=2,
    batch_size=4,
    patch_size=8,
    n_critic=1,
    progress=False,
    warmup=0,
)


@pytest.fixture(scope="module")
def truth() -> xr.Dataset:
    return synthetic_sst(32, 32, periods=12, seed=0)


def quiet(*args: Any, **kwargs: Any) -> xsstsr.Model:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xsstsr.SkillWarning)
        return xsstsr.fit(*args, **kwargs)


# -- every option checked before the first step ------------------------------------------

BAD_OPTIONS = [
    (dict(init=3), "init must be 'auto', None, a released name"),
    (dict(init=["sst-x4"]), "init must be 'auto', None"),
    (dict(init="none"), "init='none' is not an option; pass init='auto'"),
    (dict(init="Auto"), "init='Auto' is not an option"),
    (dict(lr=1e6), "lr=1000000.0 would blow"),
    (dict(lr=-1.0), "lr must be a positive"),
    (dict(lr=float("nan")), "lr must be a positive"),
    (dict(adv_weight=float("nan")), "adv_weight must be a finite number >= 0"),
    (dict(adv_weight=-1e-3), "adv_weight must be"),
    (dict(gp_weight=float("inf")), "gp_weight must be"),
    (dict(lr_schedule="linear "), "unknown lr_schedule"),
    (dict(lr_schedule="step"), "use one of 'constant', 'cosine', 'linear'"),
    (dict(keep="final"), "use one of 'best', 'last'"),
    (dict(batch_size=0), "batch_size must be a positive integer"),
    (dict(batch_size=2.5), "batch_size must be a positive integer"),
    (dict(batch_size=True), "batch_size must be a positive integer"),
    (dict(n_critic="5"), "n_critic must be a positive integer"),
    (dict(steps=0), "steps must be a positive integer"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(seed=1.5), "seed must be an integer >= 0"),
    (dict(patience=0), "patience must be a positive integer"),
    (dict(validation=1.0), "validation must be a fraction"),
    (dict(validation="0.1"), "validation must be a fraction"),
    (dict(patch_size=2), "patch_size must be at least 4"),
    (dict(loss_scale=0.0), "loss_scale must be a positive"),
    (dict(loss="huber"), "unknown loss 'huber'"),
    (dict(steps=10, epochs=2), "either steps= or epochs="),
    (dict(pixel_weight=0.0, station_weight=0.0), "nothing would tie"),
    (dict(resume=True), "resume=True needs checkpoint_dir"),
    (dict(progress="yes"), "progress must be True or False"),
    (dict(name=""), "name must be a non-empty string"),
    (dict(architecture=[1, 2]), "architecture must be a mapping"),
    (dict(architecture={"feature": 8}), "no option 'feature'; use ['blocks', 'conserve'"),
    (dict(architecture={"features": "8"}), "architecture['features'] must be an integer >= 1"),
    (dict(architecture={"blocks": -1}), "architecture['blocks'] must be an integer >= 0"),
    (
        dict(architecture={"scale_radius": 17}),
        "architecture['scale_radius'] must be an integer in 0..16",
    ),
    (
        dict(architecture={"scale_radius": -1}),
        "architecture['scale_radius'] must be an integer in 0..16",
    ),
    (dict(architecture={"conserve": 1}), "architecture['conserve'] must be True or False"),
    (dict(factor=0.5), "factor"),
    (dict(ema=1.0), "ema must be a decay in (0, 1)"),
    (dict(ema=0), "ema must be a decay"),
    (dict(ema=float("nan")), "ema must be a decay"),
    (dict(ema="0.99"), "pass e.g. ema=0.999"),
]


@pytest.mark.parametrize(("options", "match"), BAD_OPTIONS)
def test_bad_options_are_refused_before_any_step(
    truth: xr.Dataset, options: dict[str, Any], match: str
) -> None:
    with pytest.raises((xsstsr.FitConfigError, xsstsr.LossConfigError, xsstsr.FactorError)) as err:
        xsstsr.fit(truth, **{**TINY, **options})
    assert match in str(err.value)
    assert isinstance(err.value, xsstsr.XsstsrError)


def test_unknown_option_names_the_closest() -> None:
    with pytest.raises(xsstsr.FitConfigError, match="did you mean 'adv_weight'"):
        FitConfig.from_options({"adversarial_weight": 1e-3})


def test_checkpoint_dir_inside_a_file_is_refused(truth: xr.Dataset, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(xsstsr.FitConfigError, match="inside a file"):
        xsstsr.fit(truth, checkpoint_dir=blocker / "ckpt", **TINY)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_checkpoint_dir_on_a_file_system_that_takes_no_folder_is_refused(
    truth: xr.Dataset,
) -> None:
    # /proc takes no new folder even for root, whom os.access lets write anywhere
    with pytest.raises(xsstsr.FitConfigError, match="cannot be created in '/proc'"):
        xsstsr.fit(truth, checkpoint_dir="/proc/xsstsr-test/ckpt", **TINY)


def test_config_object_and_keywords(truth: xr.Dataset) -> None:
    cfg = FitConfig(loss="gumbel", r=1.1, seed=4, **{k: v for k, v in TINY.items()})
    a = quiet(truth, config=cfg)
    b = quiet(truth, config=cfg.replace(seed=0), seed=4)
    assert a.metadata["training"]["config"] == b.metadata["training"]["config"]
    with pytest.raises(xsstsr.FitConfigError, match="config must be"):
        xsstsr.fit(truth, config={"loss": "mse"})


def test_signature_and_help_list_every_option() -> None:
    import inspect

    params = inspect.signature(xsstsr.fit).parameters
    for name in ("loss_scale", "adv_weight", "patience", "init", "lr_schedule", "steps"):
        assert name in params
    assert params["lr"].default == FitConfig().lr
    assert "loss_scale : float, optional" in (xsstsr.fit.__doc__ or "")


def test_name_is_honoured(truth: xr.Dataset) -> None:
    model = quiet(truth, name="my-model", **TINY)
    assert model.name == "my-model"
    assert quiet(truth, **TINY).name == "sst-x4-mse"


# -- schedules -----------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_schedules_differ_and_end_at_a_tenth(schedule: str) -> None:
    cfg = FitConfig(lr=1e-3, lr_schedule=schedule, warmup=0)
    rates = [learning_rate(cfg, s, 100) for s in range(100)]
    assert rates[0] == pytest.approx(1e-3)
    if schedule == "constant":
        assert rates[-1] == pytest.approx(1e-3)
    else:
        assert rates[-1] == pytest.approx(1e-4, rel=0.05)
        assert all(a >= b for a, b in itertools.pairwise(rates))


def test_warmup_rises_to_the_rate() -> None:
    cfg = FitConfig(lr=1e-3, lr_schedule="constant", warmup=9)
    rates = [learning_rate(cfg, s, 100) for s in range(12)]
    assert rates[0] == pytest.approx(1e-4)
    assert rates[8] == pytest.approx(9e-4)
    assert rates[9:] == [pytest.approx(1e-3)] * 3


def test_ema_decay_ramps_up_to_the_given_decay() -> None:
    assert ema_decay(FitConfig(), 5) == 0.0  # no average: the weights themselves
    cfg = FitConfig(ema=0.99)
    decays = [ema_decay(cfg, s) for s in range(1, 2000)]
    assert decays[0] == pytest.approx(2 / 11)
    assert all(a <= b for a, b in itertools.pairwise(decays))
    assert decays[-1] == 0.99


def test_steps_follow_the_amount_of_data() -> None:
    cfg = FitConfig()
    small = resolve(cfg, n_train_frames=10, ny=32, nx=32, pool=1)
    large = resolve(cfg, n_train_frames=200, ny=128, nx=128, pool=1)
    assert small.steps == 600  # the floor
    assert large.steps > small.steps
    assert resolve(cfg, 10, 16, 16, 1).patch_size == 12  # three quarters of a small grid
    assert resolve(cfg, 10, 200, 200, 1).patch_size == 24
    assert resolve(cfg, 10, 200, 200, 2).patch_size % 2 == 0  # whole coarse cells at 2.5
    assert resolve(FitConfig(epochs=3), 10, 32, 32, 1).steps == 3 * small.steps_per_epoch


# -- held-out time blocks ------------------------------------------------------------------


@pytest.mark.parametrize(("nt", "validation", "blocks", "window"), [
    (16, 0.2, None, 3), (100, 0.2, None, 3), (12, 0.2, 1, 1), (48, 0.25, 3, 5),
])  # fmt: skip
def test_validation_blocks_are_not_adjacent_to_training(
    nt: int, validation: float, blocks: int | None, window: int
) -> None:
    train, val = split_times(nt, validation, blocks, window)
    assert len(val) == round(nt * validation)
    gap = np.min(np.abs(train[:, None] - val[None, :]))
    assert gap >= max(2, window)  # never adjacent, never inside a training window
    assert set(train).isdisjoint(val)
    if blocks:  # contiguous runs
        runs = 1 + np.count_nonzero(np.diff(val) > 1)
        assert runs == min(blocks, len(val))


def test_too_short_a_record_for_validation_says_what_to_do() -> None:
    with pytest.raises(xsstsr.InputDataError, match="smaller validation="):
        split_times(4, 0.5, 1, 3)
    train, val = split_times(4, 0.0, None, 3)
    np.testing.assert_array_equal(train, val)


def test_validation_is_on_held_out_steps(truth: xr.Dataset) -> None:
    model = quiet(truth, validation=0.25, **TINY)
    held = model.metadata["training"]["validation_steps"]
    assert len(held) == 3
    assert model.validation is not None
    assert model.validation["held_out"] is True


# -- the loss scale --------------------------------------------------------------------------


def test_loss_scale_defaults_from_bicubic_and_is_stored(truth: xr.Dataset) -> None:
    mse = quiet(truth, **TINY).metadata["training"]
    gumbel = quiet(truth, loss="gumbel", r=1.1, **TINY).metadata["training"]
    frechet = quiet(truth, loss="frechet", a=13, s=1.7, **TINY).metadata["training"]
    bicubic = mse["bicubic_rmse_train"]
    assert 0.01 < bicubic < 2.0
    assert mse["loss_scale"] == pytest.approx(bicubic * LOSS_SCALE_MULTIPLIER["mse"])
    assert gumbel["loss_scale"] == pytest.approx(bicubic * LOSS_SCALE_MULTIPLIER["gumbel"])
    assert frechet["loss_scale"] == pytest.approx(bicubic * LOSS_SCALE_MULTIPLIER["frechet"])
    given = quiet(truth, loss_scale=0.07, **TINY).metadata["training"]
    assert given["loss_scale"] == 0.07
    assert given["loss_scale_source"] == "given"


def test_scale_turns_errors_into_units_of_the_loss_scale() -> None:
    pred = torch.tensor([[0.2, -0.1]], dtype=torch.float64)
    truth = torch.zeros_like(pred)
    config = LossConfig("gumbel", r=1.1)
    # errors of 0.2 and 0.1 normalised units, std 0.5 K, delta 0.05 K -> e = 2 and 1
    got = pointwise_loss(pred, truth, config, scale=0.5 / 0.05)
    e = np.array([2.0, -1.0])
    expected = np.mean((1 - np.exp(-(e**2))) ** 1.1 * e**2)
    assert float(got) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(xsstsr.LossConfigError, match="scale must be"):
        pointwise_loss(pred, truth, config, scale=0.0)


def test_gumbel_on_scaled_errors_has_a_gradient() -> None:
    """Errors of ~0.01 normalised units: no gradient unscaled, a real one scaled."""
    pred = torch.full((1, 100), 0.01, requires_grad=True)
    truth = torch.zeros(1, 100)
    config = LossConfig("gumbel", r=1.1)
    (grad_raw,) = torch.autograd.grad(pointwise_loss(pred, truth, config), pred)
    (grad_scaled,) = torch.autograd.grad(
        pointwise_loss(pred, truth, config, scale=8.0 / 0.07), pred
    )
    assert float(grad_raw.abs().max()) < 1e-7
    assert float(grad_scaled.abs().max()) > 1e-3


# -- best checkpoint, early stopping, skill warning -------------------------------------------


def test_the_returned_model_is_the_best_validation_checkpoint(truth: xr.Dataset) -> None:
    model = quiet(truth, **{**TINY, "steps": 8, "lr": 2e-2, "validate_every": 2, "patience": None})
    history = model.history.dropna(subset=["val_rmse"])
    assert history["step"].tolist() == [0, 2, 4, 6, 8]
    best = history.loc[history["val_rmse"].idxmin()]
    assert model.validation is not None
    assert model.validation["step"] == int(best["step"])
    assert model.validation["rmse"] == pytest.approx(float(best["val_rmse"]))
    assert model.validation["ratio"] == pytest.approx(
        model.validation["rmse"] / model.validation["rmse_bicubic"]
    )
    assert model.metadata["validation"] == model.validation


def test_a_model_no_better_than_bicubic_warns_and_is_the_start(truth: xr.Dataset) -> None:
    plain = {"conserve": False}  # a conserving start is already better than bicubic
    with pytest.warns(xsstsr.SkillWarning, match="no better than bicubic") as record:
        model = xsstsr.fit(truth, architecture=plain, **{**TINY, "steps": 2, "lr": 1e-9})
    assert record[0].filename == __file__
    assert "more steps=" in str(record[0].message)
    assert model.validation is not None
    assert model.validation["step"] == 0
    assert np.all(model.state["tail.weight"] == 0)  # exactly the bicubic start


def test_early_stopping_ends_the_fit(truth: xr.Dataset) -> None:
    model = quiet(truth, **{**TINY, "steps": 40, "lr": 1e-9, "validate_every": 2, "patience": 2})
    info = model.metadata["training"]
    assert info["stopped_early"] is True
    assert info["steps_run"] == 4  # two validations (steps 2, 4) without improvement
    assert int(model.history["step"].max()) == 4


def test_non_finite_loss_stops_with_a_typed_error(
    truth: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from xsstsr.training import loop

    real = loop.pointwise_loss
    calls = {"n": 0}

    def poisoned(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls["n"] += 1
        out = real(*args, **kwargs)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(loop, "pointwise_loss", poisoned)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(xsstsr.TrainingError, match="generator loss became nan at step 3") as err:
        xsstsr.fit(truth, checkpoint_dir=ckpt, checkpoint_every=1, **{**TINY, "steps": 5})
    assert "Likely cause" in str(err.value)
    # the last checkpoint is step 2's: the poisoned step never reached the weights on disk
    assert json.loads((ckpt / "xsstsr-checkpoint.json").read_text())["step"] == 2


def test_divergence_compares_the_first_and_last_steps_medians() -> None:
    from xsstsr.training.loop import divergence

    settles = np.r_[np.full(50, 2.0), np.full(150, 0.5)]
    assert divergence(settles) is None
    grows = np.r_[np.full(50, 1.0), np.full(100, 3.0), np.full(50, 12.0)]
    assert divergence(grows) == (1.0, 12.0)
    assert divergence(np.r_[np.full(50, 1.0), np.full(50, 9.0)]) is None  # under 10 x
    assert divergence(np.r_[np.ones(10), np.full(20, 1e6)]) is None  # too short to judge
    assert divergence(np.zeros(200)) is None  # a loss that never moved did not grow
    # a step with a non-finite loss is left out (a fit stops on one; resumed histories)
    assert divergence(np.r_[np.ones(40), [np.nan], np.full(40, 50.0)]) == (1.0, 50.0)


def test_a_finite_divergence_warns_and_returns_the_best_checkpoint(truth: xr.Dataset) -> None:
    """lr=0.01 blows the pixel loss up by about 1e8 without a non-finite step."""
    options = {**TINY, "steps": 120, "warmup": 20, "patience": None, "lr_schedule": "constant"}
    with pytest.warns(xsstsr.DivergenceWarning, match=r"diverged at lr=0.01.*lr=0.0025"):
        model = xsstsr.fit(truth, **{**options, "lr": 0.01})
    assert model.validation is not None
    assert model.validation["step"] < 60
    assert all(np.isfinite(v).all() for v in model.state.values())
    # keep="last" returns the diverged weights, and the warning says so
    with pytest.warns(xsstsr.SkillWarning) as caught:  # no better than bicubic, and diverged
        last = xsstsr.fit(truth, **{**options, "lr": 0.01, "keep": "last"})
    said = {w.category: str(w.message) for w in caught}
    assert "it is the last step's weights" in said[xsstsr.SkillWarning]
    assert re.search(r"last step's weights.*keep='best'", said[xsstsr.DivergenceWarning])
    assert last.validation is not None
    assert last.validation["step"] == 120
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xsstsr.SkillWarning)
        warnings.simplefilter("error", xsstsr.DivergenceWarning)  # checked first
        xsstsr.fit(truth, **{**options, "lr": 1e-3})


def test_absurd_data_is_refused_before_any_step(truth: xr.Dataset) -> None:
    """Values that would overflow the loss (1e30: a fill value) never reach a step."""
    broken = truth.copy(deep=True)
    broken["sst"][:] = broken["sst"].where(np.isnan(broken["sst"]), 1e30)
    with pytest.raises(xsstsr.InputDataError, match=r"look like fill values.*_FillValue"):
        xsstsr.fit(broken, **TINY)


# -- fine-tuning ---------------------------------------------------------------------------


def test_init_from_a_model_starts_from_its_weights(truth: xr.Dataset, tmp_path: Path) -> None:
    first = quiet(truth, **{**TINY, "steps": 3, "lr": 1e-3})
    path = first.save(tmp_path / "first.safetensors")
    # one step at a tiny rate: the weights stay next to the initial model's
    tuned = quiet(truth, **{**TINY, "init": path, "steps": 1, "lr": 1e-9, "validation": 0.0})
    assert tuned.normalisation == first.normalisation
    assert tuned.metadata["training"]["init"]["sha256"] == first.sha256
    diff = max(float(np.abs(tuned.state[k] - first.state[k]).max()) for k in first.state)
    assert diff < 1e-5
    fresh = quiet(truth, **{**TINY, "steps": 1, "lr": 1e-9, "validation": 0.0})
    assert float(np.abs(fresh.state["tail.weight"]).max()) < 1e-6  # bicubic start, not init's


def test_a_fine_tune_takes_its_start_s_rate_unless_lr_is_given(
    truth: xr.Dataset, tmp_path: Path
) -> None:
    from xsstsr.training.config import DEFAULT_LR

    scratch = quiet(truth, **TINY)
    assert scratch.metadata["training"]["lr"] == DEFAULT_LR
    slow = quiet(truth, **{**TINY, "lr": 3e-4})
    assert slow.metadata["training"]["lr"] == 3e-4
    path = slow.save(tmp_path / "slow.safetensors")
    assert quiet(truth, **{**TINY, "init": path}).metadata["training"]["lr"] == 3e-4
    given = quiet(truth, **{**TINY, "init": path, "lr": 1e-3})
    assert given.metadata["training"]["lr"] == 1e-3
    # a start trained faster than the from-scratch rate is fine-tuned at that rate at most
    fast = quiet(truth, **{**TINY, "lr": 4e-3}).save(tmp_path / "fast.safetensors")
    assert quiet(truth, **{**TINY, "init": fast}).metadata["training"]["lr"] == DEFAULT_LR


def test_default_init_starts_from_the_released_model(truth: xr.Dataset) -> None:
    released = xsstsr.load_model("sst-x4")
    options = {k: v for k, v in TINY.items() if k != "init"}
    tuned = quiet(truth, **{**options, "steps": 1, "lr": 1e-9, "validation": 0.0})
    assert tuned.metadata["training"]["init"] == {
        "name": "sst-x4",
        "sha256": released.sha256,
        "auto": True,
    }
    assert tuned.normalisation == released.normalisation
    assert tuned.metadata["architecture"] == released.metadata["architecture"]
    diff = max(float(np.abs(tuned.state[k] - released.state[k]).max()) for k in released.state)
    assert diff < 1e-4


@pytest.mark.parametrize(
    "change",
    [
        {"architecture": {"features": 8, "blocks": 1}},  # not the released network
        {"window": 2},  # not its window
        {"factor": 3},  # no released model of this factor
    ],
    ids=["architecture", "window", "factor"],
)
def test_default_init_falls_back_to_scratch(truth: xr.Dataset, change: dict) -> None:
    options = {k: v for k, v in TINY.items() if k != "init"}
    data = truth.isel(lat=slice(0, 30), lon=slice(0, 30)) if change.get("factor") == 3 else truth
    model = quiet(data, **{**options, **change, "steps": 1, "validation": 0.0})
    assert model.metadata["training"]["init"] is None


def test_default_init_needs_area_averaged_inputs(truth: xr.Dataset) -> None:
    # inputs given as their own grid (target=): the released models' conserving
    # projection assumes area averages, so the fit starts from scratch
    options = {k: v for k, v in TINY.items() if k not in ("init", "factor")}
    coarse = truth.coarsen(lat=4, lon=4).mean()
    model = quiet(coarse, target=truth, **{**options, "steps": 1, "validation": 0.0})
    assert model.metadata["training"]["init"] is None


def test_init_must_match(truth: xr.Dataset) -> None:
    base = quiet(truth, **TINY)
    with pytest.raises(xsstsr.ModelMismatchError, match="downscales by 4"):
        xsstsr.fit(synthetic_sst(40, 40, periods=12), **{**TINY, "init": base, "factor": 2})
    with pytest.raises(xsstsr.ModelMismatchError, match="window of 3"):
        xsstsr.fit(truth, **{**TINY, "init": base, "window": 2})


def test_history_is_a_frame_with_the_starting_point(truth: xr.Dataset) -> None:
    model = quiet(truth, architecture={"conserve": False}, **TINY)
    assert isinstance(model.history, pd.DataFrame)
    first = model.history.iloc[0]
    assert first["step"] == 0
    assert math.isclose(first["val_rmse"], first["val_rmse_bicubic"])  # bicubic at the start


def test_fits_without_a_target_conserve_the_coarse_means(truth: xr.Dataset) -> None:
    model = quiet(truth, **TINY)
    assert model.metadata["architecture"]["conserve"] is True
    first = model.history.iloc[0]
    assert first["val_rmse"] < first["val_rmse_bicubic"]  # the projection alone helps
    coarse = xsstsr.grid.coarsen_truth(truth, 4)
    shifted = truth.assign_coords(lat=truth.lat + 0.01)
    options = {k: v for k, v in TINY.items() if k != "factor"}
    with pytest.warns(UserWarning, match="interpolating"):
        targeted = quiet(coarse, target=shifted, **options)
    assert targeted.metadata["architecture"]["conserve"] is False  # it may correct biases


# -- augmentation ------------------------------------------------------------------------


def test_augmentation_moves_the_stations_with_the_field() -> None:
    from xsstsr.training.data import Batch, augment

    rng = np.random.default_rng(0)
    n, p = 8, 12
    target = rng.normal(size=(n, 1, p, p)).astype("float32")
    frames = rng.normal(size=(n, 3, p // 4, p // 4)).astype("float32")
    # one station per patch at a pixel centre: grid_sample reads that pixel exactly
    iy, ix = rng.integers(0, p, size=n), rng.integers(0, p, size=n)
    grid = np.stack([(2 * ix + 1) / p - 1, (2 * iy + 1) / p - 1], -1)[:, None, :]
    values = target[np.arange(n), 0, iy, ix][:, None]
    batch = Batch(frames, target, grid.astype("float32"), values)
    out = augment(batch, np.arange(8))
    sampled = torch.nn.functional.grid_sample(
        torch.from_numpy(out.target),
        torch.from_numpy(out.station_grid)[:, :, None, :],
        mode="bilinear",
        align_corners=False,
    )[:, 0, :, 0].numpy()
    np.testing.assert_allclose(sampled, values, rtol=1e-6)
    np.testing.assert_array_equal(out.target[0], target[0])  # code 0: unchanged
    np.testing.assert_array_equal(out.target[1], target[1][..., ::-1])
    np.testing.assert_array_equal(out.frames[4], np.swapaxes(frames[4], -1, -2))
    assert batch.target is target  # the input batch is not modified
    np.testing.assert_array_equal(batch.station_grid, grid.astype("float32"))


def test_unknown_option_over_a_config_is_refused(truth: xr.Dataset) -> None:
    with pytest.raises(xsstsr.FitConfigError, match="did you mean 'steps'"):
        xsstsr.fit(truth, config=FitConfig(**TINY), step=3)


def test_keep_last_returns_the_last_checkpoint(truth: xr.Dataset) -> None:
    """A realistic model keeps its last weights: the lowest-RMSE one would undo the trade."""
    options = {**TINY, "steps": 6, "validate_every": 2, "lr": 5e-3}
    best = quiet(truth, **options)
    last = quiet(truth, keep="last", **options)
    assert last.validation["step"] == 6
    history = last.history.dropna(subset=["val_rmse"])
    assert last.validation["rmse"] == pytest.approx(history["val_rmse"].iloc[-1])
    assert best.validation["rmse"] == pytest.approx(history["val_rmse"].min())
