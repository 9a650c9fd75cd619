"""Training study: do ``fit()``'s defaults, and each loss at its default scale, beat
interpolation on data the model never trained on?

Each record is split into a training part and a held-out part (another region, other
months, or another synthetic world); ``fit`` sees only the training part (and holds out
its own validation time blocks inside it). The fitted model then downscales the held-out
part's area averages, scored against its truth beside bicubic and nearest on the same
cells: RMSE, bias, RMSE on the warmest 1 % of truth cells, and station RMSE where the
record has stations.

Records:

* ``sample``: the bundled sample (1/16 degree truth, x4), days 1-11 to fit, 13-16 held out;
* ``heatwave``: synthetic boxes with marine heatwaves, another seed, box and season held out;
* ``coads``: NOAA COADS monthly climatology (2 degrees, x4), fit on 0-180 E, held out 180-360 E;
* ``coads-few``: four months of the same training region (fine-tuning against scratch);
* ``woa``: World Ocean Atlas surface temperature (2 degrees, x4), the same regional split;
* ``str``: NCL's STR SST climatology (2 degrees, x4), fit on January-August, held out
  September-December.

The real records come from Debian's ``ferret-datasets`` (set ``XSSTSR_FERRET_DIR``) and
``libncarg-data`` (set ``XSSTSR_NCARG_DIR`` to its ``share/ncarg/data/cdf``); records whose
files are missing are skipped with a note.

Usage::

    python benchmarks/training_study.py --records sample heatwave --configs defaults
    python benchmarks/training_study.py --configs losses --json losses.json
    python benchmarks/training_study.py --configs '{"adv_weight": 0.0}' --records coads
    python benchmarks/training_study.py --configs released   # the released model, no fit
    python benchmarks/training_study.py --configs '{"no_fit": true, "model": "new.safetensors"}'
    python benchmarks/training_study.py --configs linear     # a fitted linear filter, no network
    python benchmarks/training_study.py --configs '{"self_ensemble": true}'  # downscale's option
    python benchmarks/training_study.py --quick        # seconds: a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import xsstsr
from xsstsr.datasets import synthetic_sst, synthetic_stations
from xsstsr.evaluation import bicubic_baseline, nearest_baseline
from xsstsr.grid import coarsen_truth
from xsstsr.nn import METHOD_CONFIGS
from xsstsr.stations import read_stations, sample_field

FACTOR = 4


# -- records -------------------------------------------------------------------------------


def _crop(ds: xr.Dataset, factor: int = FACTOR) -> xr.Dataset:
    """Crop lat/lon to multiples of the factor (fit's area averages need whole cells)."""
    return ds.isel(
        lat=slice(0, ds.sizes["lat"] - ds.sizes["lat"] % factor),
        lon=slice(0, ds.sizes["lon"] - ds.sizes["lon"] % factor),
    )


def record_sample() -> dict[str, Any]:
    truth = xsstsr.datasets.open_sample("truth")
    stations = xsstsr.datasets.open_sample_stations()
    return {
        "train": truth.isel(time=slice(0, 11)),
        "test": truth,
        "score_times": truth.time.values[12:],
        "train_stations": stations[stations.time < truth.time.values[11]],
        "test_stations": stations[stations.time >= truth.time.values[12]],
        "what": "bundled sample, 128 x 128 at 1/16 deg; days 1-11 fit, 13-16 held out",
    }


def record_heatwave(quick: bool = False) -> dict[str, Any]:
    n, periods = (32, 8) if quick else (96, 40)
    train = synthetic_sst(
        n, n, periods=periods, seed=11, lat_range=(30, 42), lon_range=(125, 137),
        start="2020-06-01",
    )  # fmt: skip
    test = synthetic_sst(
        n, n, periods=max(6, periods // 3), seed=12, lat_range=(20, 32), lon_range=(140, 152),
        start="2021-08-01",
    )  # fmt: skip
    return {
        "train": train,
        "test": test,
        "score_times": test.time.values,
        "train_stations": synthetic_stations(train, n=16, noise=0.1, seed=11),
        "test_stations": synthetic_stations(test, n=16, noise=0.1, seed=12),
        "what": f"synthetic_sst {n} x {n} boxes with heatwaves, {periods} days; held out: "
        "another seed, box and season",
    }


def _ferret(name: str) -> Path | None:
    for base in (os.environ.get("XSSTSR_FERRET_DIR"), "/usr/share/ferret-vis/data"):
        if base and (Path(base) / name).is_file():
            return Path(base) / name
    return None


def _regional(ds: xr.Dataset, what: str) -> dict[str, Any]:
    ds = _crop(ds.sortby("lat"))
    west = ds.sel(lon=slice(0, 180))
    east = ds.sel(lon=slice(180, 360))
    return {
        "train": _crop(west),
        "test": _crop(east),
        "score_times": east.time.values,
        "train_stations": None,
        "test_stations": None,
        "what": what,
    }


def record_coads() -> dict[str, Any] | None:
    if _ferret("coads_climatology.cdf") is None:
        return None
    ds = xsstsr.datasets.open_coads_sst()[["sst"]]
    return _regional(ds, "COADS monthly SST climatology, 2 deg; fit 0-180E, held out 180-360E")


def record_coads_few() -> dict[str, Any] | None:
    """A small real record: four months of one region (for fine-tuning against scratch)."""
    data = record_coads()
    if data is None:
        return None
    data["train"] = data["train"].isel(time=slice(0, 4))
    data["what"] = "COADS, 2 deg, January-April of 0-180E only; held out 180-360E, all months"
    return data


def record_woa() -> dict[str, Any] | None:
    if _ferret("ocean_atlas_subset.nc") is None:
        return None
    ds = xsstsr.datasets.open_ocean_atlas().isel(depth=0, drop=True)
    ds = ds.rename({"temp": "sst"})[["sst"]]
    ds["sst"].attrs.update(units="degC", standard_name="sea_surface_temperature")
    return _regional(ds, "World Ocean Atlas surface temperature, 2 deg; fit 0-180E, held out "
                     "180-360E")  # fmt: skip


def open_str_sst() -> xr.Dataset | None:
    """NCL's STR 2 x 2 degree SST climatology; its lat and lon are data variables."""
    base = os.environ.get("XSSTSR_NCARG_DIR", "/usr/share/ncarg/data/cdf")
    path = Path(base) / "sstdata_netcdf.nc"
    if not path.is_file():
        return None
    with xr.open_dataset(path, decode_times=False) as raw:
        raw = raw.load()
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), raw["sst"].values.astype("float32"))},
        coords={
            "time": pd.date_range("2000-01-15", periods=raw.sizes["time"], freq="MS")
            + pd.Timedelta(days=14),
            "lat": ("lat", raw["lat"].values.astype("float64"), {"standard_name": "latitude"}),
            "lon": ("lon", raw["lon"].values.astype("float64"), {"standard_name": "longitude"}),
        },
    )
    ds = ds.isel(lon=slice(0, 180))  # 0..358: the 181st column repeats 0 E
    ds["sst"] = ds["sst"].where(np.abs(ds["sst"]) < 100)  # land is a large fill value
    ds["sst"].attrs.update(units="degC", standard_name="sea_surface_temperature")
    return ds


