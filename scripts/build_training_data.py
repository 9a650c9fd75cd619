"""Training and held-out data for the released generators, rebuilt from public sources.

Run it to write the stacks as netCDF (``--out``), or import :func:`training_truth` and
:func:`held_out_truth` (``scripts/train_release.py`` and ``scripts/model_card.py`` do)::

    python scripts/build_training_data.py --factor 4 --out /tmp/x4-train.nc

Sources (Debian packages, public domain; ``apt-get download ferret-datasets
libncarg-data`` and ``dpkg -x``, then point ``XSSTSR_FERRET_DIR`` and
``XSSTSR_NCARG_DIR`` at their data folders):

- the World Ocean Atlas temperature (``ocean_atlas_subset.nc``, 2 degrees, monthly, 19
  depths from 0 to 1000 m): its surface is the large-scale background of every synthetic
  box, and with ``real=True`` each depth is also a real training box of its own
  (:func:`woa_boxes`: 12 months at 2 degrees, inputs at ``2 * factor`` degrees);
- etopo5 (5-minute topography): the real coastline of every box (land = elevation > 0);
- for held-out evaluation only, never for training: COADS (``coads_climatology.cdf``)
  and NCL's STR climatology (``sstdata_netcdf.nc``), both monthly at 2 degrees.
- for choosing between release candidates only (``scripts/select_release.py``), never
  for training nor reported as skill: the surface temperature of an ocean model (POP) in NCL's
  ``pop.nc``, one mean state on a curvilinear grid of about 1 degree (:func:`pop_truth`).

Each training box is :func:`xsstsr.datasets.synthetic_sst` on that background and coast,
24 coarse cells a side, at a coarse spacing drawn from 0.05 to 4 degrees, daily or
monthly, with eddy energy from quiet (0.05 K) to energetic (1 K) varying with the
season, a front of random strength and, near some coasts, upwelling. Boxes of one
factor are relabelled onto one grid and stacked in time (``fit`` takes one array). With
``real=True`` the atlas's 19 depths join them as real boxes. The held-out boxes use
other seeds, and the real climatologies are coarsened by the factor.
"""

from __future__ import annotations

import argparse
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import xarray as xr

import xsstsr
from xsstsr.datasets import synthetic_sst
from xsstsr.grid import coarsen_truth

COARSE_CELLS = 24  # a side, for every box
COARSE_SPACINGS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # degrees: the inputs to serve
TRAIN_SEEDS = tuple(range(1000, 1112))
HELD_OUT_SEEDS = tuple(range(9000, 9014))
DAILY_STEPS, MONTHLY_STEPS = 8, 6


def ferret_dir() -> Path:
    return Path(xsstsr.get_option("ferret_dir") or "/usr/share/ferret-vis/data")


def ncarg_dir() -> Path:
    return Path(os.environ.get("XSSTSR_NCARG_DIR", "/usr/share/ncarg/data/cdf"))


@lru_cache(maxsize=1)
def background() -> xr.DataArray:
    """WOA surface temperature (month, lat, lon), degC."""
    from xsstsr.datasets import open_ocean_atlas

    woa = open_ocean_atlas(ferret_dir() / "ocean_atlas_subset.nc")
    return woa["temp"].isel(depth=0).load()


@lru_cache(maxsize=1)
def land() -> xr.DataArray:
    """etopo5 land (elevation > 0) on lat/lon."""
    etopo = xr.open_dataset(ferret_dir() / "etopo5.cdf", decode_times=False)
    rose = etopo["ROSE"].rename(ETOPO05_Y="lat", ETOPO05_X="lon")
    return (rose > 0).load()


