"""The method's loss study: the nine content losses, trained and scored on the same data.

Every configuration (MSE; Gumbel r = 1.0, 1.1, 1.5, 2.0; Fréchet (a, s) = (10, 1.7),
(13, 1.7), (15, 1.7), (15, 2.0)) is fitted with the same seed, steps and in-situ stations on
the same synthetic training record. Each model then downscales a held-out record it never
saw (another seed, region and period, area-averaged by the factor), and is scored against
that record's truth and its own stations:

* RMSE over all ocean cells;
* RMSE on the warmest 1 % of truth cells (the extremes the asymmetric losses target);
* station RMSE and bias (model minus station, bilinear at the station, nearest time).

A bicubic row (:func:`xsstsr.evaluation.bicubic_baseline`) gives the floor to beat.

Usage::

    PYTHONPATH=. python benchmarks/loss_study.py                    # the full study
    PYTHONPATH=. python benchmarks/loss_study.py --quick            # a smoke test (seconds)
    PYTHONPATH=. python benchmarks/loss_study.py --out docs/loss_study.md
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import xsstsr
from xsstsr.datasets import coarsen_truth, synthetic_sst, synthetic_stations
from xsstsr.evaluation import bicubic_baseline
from xsstsr.losses import METHOD_CONFIGS, LossConfig
from xsstsr.stations import read_stations, sample_field


@dataclass(frozen=True)
class Setup:
    """Sizes of the training and held-out records and of the training run."""

    nlat: int
    nlon: int
    periods: int
    test_periods: int
    n_stations: int
    batch_size: int
    patch_size: int
    n_critic: int


FULL = Setup(
    nlat=128,
    nlon=128,
    periods=64,
    test_periods=32,
    n_stations=24,
    batch_size=16,
    patch_size=16,
    n_critic=5,
)
QUICK = Setup(
    nlat=32,
    nlon=32,
    periods=8,
    test_periods=6,
    n_stations=6,
    batch_size=4,
    patch_size=8,
    n_critic=1,
)

# The training record and the held-out one share nothing: seed, box and season all differ.
TRAIN_REGION = {"lat_range": (30.0, 42.0), "lon_range": (120.0, 132.0), "start": "2020-01-01"}
TEST_REGION = {"lat_range": (24.0, 36.0), "lon_range": (136.0, 148.0), "start": "2021-07-01"}
TEST_SEED_OFFSET = 1000
STATION_NOISE = 0.1  # K


def records(setup: Setup, seed: int, factor: int) -> dict[str, Any]:
    """Training truth and stations; held-out truth, its coarse input and its stations."""
    train = synthetic_sst(setup.nlat, setup.nlon, periods=setup.periods, seed=seed, **TRAIN_REGION)
    test_seed = seed + TEST_SEED_OFFSET
    test = synthetic_sst(
        setup.nlat, setup.nlon, periods=setup.test_periods, seed=test_seed, **TEST_REGION
    )
    return {
        "train": train,
        "train_stations": synthetic_stations(
            train, n=setup.n_stations, noise=STATION_NOISE, seed=seed
        ),
        "test": test,
        "test_coarse": coarsen_truth(test, factor),
        "test_stations": synthetic_stations(
            test, n=setup.n_stations, noise=STATION_NOISE, seed=test_seed
        ),
    }


def scores(pred: xr.DataArray, truth: xr.DataArray, stations: pd.DataFrame) -> dict[str, float]:
    """RMSE overall and on the warmest 1 % of truth cells; station RMSE and bias (K)."""
    p = np.asarray(pred.transpose(*truth.dims).values, dtype="float64")
    t = np.asarray(truth.values, dtype="float64")
    both = np.isfinite(p) & np.isfinite(t)
    err = (p - t)[both]
    warm = t[both] >= np.quantile(t[both], 0.99)
    table = read_stations(stations)
    sampled = sample_field(pred, table, "lat", "lon", "time")
    s_err = (sampled["model"] - sampled["sst"]).to_numpy(dtype="float64")
    s_err = s_err[np.isfinite(s_err)]
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "rmse_warm1": float(np.sqrt(np.mean(err[warm] ** 2))),
        "station_rmse": float(np.sqrt(np.mean(s_err**2))) if s_err.size else math.nan,
        "station_bias": float(np.mean(s_err)) if s_err.size else math.nan,
    }


def fit_config(
    config: LossConfig, data: dict[str, Any], setup: Setup, args: argparse.Namespace
) -> xsstsr.Model:
    params = {k: v for k, v in config.to_dict().items() if k != "name"}
    steps_per_epoch = max(1, math.ceil(args.steps / args.epochs))
    with warnings.catch_warnings():
        # stations on coarse land cells are dropped with a warning: the same for every loss
        warnings.filterwarnings("ignore", message="dropped", category=UserWarning)
        return xsstsr.fit(
            data["train"],
            data["train_stations"],
            loss=config.name,
            **params,
            factor=args.factor,
            epochs=args.epochs,
            steps_per_epoch=steps_per_epoch,
            batch_size=setup.batch_size,
            patch_size=setup.patch_size,
            n_critic=setup.n_critic,
            lr=args.lr,
            adv_weight=args.adv_weight,
            station_weight=args.station_weight,
            seed=args.seed,
            device=args.device,
            progress=args.progress,
        )


def make_setup(args: argparse.Namespace) -> Setup:
    setup = QUICK if args.quick else FULL
    overrides = {
        key: getattr(args, key)
        for key in ("batch_size", "patch_size", "n_critic")
        if getattr(args, key) is not None
    }
    return replace(setup, **overrides)


def run(args: argparse.Namespace) -> pd.DataFrame:
    setup = make_setup(args)
    if args.quick:
        args.steps = min(args.steps, 2)
        args.epochs = 1
    data = records(setup, args.seed, args.factor)
    truth = data["test"].sst
    coarse = data["test_coarse"]
    rows: list[dict[str, Any]] = []

    baseline = bicubic_baseline(coarse.sst, factor=args.factor)
    rows.append(
        {"loss": "bicubic", **scores(baseline, truth, data["test_stations"]), "train_s": math.nan}
    )
    configs = (
        METHOD_CONFIGS
        if not args.only
        else [c for c in METHOD_CONFIGS if any(key in c.describe() for key in args.only)]
    )
    for config in configs:
        started = time.perf_counter()
        model = fit_config(config, data, setup, args)
        elapsed = time.perf_counter() - started
        pred = xsstsr.downscale(coarse, model=model, device=args.device).sst
        row = {
            "loss": config.describe(),
            **scores(pred, truth, data["test_stations"]),
            "train_s": elapsed,
        }
        rows.append(row)
        print(
            f"{row['loss']:<22} rmse={row['rmse']:.4f} warm1%={row['rmse_warm1']:.4f} "
            f"stations={row['station_rmse']:.4f} bias={row['station_bias']:+.4f} "
            f"({elapsed:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame, args: argparse.Namespace) -> str:
    setup = make_setup(args)
    header = (
        "| loss | RMSE (K) | RMSE warmest 1% (K) | station RMSE (K) | station bias (K) "
        "| train (s) |\n|---|---:|---:|---:|---:|---:|"
    )
    best = {
        col: frame.loc[frame["loss"] != "bicubic", col].min()
        for col in ("rmse", "rmse_warm1", "station_rmse")
    }

    def cell(row: pd.Series, col: str) -> str:
        value = row[col]
        if not np.isfinite(value):
            return "-"
        text = f"{value:.3f}" if col != "station_bias" else f"{value:+.3f}"
        return f"**{text}**" if col in best and value == best[col] else text

    lines = [header]
    for _, row in frame.iterrows():
        train = "-" if not np.isfinite(row["train_s"]) else f"{row['train_s']:.1f}"
        cells = [cell(row, c) for c in ("rmse", "rmse_warm1", "station_rmse", "station_bias")]
        lines.append(f"| {row['loss']} | " + " | ".join(cells) + f" | {train} |")
    steps = args.steps if not args.quick else min(args.steps, 2)
    settings = (
        f"x{args.factor}, {steps} steps ({args.epochs} epoch(s)), batch {setup.batch_size}, "
        f"patch {setup.patch_size}, n_critic {setup.n_critic}, lr {args.lr:g}, "
        f"adv_weight {args.adv_weight:g}, station_weight {args.station_weight:g}, "
        f"seed {args.seed}; training record synthetic_sst({setup.nlat}, {setup.nlon}, "
        f"periods={setup.periods}) over {TRAIN_REGION}, {setup.n_stations} stations "
        f"(noise {STATION_NOISE} K); held-out record seed+{TEST_SEED_OFFSET}, "
        f"periods={setup.test_periods}, over {TEST_REGION}, its own {setup.n_stations} stations."
    )
    quick = " (**--quick smoke run: numbers are meaningless**)" if args.quick else ""
    return (
        f"# Loss study{quick}\n\n"
        "Generated by `benchmarks/loss_study.py` with xsstsr "
        f"{xsstsr.__version__}.\n\nSettings: {settings}\n\nBold: best trained model per column. "
        "Station bias is model minus station.\n\n" + "\n".join(lines) + "\n"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per loss")
    parser.add_argument("--epochs", type=int, default=3, help="validation points per fit")
    parser.add_argument("--factor", type=int, default=4, help="integer downscaling factor")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--adv-weight", type=float, default=1e-3)
    parser.add_argument("--station-weight", type=float, default=1.0)
    parser.add_argument("--device", default="auto", help='"auto", "cpu" or "cuda"')
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 (quick: 4)")
    parser.add_argument("--patch-size", type=int, default=None, help="default: 16 (quick: 8)")
    parser.add_argument("--n-critic", type=int, default=None, help="default: 5 (quick: 1)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="tiny data and 2 steps: smoke test")
    parser.add_argument(
        "--only", nargs="*", default=None, help="restrict to losses whose label contains these"
    )
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    parser.add_argument("--progress", action="store_true", help="show tqdm bars")
    args = parser.parse_args(argv)
    for name in ("steps", "epochs", "factor"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    frame = run(args)
    text = markdown(frame, args)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
