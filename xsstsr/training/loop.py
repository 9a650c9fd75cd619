"""The training loop: WGAN-GP critic steps, the generator step, validation, best checkpoint.

Every step draws its randomness from ``(seed, step)``, which makes runs reproducible, lets
the next batch be loaded in the background while the current one trains, and lets an
interrupted run resume to the same weights.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import (
    DivergenceWarning,
    DownloadError,
    InputDataError,
    ModelMismatchError,
    SkillWarning,
    TrainingError,
    WeightsError,
    WeightsWarning,
    warn_user,
)
from ..models.container import Model
from ..models.metadata import new_metadata
from ..nn.adversarial import critic_loss
from ..nn.losses import pointwise_loss
from .checkpoints import CHECKPOINT_STATE, flat_settings, load_checkpoint, save_checkpoint
from .config import (
    DEFAULT_LR,
    LOSS_SCALE_MULTIPLIER,
    FitConfig,
    base_rate,
    ema_decay,
    learning_rate,
    resolve,
)
from .data import (
    Batch,
    PatchSampler,
    StationData,
    TrainingData,
    augment,
    data_domain,
    normalisation_statistics,
    split_times,
)
from .parallel import average_gradients, distributed

# Validation improves only when the RMSE falls by more than this fraction of the best.
MIN_IMPROVEMENT = 1e-3
VALIDATION_PATCHES = 64
SCALE_PATCHES = 128
MIN_LOSS_SCALE = 1e-3  # kelvin: a record identical to its interpolation has no error scale
DIVERGENCE_FACTOR = 10.0  # the last steps' median pixel loss over the first steps'
DIVERGENCE_WINDOW = 50  # steps at each end (a quarter of a shorter fit; 10 at least)


def divergence(pixel_losses: Any) -> tuple[float, float] | None:
    """The medians of the pixel loss over a fit's first and last steps when the last is
    :data:`DIVERGENCE_FACTOR` times the first or more (the fit diverged), else None.

    A diverging Adam run can stay finite for thousands of steps: no step fails, the
    validation never beats the start, and early stopping returns the start unchanged.
    """
    losses = np.asarray(pixel_losses, dtype=float)
    losses = losses[np.isfinite(losses)]
    n = min(DIVERGENCE_WINDOW, losses.size // 4)
    if n < 10:
        return None
    first, last = float(np.median(losses[:n])), float(np.median(losses[-n:]))
    return (first, last) if first > 0 and last >= DIVERGENCE_FACTOR * first else None


def is_auto(init: Any) -> bool:
    return isinstance(init, str) and init == "auto"


def _mismatch(init: Model, cfg: FitConfig, data: TrainingData) -> str | None:
    """Why ``init``'s weights cannot start a fit of ``data`` with ``cfg`` (None: they can)."""
    if (init.upsample, init.pool) != (data.upsample, data.pool):
        return (
            f"init model {init.name!r} downscales by {init.factor:g}, the data by "
            f"{data.upsample / data.pool:g}; pass factor={init.factor:g} or another init model."
        )
    if list(init.inputs) != list(data.inputs):
        return (
            f"init model {init.name!r} takes inputs {init.inputs}, the data gives "
            f"{data.inputs}; pass the same sources= it was trained with."
        )
    if cfg.window is not None and cfg.window != init.window:
        return (
            f"init model {init.name!r} sees a window of {init.window} steps, not "
            f"window={cfg.window}; drop window= to use the model's."
        )
    if cfg.architecture is not None:
        return "architecture= cannot change an init model's architecture; drop one of them."
    return None