def box_settings(seed: int) -> dict:
    """The box a seed draws: spacing, place, time axis and regime."""
    rng = np.random.default_rng(seed)
    spacing = COARSE_SPACINGS[seed % len(COARSE_SPACINGS)]
    size = COARSE_CELLS * spacing
    mask = land()
    for _ in range(200):  # a box that is mostly ocean
        lat0 = float(rng.uniform(-60.0, 60.0 - min(size, 100.0)))
        lon0 = float(rng.uniform(0.0, 360.0))
        inside_lon = (mask.lon.values - lon0) % 360.0 < size
        sub = mask.sel(lat=slice(lat0, lat0 + size)).isel(lon=np.flatnonzero(inside_lon))
        if sub.size and float(sub.mean()) < 0.4:
            break
    daily = spacing <= 0.25 or (spacing == 0.5 and seed % 2 == 0)
    return {
        "spacing": spacing,
        "lat_range": (lat0, lat0 + size),
        "lon_range": (lon0, lon0 + size),
        "freq": "D" if daily else "MS",
        "periods": DAILY_STEPS if daily else MONTHLY_STEPS,
        "start": f"{2001 + seed % 20}-{1 + int(rng.integers(12)):02d}-01",
        "eddy_std": float(np.exp(rng.uniform(np.log(0.05), np.log(1.0)))),
        "eddy_seasonality": float(rng.uniform(0.0, 0.5)),
        "eddy_slope": float(rng.uniform(-3.5, -2.5)),
        "front_strength": float(rng.uniform(0.0, 1.0)),
        "upwelling": float(rng.uniform(0.5, 3.0)) if rng.random() < 0.4 else 0.0,
        "heatwaves": daily and spacing <= 0.5,
    }


def box(seed: int, factor: float) -> xr.Dataset:
    """One truth box on the fine grid (``COARSE_CELLS * factor`` cells a side)."""
    s = box_settings(seed)
    n = round(COARSE_CELLS * factor)
    return synthetic_sst(
        n,
        n,
        lat_range=s["lat_range"],
        lon_range=s["lon_range"],
        start=s["start"],
        periods=s["periods"],
        freq=s["freq"],
        seed=seed,
        eddy_slope=s["eddy_slope"],
        heatwaves=s["heatwaves"],
        background=background(),
        land_mask=land(),
        eddy_std=s["eddy_std"],
        eddy_seasonality=s["eddy_seasonality"],
        front_strength=s["front_strength"],
        upwelling=s["upwelling"],
    )


def stack(boxes: list[xr.Dataset]) -> xr.Dataset:
    """Boxes relabelled onto the first one's grid and time steps, stacked in time."""
    first = boxes[0]
    out = []
    t0 = np.datetime64("2001-01-01")
    for i, b in enumerate(boxes):
        steps = t0 + np.arange(i * 16, i * 16 + b.sizes["time"]).astype("timedelta64[D]")
        out.append(b.assign_coords(lat=first.lat, lon=first.lon, time=steps))
    return xr.concat(out, dim="time")


WOA_SPACING = 2.0  # degrees, the atlas's grid