def record_str() -> dict[str, Any] | None:
    ds = open_str_sst()
    if ds is None:
        return None
    ds = _crop(ds.sortby("lat"))
    return {
        "train": ds.isel(time=slice(0, 8)),
        "test": ds,
        "score_times": ds.time.values[8:],
        "train_stations": None,
        "test_stations": None,
        "what": "NCL STR SST climatology, 2 deg; fit January-August, held out September-December",
    }


RECORDS: dict[str, Callable[[], dict[str, Any] | None]] = {
    "sample": record_sample,
    "heatwave": record_heatwave,
    "coads": record_coads,
    "coads-few": record_coads_few,
    "woa": record_woa,
    "str": record_str,
}


# -- scores ----------------------------------------------------------------------------------


def scores(
    pred: xr.DataArray, truth: xr.DataArray, times: np.ndarray, stations: Any
) -> dict[str, float]:
    p = pred.sel(time=times).transpose(*truth.dims)
    t = truth.sel(time=times)
    pv, tv = np.asarray(p.values, "float64"), np.asarray(t.values, "float64")
    both = np.isfinite(pv) & np.isfinite(tv)
    err = (pv - tv)[both]
    warm = tv[both] >= np.quantile(tv[both], 0.99)
    out = {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "bias": float(np.mean(err)),
        "rmse_warm1": float(np.sqrt(np.mean(err[warm] ** 2))),
        "station_rmse": math.nan,
    }
    if stations is not None and len(stations):
        sampled = sample_field(p, read_stations(stations), "lat", "lon", "time")
        s_err = (sampled["model"] - sampled["sst"]).to_numpy("float64")
        s_err = s_err[np.isfinite(s_err)]
        if s_err.size:
            out["station_rmse"] = float(np.sqrt(np.mean(s_err**2)))
    return out