def released_start(cfg: FitConfig, data: TrainingData) -> Model | None:
    """The released accurate model ``init="auto"`` starts from, or None (from scratch).

    Only where its weights fit the data as they are: inputs made by area averaging (the
    released models conserve the coarse means), SST alone, the released architecture
    and window. Fine-tuning it beat training from scratch on every record of the
    training study by fit's own validation (docs/training_study.md).
    """
    from ..models.weights import available_models, load_model

    name = f"sst-x{data.upsample / data.pool:g}"
    if (
        data.mode != "coarsened-truth"
        or cfg.architecture is not None
        or name not in available_models()
    ):
        return None
    try:
        model = load_model(name)
    except (WeightsError, DownloadError) as err:  # a bad mirror must not stop a default fit
        warn_user(
            f"init='auto' could not load {name!r} ({err}); training from scratch. Pass "
            "init=None to silence this, or fix the weights source.",
            WeightsWarning,
        )
        return None
    return None if _mismatch(model, cfg, data) else model


def _initial_model(cfg: FitConfig, data: TrainingData) -> Model | None:
    if is_auto(cfg.init):
        return released_start(cfg, data)
    if cfg.init is None:
        return None
    from ..models.weights import load_model

    init = load_model(cfg.init)
    problem = _mismatch(init, cfg, data)
    if problem:
        raise ModelMismatchError(problem)
    return init


def _fail(step: int, what: str, value: float, cfg: FitConfig) -> TrainingError:
    causes = []
    if base_rate(cfg.lr) > DEFAULT_LR:
        causes.append(f"the learning rate is high (lr={cfg.lr:g}; try lr=5e-4)")
    if cfg.adv_weight > 0.1:
        causes.append(f"the adversarial weight is large (adv_weight={cfg.adv_weight:g})")
    if not causes:
        causes.append(
            "non-finite values in the training data, or a learning rate too high for it "
            "(try a smaller lr=)"
        )
    return TrainingError(
        f"the {what} became {value} at step {step}; stopped before it reached the weights. "
        f"Likely cause: {'; '.join(causes)}."
    )