def woa_boxes(factor: float, windows: int = 1) -> list[xr.Dataset]:
    """Real truths: the World Ocean Atlas at each of its 19 depths, 12 months at 2 degrees,
    ``windows`` boxes a depth (``COARSE_CELLS * factor`` cells a side, placed differently at
    each depth and spread evenly in longitude, wrapping, so they overlap where ``windows``
    boxes are wider than the globe: 6 of 96 columns at factor 4 with two; rows beyond the
    poles are land, NaN). The first window of each depth is the same for any ``windows``."""
    if not isinstance(windows, int) or windows < 1:
        raise ValueError(f"windows must be a positive integer, got {windows!r}")
    from xsstsr.datasets import open_ocean_atlas

    temp = open_ocean_atlas(ferret_dir() / "ocean_atlas_subset.nc")["temp"].load()
    n = round(COARSE_CELLS * factor)
    nlat, nlon = temp.sizes["lat"], temp.sizes["lon"]
    boxes = []
    places = [
        ((37 * i + w * nlon // windows) % nlon, (11 * i) % (nlat - n + 1) if n < nlat else 0, i)
        for i in range(temp.sizes["depth"])
        for w in range(windows)
    ]
    for lon0, lat0, i in places:
        field = temp.isel(depth=i, lon=(lon0 + np.arange(min(n, nlon))) % nlon)
        field = field.isel(lat=slice(lat0, lat0 + min(n, nlat))).values
        values = np.full((field.shape[0], n, n), np.nan, dtype="float32")
        # the atlas dips to -3 degC under polar ice; seawater freezes at about -1.9
        values[:, : field.shape[1], : field.shape[2]] = np.maximum(field, -1.9)
        boxes.append(
            xr.Dataset(
                {"sst": (("time", "lat", "lon"), values, {"units": "degC"})},
                coords={"time": temp.time.values, "lat": np.arange(n), "lon": np.arange(n)},
            )
        )
    return boxes


def training_truth(
    factor: float, seeds: tuple[int, ...] = TRAIN_SEEDS, real: int = 0
) -> xr.Dataset:
    """The training stack for one factor, with the spacings and steps it spans in attrs;
    ``real=N`` adds :func:`woa_boxes` with N windows a depth (``True`` is one)."""
    if not isinstance(real, int) or real < 0:  # True, a bool, is 1
        raise ValueError(
            f"real must be a number of atlas windows a depth (0, 1, 2...), got {real!r}"
        )
    boxes = [box(seed, factor) for seed in seeds]
    spacings = [box_settings(seed)["spacing"] for seed in seeds]
    if real:
        woa = woa_boxes(factor, windows=int(real))
        boxes += woa
        spacings.append(WOA_SPACING * factor)
    out = stack(boxes)
    out.attrs.update(
        input_spacing_deg=[min(spacings), max(spacings)],
        time_spacing_days=[1.0, 31.0],
        boxes=len(boxes),
        real_boxes=len(woa) if real else 0,
    )
    return out


def held_out_truth(factor: float, real: bool = True) -> dict[str, xr.Dataset]:
    """Held-out records: synthetic boxes of other seeds (one grid each) and the real
    COADS and STR climatologies at 2 degrees (inputs at ``2 * factor`` degrees)."""
    from xsstsr.datasets import open_coads_sst

    records = {f"synthetic-{seed}": box(seed, factor) for seed in HELD_OUT_SEEDS}
    if not real:
        return records
    coads = open_coads_sst(ferret_dir() / "coads_climatology.cdf")[["sst"]]
    records["coads"] = crop_for(coads, factor)
    str_clim = open_str(ncarg_dir() / "sstdata_netcdf.nc")
    records["str"] = crop_for(str_clim, factor)
    return records


POP_SPACING = 2.0  # degrees, the grid the ocean model's surface is averaged onto


def pop_truth(factor: float) -> xr.Dataset:
    """A real-world selection field: the surface (5 m) temperature of an ocean model (POP,
    NCL's ``pop.nc``, one mean state on a curvilinear grid of about 1 degree), averaged onto
    a regular 2-degree grid, 60S..60N. A 2-degree cell is ocean where at least half of the
    model cells whose centres fall in it are; its value is the plain (unweighted) mean of
    their ocean values. No model trains on it and no card or study reports it as skill:
    ``scripts/select_release.py`` chooses candidates on it beside the synthetic boxes."""
    raw = xr.open_dataset(ncarg_dir() / "pop.nc", decode_times=False)
    temp = raw["t"].values.astype("float64").ravel()
    lat, lon = pop_cell_centres(raw["lat2d"].values, raw["lon2d"].values)
    lat, lon = lat.ravel(), lon.ravel()
    lat_edges = np.arange(-60.0, 60.0 + POP_SPACING / 2, POP_SPACING)
    lon_edges = np.arange(0.0, 360.0 + POP_SPACING / 2, POP_SPACING)
    inside = (lat >= lat_edges[0]) & (lat < lat_edges[-1]) & np.isfinite(lon)
    row = np.digitize(lat[inside], lat_edges) - 1
    col = np.minimum(np.digitize(lon[inside], lon_edges) - 1, len(lon_edges) - 2)
    shape = (len(lat_edges) - 1, len(lon_edges) - 1)
    cells = np.zeros(shape)
    ocean = np.zeros(shape)
    total = np.zeros(shape)
    wet = np.isfinite(temp[inside])
    np.add.at(cells, (row, col), 1.0)
    np.add.at(ocean, (row[wet], col[wet]), 1.0)
    np.add.at(total, (row[wet], col[wet]), temp[inside][wet])
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.where(ocean >= 0.5 * cells, total / ocean, np.nan)
    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), values[None].astype("float32"), {"units": "degC"})},
        coords={
            "time": [np.datetime64("2000-01-16")],
            "lat": ("lat", lat_edges[:-1] + POP_SPACING / 2, {"standard_name": "latitude"}),
            "lon": ("lon", lon_edges[:-1] + POP_SPACING / 2, {"standard_name": "longitude"}),
        },
    )
    return crop_for(ds, factor)


