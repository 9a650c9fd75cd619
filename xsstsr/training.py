"""``fit``: train the generator with WGAN-GP, a pixel loss, a station loss and checkpoints.

Two ways to train (DESIGN.md section 1):

* without ``target``, the data itself is the high-resolution truth and the inputs are
  made by area-averaging it by the factor;
* with ``target=``, the data is the low-resolution input (e.g. a reanalysis) and
  ``target`` the high-resolution truth on its own grid (e.g. a satellite composite).

Patches are cut lazily, so a dask-backed record larger than memory is never loaded
whole. Every step draws its randomness from ``(seed, step)``, which makes runs
reproducible and lets an interrupted run resume to the same weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time as _time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ._version import __version__
from .cf import KELVIN_OFFSET, find_fields, regular_spacing
from .downscale import fine_coordinate
from .errors import GridError, InputDataError, StationsError, TrainingError, warn_user
from .model import Model, new_metadata, write_atomic
from .stations import align_to_times, drop_outside, read_stations
from .weights import parse_factor

CHECKPOINT_TENSORS = "xsstsr-checkpoint.safetensors"
CHECKPOINT_STATE = "xsstsr-checkpoint.json"


@dataclass
class TrainingData:
    """Low-resolution inputs and high-resolution truth on exactly nested grids, in degC."""

    low: list[Any]  # arrays (time, y, x): fusion sources first, the SST last
    high: Any  # array (time, y*f, x*f)
    upsample: int
    pool: int
    times: np.ndarray
    fine_lat: np.ndarray
    fine_lon: np.ndarray
    coarse_lat: np.ndarray
    coarse_lon: np.ndarray
    mode: str
    inputs: list[str] = field(default_factory=lambda: ["sst"])

    @property
    def shape(self) -> tuple[int, int, int]:
        nt, ny, nx = self.low[-1].shape
        return int(nt), int(ny), int(nx)


# -- data preparation ----------------------------------------------------------


def _celsius(da: xr.DataArray, units: str) -> xr.DataArray:
    return da - KELVIN_OFFSET if units == "K" else da


def prepare_data(
    obj: xr.Dataset | xr.DataArray,
    *,
    target: xr.Dataset | xr.DataArray | None,
    sources: Sequence[xr.DataArray] | None,
    factor: Any,
    variable: Hashable | None,
    lat: Hashable | None,
    lon: Hashable | None,
) -> TrainingData:
    """Find the SST, build the inputs and the truth on nested grids."""
    da, fields = find_fields(obj, variable, lat, lon)
    if fields.time is None:
        raise InputDataError(
            "training needs a time dimension (the generator sees a window of time steps); "
            "add one with da.expand_dims(time=[...])."
        )
    extra = [d for d in da.dims if d not in (fields.time, fields.lat, fields.lon)]
    if extra:
        raise InputDataError(
            f"training data must be (time, lat, lon); select or stack the extra dims {extra} "
            "first, e.g. ds.isel(depth=0)."
        )
    da = _celsius(da.transpose(fields.time, fields.lat, fields.lon), fields.units)
    lat_dim, lon_dim, time_dim = fields.lat, fields.lon, fields.time
    if target is None:
        frac = parse_factor(4 if factor is None else factor)
        up, pool = frac.numerator, frac.denominator
        high = da
        for dim in (lat_dim, lon_dim):
            if (high.sizes[dim] * pool) % up:
                raise GridError(
                    f"the {dim!r} size {high.sizes[dim]} is not a multiple of the factor "
                    f"{float(frac):g}; crop it, e.g. .isel({dim}=slice(0, "
                    f"{high.sizes[dim] - (high.sizes[dim] * pool) % up // pool or 1}))."
                )
        fine_lat = high[lat_dim].values.astype("float64")
        fine_lon = high[lon_dim].values.astype("float64")
        coarse_lat = _coarse_centres(fine_lat, lat_dim, up, pool)
        coarse_lon = _coarse_centres(fine_lon, lon_dim, up, pool)
        from .datasets import coarsen_truth

        coarse = coarsen_truth(high, float(frac), lat=lat_dim, lon=lon_dim)
        assert isinstance(coarse, xr.DataArray)
        low = coarse.assign_coords({lat_dim: coarse_lat, lon_dim: coarse_lon})
        mode = "coarsened-truth"
    else:
        low = da
        tda, tfields = find_fields(target, None, None, None)
        if tfields.time is None:
            raise InputDataError("target needs the same time dimension as the input.")
        t_lat, t_lon = tfields.lat, tfields.lon
        tda = _celsius(tda, tfields.units).transpose(tfields.time, t_lat, t_lon)
        tda = tda.rename({tfields.time: time_dim, t_lat: lat_dim, t_lon: lon_dim})
        ratio = regular_spacing(low[lat_dim].values, lat_dim) / regular_spacing(
            tda[lat_dim].values, lat_dim
        )
        frac = parse_factor(round(abs(ratio) * 8) / 8 if factor is None else factor)
        up, pool = frac.numerator, frac.denominator
        fine_lat, _ = fine_coordinate(low[lat_dim], up, pool)
        fine_lon, _ = fine_coordinate(low[lon_dim], up, pool)
        same = (
            tda.sizes[lat_dim] == fine_lat.size
            and tda.sizes[lon_dim] == fine_lon.size
            and np.allclose(tda[lat_dim], fine_lat, atol=1e-6 * abs(fine_lat[1] - fine_lat[0]))
            and np.allclose(tda[lon_dim], fine_lon, atol=1e-6 * abs(fine_lon[1] - fine_lon[0]))
        )
        if not same:
            warn_user(
                f"target grid is not the input grid refined by {float(frac):g}; interpolating "
                "it linearly onto that grid."
            )
            tda = tda.interp({lat_dim: fine_lat, lon_dim: fine_lon}, method="linear")
        low, high = xr.align(
            low,
            tda.assign_coords({lat_dim: fine_lat, lon_dim: fine_lon}),
            join="inner",
            exclude=[lat_dim, lon_dim],
        )
        if low.sizes[time_dim] == 0:
            raise InputDataError("the input and the target share no time step.")
        coarse_lat = low[lat_dim].values.astype("float64")
        coarse_lon = low[lon_dim].values.astype("float64")
        mode = "target"
    lows: list[Any] = []
    names: list[str] = []
    for i, source in enumerate(sources or []):
        from .downscale import _align_source

        aligned = _align_source(source, low, lat_dim, lon_dim, i)
        lows.append(_as_array(aligned))
        names.append(str(source.name or f"source{i}"))
    lows.append(_as_array(low))
    names.append("sst")
    return TrainingData(
        low=lows,
        high=_as_array(high),
        upsample=up,
        pool=pool,
        times=np.asarray(low[time_dim].values),
        fine_lat=fine_lat,
        fine_lon=fine_lon,
        coarse_lat=coarse_lat,
        coarse_lon=coarse_lon,
        mode=mode,
        inputs=names,
    )


def _coarse_centres(fine: np.ndarray, name: Hashable, up: int, pool: int) -> np.ndarray:
    step = regular_spacing(fine, name)
    n = fine.size * pool // up
    return fine[0] - step / 2 + (np.arange(n) + 0.5) * step * up / pool


def _as_array(da: xr.DataArray) -> Any:
    """numpy for in-memory data, dask for lazy data: patches are cut from either."""
    return (
        da.data.astype("float32")
        if da.chunks is not None
        else np.asarray(da.values, dtype="float32")
    )


def _nan_stats(arr: Any) -> tuple[float, float]:
    import dask.array as dsa

    if isinstance(arr, dsa.Array):
        mean, std = dsa.compute(dsa.nanmean(arr), dsa.nanstd(arr))
    else:
        mean, std = np.nanmean(arr), np.nanstd(arr)
    if not np.isfinite(mean):
        raise InputDataError(
            "the SST is NaN everywhere; check the variable, its _FillValue and the region."
        )
    return float(mean), max(float(std), 0.1)


# -- stations ------------------------------------------------------------------


@dataclass
class StationData:
    ids: list[str]
    fy: np.ndarray  # fractional fine-grid row of each station (cell centres at integers)
    fx: np.ndarray
    values: np.ndarray  # (time, station) degC, NaN where no observation


def prepare_stations(
    stations: Any, data: TrainingData, columns: Mapping[str, Hashable] | None
) -> StationData:
    table = read_stations(stations, columns)
    first = data.low[-1][0]
    ocean = np.isfinite(np.asarray(first))
    table = drop_outside(table, data.coarse_lat, data.coarse_lon, data.times, ocean)
    ids, values = align_to_times(table, data.times)
    if not np.isfinite(values).any():
        raise StationsError("no station observation falls on the data's time steps.")
    positions = table.groupby("station")[["lat", "lon"]].first().loc[ids]
    fy = (positions["lat"].to_numpy() - data.fine_lat[0]) / (data.fine_lat[1] - data.fine_lat[0])
    fx = (positions["lon"].to_numpy() - data.fine_lon[0]) / (data.fine_lon[1] - data.fine_lon[0])
    return StationData(ids=ids, fy=fy, fx=fx, values=values)


# -- patches -------------------------------------------------------------------


@dataclass
class Batch:
    frames: np.ndarray  # (n, inputs*window, P, P) normalised
    target: np.ndarray  # (n, 1, P*f, P*f) normalised, NaN = land
    station_grid: np.ndarray  # (n, k, 2) grid_sample coordinates in [-1, 1]
    station_values: np.ndarray  # (n, k) normalised, NaN = none


class PatchSampler:
    """Cuts random patches (and the stations inside them) from the training record."""

    def __init__(
        self,
        data: TrainingData,
        window: int,
        patch: int,
        mean: float,
        std: float,
        stations: StationData | None,
    ) -> None:
        _, ny, nx = data.shape
        pool = data.pool
        self.patch = max(pool, min(patch, ny - ny % pool, nx - nx % pool))
        self.patch -= self.patch % pool
        if self.patch < 4:
            raise InputDataError(
                f"the grid ({ny} x {nx} low-resolution cells) is too small to train on; use "
                "at least 8 x 8 cells."
            )
        self.data, self.window, self.mean, self.std = data, window, mean, std
        self.stations = stations
        self.ny, self.nx = ny, nx

    def positions(
        self, rng: np.random.Generator, times: np.ndarray, n: int
    ) -> list[tuple[int, int, int]]:
        pool, p = self.data.pool, self.patch
        t = rng.choice(times, size=n)
        y0 = rng.integers(0, self.ny - p + 1, size=n)
        x0 = rng.integers(0, self.nx - p + 1, size=n)
        if self.stations is not None:  # half of the patches hold a station
            f = self.data.upsample / pool
            pick = rng.integers(0, len(self.stations.ids), size=n)
            jitter_y = rng.integers(1, p, size=n)
            jitter_x = rng.integers(1, p, size=n)
            sy = np.clip((self.stations.fy[pick] / f).astype(int) - jitter_y, 0, self.ny - p)
            sx = np.clip((self.stations.fx[pick] / f).astype(int) - jitter_x, 0, self.nx - p)
            half = rng.random(n) < 0.5
            y0, x0 = np.where(half, sy, y0), np.where(half, sx, x0)
        y0 -= y0 % pool
        x0 -= x0 % pool
        return [(int(a), int(b), int(c)) for a, b, c in zip(t, y0, x0, strict=True)]

    def load(self, positions: list[tuple[int, int, int]]) -> Batch:
        import dask

        data, w, p = self.data, self.window, self.patch
        up, pool = data.upsample, data.pool
        pf = p * up // pool
        lows, highs = [], []
        for t, y0, x0 in positions:
            steps = np.clip(np.arange(t - w + 1, t + 1), 0, None)
            lows.append([src[steps, y0 : y0 + p, x0 : x0 + p] for src in data.low])
            fy0, fx0 = y0 * up // pool, x0 * up // pool
            highs.append(data.high[t, fy0 : fy0 + pf, fx0 : fx0 + pf])
        lows, highs = dask.compute(lows, highs, scheduler="threads")
        frames = np.stack([np.concatenate(parts, axis=0) for parts in lows]).astype("float32")
        target = np.stack(highs)[:, None].astype("float32")
        frames = (frames - self.mean) / self.std
        target = (target - self.mean) / self.std
        grid, values = self._stations(positions, pf)
        return Batch(frames, target, grid, values)

    def _stations(
        self, positions: list[tuple[int, int, int]], pf: int
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(positions)
        st = self.stations
        if st is None:
            return np.zeros((n, 1, 2), "float32"), np.full((n, 1), np.nan, "float32")
        up, pool = self.data.upsample, self.data.pool
        grids, vals = [], []
        for t, y0, x0 in positions:
            ly = st.fy - y0 * up // pool
            lx = st.fx - x0 * up // pool
            obs = st.values[t]
            ok = (ly >= 0) & (ly <= pf - 1) & (lx >= 0) & (lx <= pf - 1) & np.isfinite(obs)
            # grid_sample with align_corners=False: pixel centre i sits at (2i + 1) / n - 1
            grids.append(np.stack([(2 * lx[ok] + 1) / pf - 1, (2 * ly[ok] + 1) / pf - 1], -1))
            vals.append((obs[ok] - self.mean) / self.std)
        k = max(1, max(len(v) for v in vals))
        grid = np.zeros((n, k, 2), "float32")
        values = np.full((n, k), np.nan, "float32")
        for i, (g, v) in enumerate(zip(grids, vals, strict=True)):
            grid[i, : len(v)] = g
            values[i, : len(v)] = v
        return grid, values


# -- checkpoints ---------------------------------------------------------------


def _flatten_optimizer(prefix: str, state: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    tensors: dict[str, Any] = {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            tensors[f"{prefix}.{index}.{name}"] = (
                value.detach().cpu().reshape(-1) if value.ndim == 0 else value.detach().cpu()
            )
    return tensors, state["param_groups"]


def _unflatten_optimizer(
    prefix: str, tensors: Mapping[str, Any], groups: Any, reference: dict[str, Any]
) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith(prefix + "."):
            continue
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value.reshape(()) if name == "step" else value
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    directory: Path,
    step: int,
    fingerprint: str,
    nets: Mapping[str, Any],
    optimizers: Mapping[str, Any],
    history: list[dict[str, Any]],
) -> None:
    """Write the training state as safetensors plus JSON (no pickle), atomically."""
    from safetensors.torch import save

    tensors: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            tensors[f"{name}/{key}"] = value.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        flat, groups[name] = _flatten_optimizer(name, opt.state_dict())
        tensors.update({k: v.contiguous() for k, v in flat.items()})
    blob = save(tensors)
    # one tensors file per step, named in the JSON: a kill between the two writes leaves the
    # previous JSON pointing at the previous (still present) tensors, never at a mismatch
    name = _tensors_name(step)
    write_atomic(directory / name, blob)
    state = {
        "step": step,
        "fingerprint": fingerprint,
        "tensors": name,
        "tensors_sha256": hashlib.sha256(blob).hexdigest(),
        "param_groups": groups,
        "history": history,
        "xsstsr_version": __version__,
    }
    write_atomic(directory / CHECKPOINT_STATE, json.dumps(state, allow_nan=True).encode())
    for old in directory.glob("xsstsr-checkpoint*.safetensors"):
        if old.name != name:
            old.unlink(missing_ok=True)


def _tensors_name(step: int) -> str:
    return CHECKPOINT_TENSORS.replace(".safetensors", f"-{step:09d}.safetensors")


def load_checkpoint(
    directory: Path, fingerprint: str, nets: Mapping[str, Any], optimizers: Mapping[str, Any]
) -> tuple[int, list[dict[str, Any]]] | None:
    """Restore the training state; None when there is no checkpoint yet."""
    from safetensors.torch import load

    state_path = directory / CHECKPOINT_STATE
    if not state_path.is_file():
        return None
    try:
        state = json.loads(state_path.read_text())
        name = state.get("tensors", CHECKPOINT_TENSORS) if isinstance(state, dict) else None
        if (
            not isinstance(name, str)
            or Path(name).name != name
            or not name.startswith("xsstsr-checkpoint")
        ):
            raise OSError(f"the record names no valid tensors file ({name!r})")
        blob = (directory / name).read_bytes()
    except (OSError, json.JSONDecodeError) as err:
        raise TrainingError(
            f"checkpoint in {directory} is unreadable ({err}); delete it to start again."
        ) from err
    if hashlib.sha256(blob).hexdigest() != state.get("tensors_sha256"):
        raise TrainingError(
            f"checkpoint tensors in {directory} do not match their record; "
            "the checkpoint is corrupt: delete it to start again."
        )
    if state.get("fingerprint") != fingerprint:
        raise TrainingError(
            f"the checkpoint in {directory} was made by a different configuration or data; "
            "use another checkpoint_dir, or the same arguments as the first run."
        )
    try:
        tensors = load(blob)
        for name, net in nets.items():
            prefix = f"{name}/"
            net.load_state_dict(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
        for name, opt in optimizers.items():
            opt.load_state_dict(
                _unflatten_optimizer(name, tensors, state["param_groups"][name], opt.state_dict())
            )
        return int(state["step"]), list(state["history"])
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        # a record that hashes right but lacks a field: written by another xsstsr version
        raise TrainingError(
            f"checkpoint in {directory} cannot be restored ({type(err).__name__}: {err}); it "
            "may come from another xsstsr version: delete it to start again."
        ) from err


# -- the loop ------------------------------------------------------------------


def _distributed(device: str) -> tuple[int, int, str]:
    """Rank, world size and device under ``torchrun`` (or an initialised process group).

    Started by torchrun (WORLD_SIZE > 1), the process group is initialised here: gloo on
    the CPU, nccl on GPUs with one GPU per process (LOCAL_RANK).
    """
    import torch
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1, device
    if not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return 0, 1, device
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
        device = f"cuda:{local}"
        torch.cuda.set_device(device)
    return rank, world, device


def _average_gradients(module: Any, world: int) -> None:
    """Mean of the gradients over processes (what DDP does, by hand for the critic)."""
    import torch.distributed as dist

    for param in module.parameters():
        if param.grad is not None:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad /= world


def _check_positive(name: str, value: Any, integer: bool = True) -> None:
    kind = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if (
        isinstance(value, bool)
        or not isinstance(value, kind)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise InputDataError(
            f"{name} must be a positive {'integer' if integer else 'finite number'}, got "
            f"{value!r}; pass e.g. {name}={1 if integer else 1e-4}."
        )


def fit(
    obj: xr.Dataset | xr.DataArray,
    stations: pd.DataFrame | xr.Dataset | None = None,
    *,
    target: xr.Dataset | xr.DataArray | None = None,
    sources: Sequence[xr.DataArray] | None = None,
    loss: str = "mse",
    r: float | None = None,
    a: float | None = None,
    s: float | None = None,
    factor: float | None = None,
    window: int = 3,
    epochs: int = 10,
    steps_per_epoch: int | None = None,
    batch_size: int = 16,
    patch_size: int = 24,
    lr: float = 1e-4,
    lr_schedule: str = "constant",
    n_critic: int = 5,
    gp_weight: float = 10.0,
    adv_weight: float = 1e-3,
    pixel_weight: float = 1.0,
    station_weight: float = 1.0,
    validation: float = 0.1,
    seed: int = 0,
    device: str = "auto",
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int = 100,
    resume: bool = False,
    progress: bool = True,
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
    station_columns: Mapping[str, Hashable] | None = None,
    name: str | None = None,
    architecture: Mapping[str, Any] | None = None,
) -> Model:
    """Train a generator with WGAN-GP, a pixel loss and an in-situ station loss.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        (time, lat, lon) SST. Without ``target`` it is the high-resolution truth and the
        inputs are its area averages by ``factor``; with ``target`` it is the input.
    stations : pandas.DataFrame or xarray.Dataset, optional
        In-situ series (columns ``station, time, lat, lon, sst``; see
        :func:`xsstsr.stations.read_stations`). The generator's output, sampled bilinearly
        at the stations and matching times, is pulled towards them.
    target : xarray.Dataset or xarray.DataArray, optional
        High-resolution truth on a grid ``factor`` times finer than ``obj``.
    sources : list of xarray.DataArray, optional
        Extra low-resolution inputs (fusion), regridded onto the input grid.
    loss : {"mse", "gumbel", "frechet"}
        Point-wise loss for the pixel and station terms; ``r`` for Gumbel, ``a`` and ``s``
        for Fréchet (see :mod:`xsstsr.losses`).
    factor : float, optional
        Downscaling factor: 4 by default without ``target``, else from the grids.
    window : int
        Consecutive time steps the generator sees (the latest is the target time).
    epochs, steps_per_epoch, batch_size, patch_size : int
        Length of training, patches per step, patch side in low-resolution cells.
    lr, n_critic, gp_weight : float, int, float
        Adam learning rate (betas 0.0, 0.9), critic steps per generator step, lambda.
    lr_schedule : {"constant", "cosine"}
        ``"cosine"`` decays both learning rates to a tenth of ``lr`` over the run.
    adv_weight, pixel_weight, station_weight : float
        Weights of the adversarial, pixel and station terms of the generator loss.
    validation : float
        Fraction of the last time steps held out to report validation RMSE each epoch.
    seed : int
        Seeds initial weights, patches and the gradient penalty: same seed, same model.
    device : {"auto", "cpu", "cuda"}
    checkpoint_dir : path, optional
        Where to write checkpoints every ``checkpoint_every`` steps; with ``resume=True``
        training continues from the last one and ends at the same weights.
    progress : bool
        Show a tqdm progress bar with the current losses.

    Returns
    -------
    Model
        With ``.history`` (per-step losses, per-epoch validation RMSE) and ``.save()``.

    Examples
    --------
    >>> truth = xsstsr.datasets.synthetic_sst(128, 128, periods=64)
    >>> model = truth.sstsr.fit(loss="gumbel", r=1.1, epochs=1, steps_per_epoch=2,
    ...                         n_critic=1, progress=False)
    >>> model.factor
    4.0
    """
    import torch

    from .losses import critic_loss, make_loss_config, pointwise_loss
    from .networks import Critic, build_generator
    from .tiling import resolve_device

    config = make_loss_config(loss, r=r, a=a, s=s)
    for key, value in (
        ("window", window),
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("patch_size", patch_size),
        ("n_critic", n_critic),
        ("checkpoint_every", checkpoint_every),
    ):
        _check_positive(key, value)
    if steps_per_epoch is not None:
        _check_positive("steps_per_epoch", steps_per_epoch)
    for name, number in (("lr", lr), ("gp_weight", gp_weight)):
        _check_positive(name, number, integer=False)
    if (
        isinstance(validation, bool)
        or not isinstance(validation, (int, float, np.integer, np.floating))
        or not 0 <= validation < 1
    ):
        raise InputDataError(
            f"validation must be a fraction in [0, 1), got {validation!r}; pass e.g. "
            "validation=0.1 (or 0 to validate on the training steps)."
        )
    device = resolve_device(device)
    rank, world, device = _distributed(device)
    if batch_size % world:
        raise ValueError(
            f"batch_size={batch_size} is the global batch and must be divisible by the "
            f"{world} processes of the data-parallel run."
        )
    local = batch_size // world

    data = prepare_data(
        obj, target=target, sources=sources, factor=factor, variable=variable, lat=lat, lon=lon
    )
    nt = data.shape[0]
    if window > nt:
        raise InputDataError(
            f"window={window} is longer than the record ({nt} time steps); use window<={nt}."
        )
    mean, std = _nan_stats(data.low[-1])
    station_data = (
        prepare_stations(stations, data, station_columns) if stations is not None else None
    )
    sampler = PatchSampler(data, window, patch_size, mean, std, station_data)
    n_val = round(nt * validation)
    train_times = np.arange(nt - n_val) if nt - n_val >= 1 else np.arange(nt)
    val_times = np.arange(nt - n_val, nt) if n_val else train_times
    if steps_per_epoch is None:
        per_field = (data.shape[1] // sampler.patch) * (data.shape[2] // sampler.patch)
        steps_per_epoch = int(
            min(200, max(1, math.ceil(len(train_times) * per_field / batch_size)))
        )
    total = epochs * steps_per_epoch

    frac = Fraction(data.upsample, data.pool)
    training_info = {
        "mode": data.mode,
        "loss": config.to_dict(),
        "epochs": epochs,
        "steps": total,
        "batch_size": batch_size,
        "patch_size": sampler.patch,
        "lr": lr,
        "n_critic": n_critic,
        "lr_schedule": lr_schedule,
        "gp_weight": gp_weight,
        "adv_weight": adv_weight,
        "pixel_weight": pixel_weight,
        "station_weight": station_weight,
        "seed": seed,
        "validation": validation,
        "shape": list(data.shape),
        "period": [str(data.times[0]), str(data.times[-1])],
        "n_stations": 0 if station_data is None else len(station_data.ids),
    }
    meta = new_metadata(
        name=name or f"sst-x{float(frac):g}-{config.describe()}",
        upsample=data.upsample,
        pool=data.pool,
        window=window,
        inputs=data.inputs,
        mean=mean,
        std=std,
        architecture=architecture,
        training=training_info,
    )
    fingerprint = hashlib.sha256(
        json.dumps(
            {k: v for k, v in meta.items() if k != "xsstsr_version"}, sort_keys=True, default=str
        ).encode()
    ).hexdigest()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = build_generator(meta).to(device)
        critic = Critic().to(device)
    # Data-parallel: the generator is wrapped in DistributedDataParallel; the critic's
    # gradients are averaged by hand because DDP does not support the double backward of
    # the gradient penalty.
    gen_step: Any = gen
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        gen_step = DistributedDataParallel(gen)
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.0, 0.9))
    nets = {"generator": gen, "critic": critic}
    optimizers = {"opt_generator": opt_g, "opt_critic": opt_d}

    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    start, history = 0, list[dict[str, Any]]()
    if ckpt is not None and resume:
        restored = load_checkpoint(ckpt, fingerprint, nets, optimizers)
        if restored is not None:
            start, history = restored
    elif ckpt is not None and (ckpt / CHECKPOINT_STATE).exists():
        raise TrainingError(
            f"{ckpt} already holds a checkpoint; pass resume=True to continue it, or use an "
            "empty checkpoint_dir."
        )

    def tensors(batch: Batch) -> tuple[Any, ...]:
        as_t = [
            torch.from_numpy(x).to(device)
            for x in (batch.frames, batch.target, batch.station_grid, batch.station_values)
        ]
        return tuple(as_t)

    def conditioned(frames: Any, high: Any) -> tuple[Any, Any, Any]:
        valid = torch.isfinite(high)
        m = valid.float()
        cond = torch.cat([gen.upsampled_input(frames) * m, m], dim=1)
        return valid, m, cond

    val_positions = sampler.positions(
        np.random.default_rng([seed, 2**31 - 1]), val_times, min(32, max(4, 2 * batch_size))
    )
    val_batch = sampler.load(val_positions)

    def validate() -> dict[str, float]:
        frames, high, _, _ = tensors(val_batch)
        with torch.no_grad():
            pred = gen(frames)
            base = gen.upsampled_input(frames)
        valid = torch.isfinite(high)
        err = ((pred - high)[valid] * std).pow(2).mean().sqrt()
        err_base = ((base - high)[valid] * std).pow(2).mean().sqrt()
        return {"val_rmse": float(err), "val_rmse_bicubic": float(err_base)}

    from tqdm.auto import tqdm

    bar = tqdm(
        total=total,
        initial=start,
        disable=not progress or rank != 0,
        desc="xsstsr fit",
        unit="step",
        dynamic_ncols=True,
    )
    started = _time.perf_counter()
    gen.train()
    critic.train()
    try:
        for step in range(start, total):
            rng = np.random.default_rng([seed, step])
            if lr_schedule == "cosine":  # a function of the step only, so resuming is exact
                rate = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / total)))
                for opt in (opt_g, opt_d):
                    for group in opt.param_groups:
                        group["lr"] = rate
            gp_rng = torch.Generator().manual_seed(int(rng.integers(2**62)))
            positions = sampler.positions(rng, train_times, (n_critic + 1) * batch_size)
            # each process loads its share of every group of the global batch
            share = slice(rank * local, (rank + 1) * local)
            positions = [
                p
                for k in range(n_critic + 1)
                for p in positions[k * batch_size : (k + 1) * batch_size][share]
            ]
            batch = sampler.load(positions)
            frames, high, s_grid, s_vals = tensors(batch)
            stats: dict[str, float] = {}
            for k in range(n_critic):
                sl = slice(k * local, (k + 1) * local)
                with torch.no_grad():
                    fake = gen(frames[sl])
                valid, m, cond = conditioned(frames[sl], high[sl])
                real = torch.where(valid, high[sl], torch.zeros_like(high[sl]))
                eps = torch.rand(batch_size, generator=gp_rng)[share]
                loss_d, stats = critic_loss(critic, real, fake * m, cond, gp_weight, eps=eps)
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                if world > 1:
                    _average_gradients(critic, world)
                opt_d.step()
            sl = slice(n_critic * local, (n_critic + 1) * local)
            fake = gen_step(frames[sl])
            valid, m, cond = conditioned(frames[sl], high[sl])
            adv = -critic(fake * m, cond).mean()
            pix = pointwise_loss(fake, high[sl], config)
            sta = fake.sum() * 0
            if station_data is not None:
                sampled = torch.nn.functional.grid_sample(
                    fake, s_grid[sl][:, :, None, :], mode="bilinear", align_corners=False
                )[:, 0, :, 0]
                sta = pointwise_loss(sampled, s_vals[sl], config)
            loss_g = adv_weight * adv + pixel_weight * pix + station_weight * sta
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            record = {
                "step": step + 1,
                "epoch": step // steps_per_epoch + 1,
                "critic": stats.get("critic", math.nan),
                "wasserstein": stats.get("wasserstein", math.nan),
                "gp": stats.get("gp", math.nan),
                "generator": float(loss_g.detach()),
                "adversarial": float(adv.detach()),
                "pixel": float(pix.detach()),
                "station": float(sta.detach()),
            }
            if (step + 1) % steps_per_epoch == 0 or step + 1 == total:
                gen.eval()
                record.update(validate())
                gen.train()
            history.append(record)
            bar.update(1)
            bar.set_postfix(
                g=f"{record['pixel']:.4f}",
                w=f"{record['wasserstein']:.3f}",
                val=f"{record.get('val_rmse', math.nan):.3f}",
                refresh=False,
            )
            if (
                ckpt is not None
                and rank == 0
                and ((step + 1) % checkpoint_every == 0 or step + 1 == total)
            ):
                save_checkpoint(ckpt, step + 1, fingerprint, nets, optimizers, history)
    finally:
        bar.close()
    wall = _time.perf_counter() - started
    gen.eval()
    meta["training"]["wall_time_s"] = round(wall, 2)
    meta["training"]["device"] = device
    meta["training"]["processes"] = world
    meta["training"]["torch_version"] = torch.__version__
    state = {k: v.detach().cpu().numpy().copy() for k, v in gen.state_dict().items()}
    frame = pd.DataFrame(history)
    return Model(state, meta, history=frame)
