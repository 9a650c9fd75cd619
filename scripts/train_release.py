"""Train the released generators (sst-x2, sst-x2.5, sst-x4, sst-x5) and update the registry.

Anyone can rerun it; it is deterministic on the CPU for a given torch build::

    python scripts/train_release.py                    # all four factors
    python scripts/train_release.py --factors 4 --steps 300   # a quick look

Training data: synthetic SST (``xsstsr.datasets.synthetic_sst``) at 0.25 / factor degrees
(so the inputs are 0.25-degree area averages, ERA5's grid), from 24 seeds, each its own
16 x 16 degree box (drawn from the seed) and 16-day period, stacked along time. Every seed
has its own eddy modes, front and coastline: with a few long records instead, the model
learned those realisations by heart and got worse on new ones as training went on. Held-out
data for the model card uses other seeds, boxes and years (see ``scripts/model_card.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import xarray as xr

import xsstsr
from xsstsr.datasets import coarsen_truth, synthetic_sst

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "weights"
COARSE_STEP = 0.25
BOX = 16.0  # degrees
TRAIN_SEEDS = tuple(range(101, 125))
DAYS = 16

SETTINGS = {
    "loss": "mse",
    "window": 3,
    "batch_size": 16,
    "patch_size": 24,
    "lr": 3e-4,
    "lr_schedule": "cosine",
    "n_critic": 2,
    "gp_weight": 10.0,
    "adv_weight": 1e-5,
    "validation": 0.1,
    "seed": 0,
}


def training_truth(factor: float) -> xr.Dataset:
    """24 synthetic boxes at 0.25/factor degrees, relabelled onto one grid and stacked."""
    n = round(BOX / (COARSE_STEP / factor))
    parts = []
    for i, seed in enumerate(TRAIN_SEEDS):
        rng = np.random.default_rng(seed)
        lat0 = float(rng.uniform(-50, 50 - BOX))
        lon0 = float(rng.uniform(0, 360 - BOX))
        ds = synthetic_sst(
            n,
            n,
            lat_range=(lat0, lat0 + BOX),
            lon_range=(lon0, lon0 + BOX),
            start=f"{2001 + i}-{1 + (5 * i) % 12:02d}-01",
            periods=DAYS,
            seed=seed,
        )
        if parts:  # one grid for all: fit needs a single (time, lat, lon) array
            ds = ds.assign_coords(lat=parts[0].lat, lon=parts[0].lon)
        parts.append(ds)
    return xr.concat(parts, dim="time")


def train(factor: float, steps: int, epochs: int) -> Path:
    truth = training_truth(factor)
    started = time.perf_counter()
    model = xsstsr.fit(
        truth,
        factor=factor,
        epochs=epochs,
        steps_per_epoch=max(1, steps // epochs),
        name=f"sst-x{factor:g}",
        progress=True,
        device="cpu",
        **SETTINGS,
    )
    wall = time.perf_counter() - started
    meta = model.metadata
    meta["training"].update(
        data=f"synthetic_sst, seeds {TRAIN_SEEDS[0]}-{TRAIN_SEEDS[-1]}, {len(TRAIN_SEEDS)} "
        f"boxes of {BOX:g} deg, {DAYS} days each, truth at {COARSE_STEP / factor:g} deg, "
        f"inputs its {COARSE_STEP:g}-deg area averages",
        script="scripts/train_release.py",
        hardware=f"{platform.machine()} CPU, {platform.processor() or 'unknown processor'}",
        wall_time_s=round(wall, 1),
    )
    released = xsstsr.Model(model.state, meta, history=model.history)
    # float16 storage halves the files; measure what it costs on a held-out field
    half = xsstsr.Model.from_bytes(released.to_bytes("float16"))
    probe = coarsen_truth(
        synthetic_sst(
            round(8 / (COARSE_STEP / factor)),
            round(8 / (COARSE_STEP / factor)),
            lat_range=(30, 38),
            lon_range=(150, 158),
            periods=6,
            start="2040-01-01",
            seed=4242,
        ),
        factor,
    )
    full_out = probe.sstsr.downscale(model=released, device="cpu")["sst"].values
    half_out = probe.sstsr.downscale(model=half, device="cpu")["sst"].values
    meta["storage"] = {
        "precision": "float16",
        "max_abs_error_K": float(np.nanmax(np.abs(full_out - half_out))),
    }
    released = xsstsr.Model(model.state, meta, history=model.history)
    path = WEIGHTS / f"sst-x{factor:g}.safetensors"
    released.save(path, precision="float16")
    last = model.history.dropna(subset=["val_rmse"]).iloc[-1]
    print(
        json.dumps(
            {
                "model": path.name,
                "wall_s": round(wall, 1),
                "val_rmse": last["val_rmse"],
                "val_rmse_bicubic": last["val_rmse_bicubic"],
            }
        )
    )
    return path


def write_registry() -> None:
    lines = ["# file sha256 (xsstsr released generators; checked on every load)"]
    for path in sorted(WEIGHTS.glob("*.safetensors")):
        lines.append(f"{path.name} {hashlib.sha256(path.read_bytes()).hexdigest()}")
    (WEIGHTS / "registry.txt").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=float, nargs="+", default=[4.0, 5.0, 2.5, 2.0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()

    for factor in args.factors:
        train(factor, args.steps, args.epochs)
        write_registry()


if __name__ == "__main__":
    main()