# -- configurations --------------------------------------------------------------------------


def named_configs(spec: str) -> list[tuple[str, dict[str, Any]]]:
    if spec == "defaults":
        return [("fit() defaults", {})]
    if spec == "released":  # the released model of the factor as it is, no fit
        return [(f"sst-x{FACTOR}, no fit", {"no_fit": True})]
    if spec == "linear":
        return [("linear filter, fitted", {"linear": True})]
    if spec == "losses":
        out = []
        for config in METHOD_CONFIGS:
            params = {k: v for k, v in config.to_dict().items() if k != "name"}
            out.append((config.describe(), {"loss": config.name, **params}))
        return out
    options = json.loads(spec)
    if isinstance(options, dict):
        return [(json.dumps(options), options)]
    return [(json.dumps(o), o) for o in options]


def run_one(
    name: str, data: dict[str, Any], label: str, options: dict[str, Any], quick: bool
) -> dict[str, Any]:
    test = data["test"]
    coarse = coarsen_truth(test, FACTOR)
    opts = dict(options)
    multiple = opts.pop("loss_scale_x", None)
    if multiple is not None:  # the scale study: a multiple of bicubic's RMSE on the fit part
        train_truth = data["train"]["sst"]
        base = bicubic_baseline(coarsen_truth(train_truth, FACTOR), factor=FACTOR)
        err = (base.transpose(*train_truth.dims).values - train_truth.values).ravel()
        opts["loss_scale"] = float(multiple * np.sqrt(np.nanmean(err**2)))
    if opts.pop("linear", False):
        return run_linear(name, data, label)
    if quick:
        opts.setdefault("steps", 2)
    started = time.perf_counter()
    no_fit = opts.pop("no_fit", False)
    released = opts.pop("model", f"sst-x{FACTOR}")  # no_fit's model: a name or a path
    if "model" in options and not no_fit:
        raise SystemExit('"model" is no_fit\'s; to fit from a file pass "init": PATH.')
    self_ensemble = bool(opts.pop("self_ensemble", False))  # downscale's option, not fit's
    if no_fit:
        model = xsstsr.load_model(released)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # dropped stations, skill warnings
            model = xsstsr.fit(
                data["train"], data["train_stations"], factor=FACTOR, progress=False, **opts
            )
    elapsed = time.perf_counter() - started
    pred = xsstsr.downscale(coarse, model=model, device="cpu", self_ensemble=self_ensemble)["sst"]
    row = {
        "record": name,
        "config": label,
        **scores(pred, test["sst"], data["score_times"], data["test_stations"]),
        "train_s": round(elapsed, 1),
        "steps": 0 if no_fit else model.metadata["training"]["steps_run"],
        "val_ratio": (model.validation or {}).get("ratio", math.nan),
        "loss_scale": model.metadata["training"]["loss_scale"],
    }
    return row


# -- a linear comparator: what the record's own linear statistics give -----------------------

LINEAR_SIDES = (3, 5, 7, 9, 11)  # coarse neighbourhoods tried; the fit part's last fifth chooses