def train(
    cfg: FitConfig, data: TrainingData, stations: StationData | None, mean_std: Any = None
) -> Model:
    """Fit a generator to ``data`` with ``cfg``; returns the best validation checkpoint."""
    import torch

    from ..inference.devices import resolve_device
    from ..nn.networks import Critic, build_generator

    config = cfg.loss_config
    device = resolve_device(cfg.device)
    rank, world, device = distributed(device)
    if cfg.batch_size % world:
        raise InputDataError(
            f"batch_size={cfg.batch_size} is the global batch and must be divisible by the "
            f"{world} processes of the data-parallel run."
        )
    local = cfg.batch_size // world

    init = _initial_model(cfg, data)
    start_training = init.metadata.get("training") if init is not None else None
    start_lr = start_training.get("lr") if isinstance(start_training, Mapping) else None
    lr_given = cfg.lr is not None
    lr = base_rate(cfg.lr, start_lr)
    cfg = cfg.replace(lr=lr)
    window = init.window if init is not None else (cfg.window or 3)
    nt, ny, nx = data.shape
    if window > nt:
        raise InputDataError(
            f"window={window} is longer than the record ({nt} time steps); use window<={nt}."
        )
    mean, std = init.normalisation if init is not None else normalisation_statistics(data.low[-1])
    train_times, val_times = split_times(nt, cfg.validation, cfg.validation_blocks, window)
    held_out = bool(np.setdiff1d(val_times, train_times).size)
    if cfg.validation > 0 and not held_out:
        warn_user(
            f"validation={cfg.validation:g} of {nt} time steps holds none out "
            f"(round({nt} x {cfg.validation:g}) = 0): the best checkpoint is chosen on the "
            f"training frames. Pass validation>={1 / nt:.3g} to hold a step out, or "
            "validation=0 to say so."
        )
    plan = resolve(cfg.replace(window=window), len(train_times), ny, nx, data.pool)
    sampler = PatchSampler(data, window, plan.patch_size, mean, std, stations)
    total = plan.steps

    frac = Fraction(data.upsample, data.pool)
    if init is not None:
        architecture = init.metadata["architecture"]
    else:
        # conserve the coarse cells' means where the inputs are the truth's area averages
        architecture = {"conserve": data.mode == "coarsened-truth", **(cfg.architecture or {})}
    meta = new_metadata(
        name=cfg.name or f"sst-x{float(frac):g}-{config.describe()}",
        upsample=data.upsample,
        pool=data.pool,
        window=window,
        inputs=data.inputs,
        mean=mean,
        std=std,
        architecture=architecture,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        gen = build_generator(meta).to(device)
        critic = Critic().to(device)
    if init is not None:
        gen.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.state.items()})

    def to_device(batch: Batch) -> tuple[Any, ...]:
        return tuple(
            torch.from_numpy(x).to(device)
            for x in (batch.frames, batch.target, batch.station_grid, batch.station_values)
        )

    # -- the loss scale: a multiple of bicubic's RMSE on training patches (kelvin) -------
    bicubic_rmse = _bicubic_rmse(gen, sampler, train_times, cfg.seed, std, to_device)
    if cfg.loss_scale is not None:
        delta = cfg.loss_scale
    else:
        delta = max(MIN_LOSS_SCALE, LOSS_SCALE_MULTIPLIER[config.name] * bicubic_rmse)
    scale = std / delta

    training_info: dict[str, Any] = {
        "mode": data.mode,
        "loss": config.to_dict(),
        "loss_scale": delta,
        "loss_scale_source": "given" if cfg.loss_scale is not None else "bicubic-rmse",
        "bicubic_rmse_train": bicubic_rmse,
        "config": cfg.to_dict(),
        "steps": total,
        "steps_per_epoch": plan.steps_per_epoch,
        "batch_size": cfg.batch_size,
        "patch_size": sampler.patch,
        "lr": lr,
        "lr_schedule": cfg.lr_schedule,
        "n_critic": cfg.n_critic,
        "gp_weight": cfg.gp_weight,
        "adv_weight": cfg.adv_weight,
        "pixel_weight": cfg.pixel_weight,
        "station_weight": cfg.station_weight,
        "augment": cfg.augment,
        "ema": cfg.ema,
        "seed": cfg.seed,
        "validation": cfg.validation,
        "validation_steps": [int(t) for t in val_times] if held_out else [],
        "shape": list(data.shape),
        "period": [str(data.times[0]), str(data.times[-1])],
        "n_stations": 0 if stations is None else len(stations.ids),
        "init": None if init is None else {"name": init.name, "sha256": init.sha256},
    }
    meta["domain"] = data_domain(data)
    # the start counts by its weights (name, sha256), not by how it was chosen
    described = {
        # the architecture (hashed) sets the format version: a resume across it is the same fit
        **{k: v for k, v in meta.items() if k not in ("xsstsr_version", "format_version")},
        "training": training_info,
    }
    fingerprint = hashlib.sha256(
        json.dumps(described, sort_keys=True, default=str).encode()
    ).hexdigest()
    settings = flat_settings(described)
    if init is not None:
        training_info["init"] = {**training_info["init"], "auto": is_auto(cfg.init)}
    meta["training"] = training_info

    best_gen = copy.deepcopy(gen)
    # the weights that are validated and returned: the generator, or its running average
    average = copy.deepcopy(gen) if cfg.ema is not None else None
    scored = average if average is not None else gen
    gen_step: Any = gen
    if world > 1:
        # the critic's gradients are averaged by hand: DDP has no double backward (the GP)
        from torch.nn.parallel import DistributedDataParallel

        gen_step = DistributedDataParallel(gen)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.0, 0.9))
    nets = {"generator": gen, "critic": critic, "best": best_gen}
    if average is not None:
        nets["average"] = average
    optimizers = {"opt_generator": opt_g, "opt_critic": opt_d}

    ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir is not None else None
    start, history = 0, list[dict[str, Any]]()
    loop: dict[str, Any] = {"best_rmse": math.inf, "best_step": 0, "bad": 0, "stopped": False}
    if ckpt is not None and cfg.resume:
        restored = load_checkpoint(
            ckpt,
            fingerprint,
            nets,
            optimizers,
            hints={
                "init": (
                    f"This fit starts from {init.name!r} (init='auto'); pass init=None if "
                    "the first run started from scratch."
                    if init is not None and is_auto(cfg.init)
                    else ""
                ),
                # a fine-tune begun before lr defaulted to its start's rate recorded 2e-3
                "lr": (
                    f"lr now defaults to the rate the start was trained with ({lr:g} here); "
                    f"pass lr={DEFAULT_LR:g} to resume a fit begun with the former default."
                    if init is not None and not lr_given and lr != DEFAULT_LR
                    else ""
                ),
            },
            settings=settings,
        )
        if restored is not None:
            start, history, loop = restored
    elif ckpt is not None and (ckpt / CHECKPOINT_STATE).exists():
        raise TrainingError(
            f"{ckpt} already holds a checkpoint; pass resume=True to continue it, or use an "
            "empty checkpoint_dir."
        )

    val_rng = np.random.default_rng([cfg.seed, 2**31 - 1])
    val_batch = to_device(sampler.load(sampler.positions(val_rng, val_times, VALIDATION_PATCHES)))

    def validate() -> dict[str, float]:
        frames, high, _, _ = val_batch
        sq = sq_base = count = 0.0
        scored.eval()
        with torch.no_grad():
            for i in range(0, frames.shape[0], max(1, local)):
                f, h = frames[i : i + local], high[i : i + local]
                valid = torch.isfinite(h)
                sq += float(((scored(f) - h)[valid] * std).pow(2).sum())
                sq_base += float(((scored.upsampled_input(f) - h)[valid] * std).pow(2).sum())
                count += float(valid.sum())
        scored.train()
        rmse = math.sqrt(sq / max(count, 1.0))
        return {"val_rmse": rmse, "val_rmse_bicubic": math.sqrt(sq_base / max(count, 1.0))}

    def conditioned(frames: Any, high: Any) -> tuple[Any, Any, Any]:
        valid = torch.isfinite(high)
        m = valid.float()
        return valid, m, torch.cat([gen.upsampled_input(frames) * m, m], dim=1)

    def plan_step(step: int) -> tuple[int, list[tuple[int, int, int]], np.ndarray]:
        rng = np.random.default_rng([cfg.seed, step])
        gp_seed = int(rng.integers(2**62))
        n = (cfg.n_critic + 1) * cfg.batch_size
        positions = sampler.positions(rng, train_times, n)
        codes = rng.integers(0, 8, size=n) if cfg.augment else np.zeros(n, dtype=int)
        # this process's part of each group of the global batch
        first = rank * local
        mine = [
            k * cfg.batch_size + i
            for k in range(cfg.n_critic + 1)
            for i in range(first, first + local)
        ]
        return gp_seed, [positions[i] for i in mine], codes[mine]

    def load(step: int) -> tuple[int, Batch]:
        gp_seed, positions, codes = plan_step(step)
        batch = sampler.load(positions)
        return gp_seed, augment(batch, codes) if cfg.augment else batch

    def consider(step: int, scores: dict[str, float]) -> None:
        rmse = scores["val_rmse"]
        if not math.isfinite(rmse):
            raise _fail(step, "validation RMSE", rmse, cfg)
        if cfg.keep == "last" or rmse < loop["best_rmse"] * (1 - MIN_IMPROVEMENT):
            loop.update(
                best_rmse=rmse, best_step=step, bad=0, best_bicubic=scores["val_rmse_bicubic"]
            )
            best_gen.load_state_dict(scored.state_dict())
        else:
            loop["bad"] += 1
            if cfg.patience is not None and held_out and loop["bad"] >= cfg.patience:
                loop["stopped"] = True

    from tqdm.auto import tqdm

    if start == 0:  # the starting point (bicubic, or the init model) is the first candidate
        first = validate()
        consider(0, first)
        history.append({"step": 0, "epoch": 0, **first})
    bar = tqdm(
        total=total,
        initial=start,
        disable=not cfg.progress or rank != 0,
        desc="xsstsr fit",
        unit="step",
        dynamic_ncols=True,
    )
    started = time.perf_counter()
    gen.train()
    critic.train()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xsstsr-patches")
    pending = pool.submit(load, start) if start < total and not loop["stopped"] else None
    step = start
    try:
        while pending is not None:
            waited = time.perf_counter()
            gp_seed, batch = pending.result()
            waited = time.perf_counter() - waited
            nxt = step + 1
            pending = pool.submit(load, nxt) if nxt < total else None
            rate = learning_rate(cfg, step, total)
            for opt in (opt_g, opt_d):
                for group in opt.param_groups:
                    group["lr"] = rate
            gp_rng = torch.Generator().manual_seed(gp_seed)
            frames, high, s_grid, s_vals = to_device(batch)
            stats: dict[str, float] = {}
            for k in range(cfg.n_critic):
                sl = slice(k * local, (k + 1) * local)
                with torch.no_grad():
                    fake = gen(frames[sl])
                valid, m, cond = conditioned(frames[sl], high[sl])
                real = torch.where(valid, high[sl], torch.zeros_like(high[sl]))
                share = slice(rank * local, (rank + 1) * local)
                eps = torch.rand(cfg.batch_size, generator=gp_rng)[share]
                loss_d, stats = critic_loss(critic, real, fake * m, cond, cfg.gp_weight, eps=eps)
                if not math.isfinite(stats["critic"]):
                    raise _fail(step + 1, "critic loss", stats["critic"], cfg)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                if world > 1:
                    average_gradients(critic, world)
                opt_d.step()
            sl = slice(cfg.n_critic * local, (cfg.n_critic + 1) * local)
            fake = gen_step(frames[sl])
            valid, m, cond = conditioned(frames[sl], high[sl])
            adv = -critic(fake * m, cond).mean() if cfg.adv_weight > 0 else fake.sum() * 0
            pix = pointwise_loss(fake, high[sl], config, scale=scale)
            sta = fake.sum() * 0
            if stations is not None:
                sampled = torch.nn.functional.grid_sample(
                    fake, s_grid[sl][:, :, None, :], mode="bilinear", align_corners=False
                )[:, 0, :, 0]
                sta = pointwise_loss(sampled, s_vals[sl], config, scale=scale)
            loss_g = cfg.adv_weight * adv + cfg.pixel_weight * pix + cfg.station_weight * sta
            value = float(loss_g.detach())
            if not math.isfinite(value):
                raise _fail(step + 1, "generator loss", value, cfg)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            step = nxt
            if average is not None:
                _update_average(average, gen, ema_decay(cfg, step))
            record: dict[str, Any] = {
                "step": step,
                "epoch": (step - 1) // plan.steps_per_epoch + 1,
                "lr": rate,
                "critic": stats.get("critic", math.nan),
                "wasserstein": stats.get("wasserstein", math.nan),
                "gp": stats.get("gp", math.nan),
                "generator": value,
                "adversarial": float(adv.detach()),
                "pixel": float(pix.detach()),
                "station": float(sta.detach()),
                "seconds": time.perf_counter() - started,
                "data_wait_s": waited,
            }
            if step % plan.validate_every == 0 or step == total:
                record.update(validate())
                consider(step, record)
                if loop["stopped"]:
                    pending = None  # early stop: patience ran out
            history.append(record)
            bar.update(1)
            bar.set_postfix(
                pix=f"{record['pixel']:.3f}",
                val=f"{loop['best_rmse']:.4f}",
                refresh=False,
            )
            if (
                ckpt is not None
                and rank == 0
                and (step % cfg.checkpoint_every == 0 or step == total or loop["stopped"])
            ):
                save_checkpoint(ckpt, step, fingerprint, nets, optimizers, history, loop, settings)
    finally:
        if pending is not None:
            pending.cancel()
        pool.shutdown(wait=True)
        bar.close()
    wall = time.perf_counter() - started

    state = {k: v.detach().cpu().numpy().copy() for k, v in best_gen.state_dict().items()}
    if not all(np.isfinite(v).all() for v in state.values()):
        raise TrainingError(
            "the best generator has non-finite weights; this is a bug: please report it with "
            "the fit's arguments."
        )
    best_rmse, best_bicubic = float(loop["best_rmse"]), float(loop.get("best_bicubic", math.nan))
    validation = {
        "rmse": best_rmse,
        "rmse_bicubic": best_bicubic,
        "ratio": best_rmse / best_bicubic if best_bicubic > 0 else math.nan,
        "step": int(loop["best_step"]),
        "held_out": held_out,
        "patches": VALIDATION_PATCHES,
    }
    training_info.update(
        wall_time_s=round(wall, 2),
        steps_run=step,
        stopped_early=bool(loop["stopped"]),
        device=device,
        processes=world,
        torch_version=torch.__version__,
    )
    meta["training"] = training_info
    meta["validation"] = validation
    model = Model(state, meta, history=pd.DataFrame(history))
    best_step = int(loop["best_step"])
    if cfg.keep == "last":
        returned = "the last step's weights (keep='last')"
    else:
        returned = "the starting point" if best_step == 0 else "the best checkpoint"
    if rank == 0 and not best_rmse < best_bicubic * (1 - MIN_IMPROVEMENT):
        warn_user(
            f"the fitted model is no better than bicubic interpolation on the validation "
            f"steps (RMSE {best_rmse:.4f} K vs {best_bicubic:.4f} K); it is {returned}. "
            "Try more data (a longer record or more regions), more steps= , loss='mse', or "
            "a smaller adv_weight=.",
            SkillWarning,
        )
    # with pixel_weight=0 (stations alone) the pixel loss is not trained and may drift
    pixel = [r["pixel"] for r in history if "pixel" in r] if rank == 0 else []
    grown = divergence(pixel) if cfg.pixel_weight else None
    if grown is not None:
        then = ". Pass"
        if cfg.keep == "last":
            then = ": pass keep='best' to get the best validation checkpoint instead, or"
        warn_user(
            f"the pixel loss grew from {grown[0]:.3g} (median of the first steps) to "
            f"{grown[1]:.3g} (the last): the fit diverged at lr={lr:g}. The model returned "
            f"is {returned}, step {best_step}{then} a smaller lr= (e.g. lr={lr / 4:g}).",
            DivergenceWarning,
        )
    return model


def _update_average(average: Any, gen: Any, decay: float) -> None:
    """``average <- decay * average + (1 - decay) * gen``, parameters and buffers alike."""
    import torch

    with torch.no_grad():
        for mean, new in zip(average.parameters(), gen.parameters(), strict=True):
            mean.lerp_(new, 1.0 - decay)
        for mean, new in zip(average.buffers(), gen.buffers(), strict=True):
            mean.copy_(new)


def _bicubic_rmse(
    gen: Any, sampler: PatchSampler, times: np.ndarray, seed: int, std: float, to_device: Any
) -> float:
    """RMSE (kelvin) of the generator's bicubic base against the truth on training patches."""
    import torch

    rng = np.random.default_rng([seed, 2**31 - 2])
    frames, high, _, _ = to_device(sampler.load(sampler.positions(rng, times, SCALE_PATCHES)))
    with torch.no_grad():
        base = gen.upsampled_input(frames)
    valid = torch.isfinite(high)
    if not bool(valid.any()):
        raise InputDataError(
            "the training patches hold no ocean cell; check the variable, its _FillValue "
            "and the region."
        )
    return float(((base - high)[valid] * std).pow(2).mean().sqrt())