def pop_cell_centres(ulat: np.ndarray, ulon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The temperature cells' centres of a POP grid from its velocity points (``pop.nc``
    gives only those, "u-grid" latitudes and longitudes): each T cell's centre is the mean,
    on the sphere, of the four U points at its corners (U(i, j) is its north-east corner;
    the grid is periodic in i). The first row, which has no southern corners, is NaN."""
    phi, lam = np.deg2rad(ulat.astype("float64")), np.deg2rad(ulon.astype("float64"))
    xyz = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])
    east = xyz + np.roll(xyz, 1, axis=-1)  # U(i, j) + U(i - 1, j)
    centre = np.full_like(xyz, np.nan)
    centre[:, 1:] = east[:, 1:] + east[:, :-1]  # and the row to the south
    x, y, z = centre
    lat = np.rad2deg(np.arctan2(z, np.hypot(x, y)))
    lon = np.rad2deg(np.arctan2(y, x)) % 360.0
    return lat, lon


def open_str(path: Path) -> xr.Dataset:
    """NCL's STR SST climatology: its lat/lon are data variables (a real-world layout)."""
    raw = xr.open_dataset(path, decode_times=False)
    names = {name.lower(): name for name in raw.variables}
    sst_name = next(n for n in raw.data_vars if raw[n].ndim == 3)
    sst = raw[sst_name]
    lat = raw[names["lat"]].values
    lon = raw[names["lon"]].values
    dims = sst.dims
    da = xr.DataArray(
        sst.values.astype("float32"),
        dims=("time", "lat", "lon"),
        coords={
            "time": np.datetime64("2000-01-16")
            + np.arange(sst.sizes[dims[0]]) * np.timedelta64(30, "D"),
            "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
        attrs={"standard_name": "sea_surface_temperature", "units": "degC"},
        name="sst",
    )
    da = da.where(np.isfinite(da) & (da > -5) & (da < 45))
    return da.sortby("lat").to_dataset()


def crop_for(ds: xr.Dataset, factor: float) -> xr.Dataset:
    """Latitudes 60S..60N and sizes divisible by the factor's coarsening."""
    ds = ds.sel(lat=slice(-60, 60))
    from fractions import Fraction

    frac = Fraction(factor).limit_denominator(8)
    up = frac.numerator
    ny = ds.sizes["lat"] - ds.sizes["lat"] % up
    nx = ds.sizes["lon"] - ds.sizes["lon"] % up
    return ds.isel(lat=slice(0, ny), lon=slice(0, nx))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=float, default=4.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    truth = training_truth(args.factor)
    truth.to_netcdf(args.out)
    coarse = coarsen_truth(truth["sst"], args.factor)
    print(f"wrote {args.out}: truth {dict(truth.sizes)}, inputs {dict(coarse.sizes)}")


if __name__ == "__main__":
    main()