def _windows(field: np.ndarray, side: int, mode: str) -> np.ndarray:
    """(time, y, x, side**2): each cell's side x side neighbourhood, padded by ``mode``
    ("edge" repeats the border; "nan" marks cells beyond it)."""
    h, (ny, nx) = side // 2, field.shape[-2:]
    pad = ((0, 0), (h, h), (h, h))
    padded = (
        np.pad(field, pad, constant_values=np.nan) if mode == "nan" else np.pad(field, pad, mode)
    )
    return np.stack(
        [padded[:, dy : dy + ny, dx : dx + nx] for dy in range(side) for dx in range(side)], -1
    )


def _neighbourhoods(coarse: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A constant and each neighbour's difference from the cell (edges repeated, land as the
    cell itself), the cell's own value, and whether the neighbourhood is whole ocean."""
    centre = coarse[..., None]
    near = _windows(coarse, side, "nan")
    complete = np.isfinite(near).all(-1)
    near = np.where(np.isfinite(near), near, _windows(coarse, side, "edge"))
    near = np.where(np.isfinite(near), near, centre) - centre
    return np.concatenate([np.ones_like(centre), near], -1), centre, complete


def _to_cells(field: np.ndarray) -> np.ndarray:
    """(time, Y, X) fine field -> (time, Y / F, X / F, F * F), each coarse cell's fine values."""
    nt, ny, nx = field.shape
    cells = field.reshape(nt, ny // FACTOR, FACTOR, nx // FACTOR, FACTOR)
    return cells.transpose(0, 1, 3, 2, 4).reshape(nt, ny // FACTOR, nx // FACTOR, -1)


def _from_cells(cells: np.ndarray) -> np.ndarray:
    nt, ny, nx, _ = cells.shape
    field = cells.reshape(nt, ny, nx, FACTOR, FACTOR).transpose(0, 1, 3, 2, 4)
    return field.reshape(nt, ny * FACTOR, nx * FACTOR)


def _coarse_and_fine(truth: xr.Dataset, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area averages (time, y, x) and the truth's fine values per coarse cell."""
    fine = truth["sst"].sel(time=times).transpose("time", "lat", "lon")
    coarse = coarsen_truth(fine.to_dataset(name="sst"), FACTOR)["sst"]
    coarse = coarse.transpose("time", "lat", "lon").values.astype("float64")
    return coarse, _to_cells(fine.values.astype("float64"))


def _least_squares(a: np.ndarray, target: np.ndarray) -> np.ndarray:
    ok = np.isfinite(a).all(-1) & np.isfinite(target).all(-1)
    a, target = a[ok], target[ok]
    ridge = 1e-9 * np.trace(a.T @ a) * np.eye(a.shape[1])  # keeps flat records solvable
    return np.linalg.solve(a.T @ a + ridge, a.T @ target)


def fit_linear(truth: xr.Dataset, times: np.ndarray, side: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares weights, one set per position inside the coarse cell, of the fine values
    minus the cell's mean: fitted on whole neighbourhoods (used where the neighbourhood is
    whole), and on every cell with edges and land filled (used elsewhere)."""
    coarse, fine = _coarse_and_fine(truth, times)
    a, centre, complete = _neighbourhoods(coarse, side)
    target = fine - centre
    everywhere = _least_squares(a, target)
    if complete.sum() < 10 * a.shape[-1]:  # too few whole neighbourhoods to fit their own
        return everywhere, everywhere
    return _least_squares(a[complete], target[complete]), everywhere


def apply_linear(
    weights: tuple[np.ndarray, np.ndarray], coarse: np.ndarray, side: int
) -> np.ndarray:
    a, centre, complete = _neighbourhoods(coarse, side)
    inner, edge = weights
    return _from_cells(np.where(complete[..., None], a @ inner, a @ edge) + centre)


def run_linear(name: str, data: dict[str, Any], label: str) -> dict[str, Any]:
    """A linear filter of a coarse neighbourhood per fine position (statistical downscaling's
    classic regression), fitted on the same part ``fit`` sees; its side is the one with the
    lowest RMSE on that part's last fifth of time steps, refitted on the whole part."""
    started = time.perf_counter()
    times = data["train"].time.values
    held = max(1, round(0.2 * len(times)))
    check_coarse, check_fine = _coarse_and_fine(data["train"], times[-held:])
    errors = {}
    for side in LINEAR_SIDES:
        weights = fit_linear(data["train"], times[:-held], side)
        err = apply_linear(weights, check_coarse, side) - _from_cells(check_fine)
        errors[side] = float(np.sqrt(np.nanmean(err**2)))
    side = min(errors, key=errors.__getitem__)
    weights = fit_linear(data["train"], times, side)
    test = data["test"]["sst"].transpose("time", "lat", "lon")
    coarse, _ = _coarse_and_fine(data["test"], test.time.values)
    pred = test.copy(data=apply_linear(weights, coarse, side).astype(test.dtype))
    pred = pred.where(np.isfinite(test))  # land as the truth has it
    return {
        "record": name,
        "config": f"{label} ({side} x {side} cells)",
        **scores(pred, test, data["score_times"], data["test_stations"]),
        "train_s": round(time.perf_counter() - started, 1),
        "steps": math.nan,
        "val_ratio": math.nan,
        "loss_scale": math.nan,
    }


def baselines(name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    coarse = coarsen_truth(data["test"], FACTOR)
    truth = data["test"]["sst"]
    rows = []
    for label, make in (("bicubic", bicubic_baseline), ("nearest", nearest_baseline)):
        field = make(coarse["sst"], factor=FACTOR)
        rows.append(
            {
                "record": name,
                "config": label,
                **scores(field, truth, data["score_times"], data["test_stations"]),
            }
        )
    return rows


def table(frame: pd.DataFrame) -> str:
    """Markdown: each trained row with its ratios to bicubic on the same record."""
    lines = [
        "| record | configuration | RMSE (K) | x bicubic | bias (K) | warmest 1% (K) "
        "| x bicubic | station RMSE (K) | steps | train (s) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for record, group in frame.groupby("record", sort=False):
        bic = group[group.config == "bicubic"].iloc[0]
        for _, row in group.iterrows():
            ratio = row["rmse"] / bic["rmse"]
            warm = row["rmse_warm1"] / bic["rmse_warm1"]
            station = "-" if not np.isfinite(row["station_rmse"]) else f"{row['station_rmse']:.3f}"
            steps = "-" if pd.isna(row.get("steps")) else f"{int(row['steps'])}"
            train = "-" if pd.isna(row.get("train_s")) else f"{row['train_s']:.0f}"
            lines.append(
                f"| {record} | {row['config']} | {row['rmse']:.4f} | {ratio:.3f} | "
                f"{row['bias']:+.4f} | {row['rmse_warm1']:.4f} | {warm:.3f} | {station} | "
                f"{steps} | {train} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records",
        nargs="+",
        default=[r for r in RECORDS if r != "coads-few"],
        choices=list(RECORDS),
    )
    parser.add_argument(
        "--configs",
        default="defaults",
        help='"defaults", "losses" (the nine), "released" (the released model, no fit), or JSON '
        "options (an object or a list)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--quick", action="store_true", help="2 steps, small data: smoke run")
    parser.add_argument("--json", type=Path, default=None, help="append rows here (JSON lines)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    for name in args.records:
        maker = RECORDS[name]
        data = record_heatwave(quick=True) if (args.quick and name == "heatwave") else maker()
        if data is None:
            print(f"skipped {name}: its data files are not installed", file=sys.stderr)
            continue
        print(f"{name}: {data['what']}", file=sys.stderr, flush=True)
        rows.extend(baselines(name, data))
        for label, options in named_configs(args.configs):
            row = run_one(name, data, label, options, args.quick)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.json is not None:
                with args.json.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    frame = pd.DataFrame(rows)
    print(table(frame))
    return 0


if __name__ == "__main__":
    sys.exit(main())
