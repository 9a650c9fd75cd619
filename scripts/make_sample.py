"""Regenerate the sample data bundled in ``xsstsr/data``.

Writes, deterministically:

* ``sample_truth.nc``: :func:`xsstsr.datasets.synthetic_sst` at 1/16 deg over 33-41N,
  124-132E (128 x 128 cells), 16 daily steps from 2021-08-01, ``seed=2021``;
* ``sample_coarse.nc``: the truth averaged over 4 x 4 blocks (1/4 deg, 32 x 32) with
  :func:`xsstsr.grid.coarsen_truth`;
* ``sample_stations.csv``: 16 stations drawn from the truth with 0.1 K noise, ``seed=2021``.

Usage::

    python scripts/make_sample.py [--out xsstsr/data]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import ModuleType

import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
SEED = 2021
FACTOR = 4


def _load_datasets() -> ModuleType:
    """Import xsstsr.datasets from this checkout (not from an installed copy)."""
    sys.path.insert(0, str(ROOT))
    import xsstsr.datasets as datasets

    return datasets


def _encoding(ds: xr.Dataset) -> dict[str, dict[str, object]]:
    enc: dict[str, dict[str, object]] = {
        str(name): {"zlib": True, "complevel": 9, "shuffle": True, "_FillValue": float("nan")}
        for name in ds.data_vars
    }
    enc["time"] = {"units": "days since 2021-08-01", "calendar": "proleptic_gregorian"}
    for name in ("lat", "lon"):
        enc[name] = {"_FillValue": None}
    return enc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "xsstsr" / "data")
    args = parser.parse_args(argv)
    datasets = _load_datasets()

    truth = datasets.synthetic_sst(
        128,
        128,
        lat_range=(33.0, 41.0),
        lon_range=(124.0, 132.0),
        start="2021-08-01",
        periods=16,
        freq="D",
        seed=SEED,
    )
    truth.attrs["title"] = "xsstsr sample: high-resolution truth (1/16 deg)"
    coarse = datasets.coarsen_truth(truth, FACTOR)
    coarse.attrs["title"] = "xsstsr sample: coarse input (1/4 deg), 4x4 block mean of the truth"
    stations = datasets.stations(truth, n=16, noise=0.1, seed=SEED)

    args.out.mkdir(parents=True, exist_ok=True)
    for name, ds in (("sample_truth.nc", truth), ("sample_coarse.nc", coarse)):
        path = args.out / name
        ds.to_netcdf(path, format="NETCDF4", encoding=_encoding(ds))
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    path = args.out / "sample_stations.csv"
    stations.to_csv(path, index=False, float_format="%.6f", date_format="%Y-%m-%d")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
