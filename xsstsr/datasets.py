"""Sample, synthetic and real sea surface temperature data sets.

Three kinds of data live here:

* **Synthetic fields** (:func:`synthetic_sst`, :func:`synthetic_stations`): realistic,
  seeded, resolution-consistent SST with a meridional gradient, a seasonal cycle, a
  meandering front, mesoscale eddies, marine heatwaves and a coastline. Because every
  component is an analytic function of longitude, latitude and time evaluated at cell
  centres, a fine and a coarse call with the same seed describe the same field, which makes
  them a ground truth for downscaling.
* **Bundled samples** (:func:`open_sample`, :func:`open_sample_stations`): a small
  coarse/truth/stations triple shipped inside the package (made by
  ``scripts/make_sample.py``).
* **Real NOAA climatologies** (:func:`open_coads_sst`, :func:`open_ocean_atlas`) read from
  the public-domain Debian package ``ferret-datasets``.

Examples
--------
>>> from xsstsr.datasets import coarsen_truth, synthetic_sst
>>> fine = synthetic_sst(128, 128, periods=4, seed=1)
>>> coarse = coarsen_truth(fine, 4)
>>> coarse.sst.shape
(4, 32, 32)
"""

from __future__ import annotations

import importlib.resources
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr

from .errors import (
    CoordinateError,
    DataFileNotFoundError,
    GridError,
    InputDataError,
    OptionError,
    StationsError,
)

__all__ = [
    "FERRET_DATA_DIR",
    "coarsen_truth",
    "open_coads_sst",
    "open_ocean_atlas",
    "open_sample",
    "open_sample_stations",
    "synthetic_sst",
    "synthetic_stations",
]

#: Where Debian's ``ferret-datasets`` package installs its NetCDF files.
FERRET_DATA_DIR = "/usr/share/ferret-vis/data"
#: Environment variable naming a directory that holds the ferret data files.
FERRET_ENV_VAR = "XSSTSR_FERRET_DIR"

# Time origin of the synthetic fields: fixed so that any time window sees the same field.
_EPOCH = pd.Timestamp("2000-01-01")
_DAYS_PER_YEAR = 365.2425
_FREEZING_C = -1.8  # sea water freezes near -1.8 degC; the field never goes below

# Eddy spectrum: wavenumbers in cycles per degree (wavelengths from 8 deg down to 0.1 deg).
_EDDY_K_MIN = 1.0 / 8.0
_EDDY_K_MAX = 10.0
_EDDY_MODES = 384
_EDDY_STD_K = 0.8  # target standard deviation of the eddy component (K)
_EDDY_DRIFT = (-0.04, 0.01)  # (lon, lat) drift in deg/day: slow westward propagation

# Marine heatwaves: events per day per 100 deg^2, Generalised Pareto amplitudes (K).
_HW_RATE = 0.1
_HW_MIN_K = 0.5
_HW_SCALE_K = 0.7
_HW_SHAPE = 0.35  # GPD shape xi > 0: heavy (power-law) tail
_HW_MAX_K = 8.0

# Random-stream tags so that switching one component off leaves the others unchanged.
_TAG_EDDY, _TAG_FRONT, _TAG_LAND, _TAG_HEAT = 1, 2, 3, 4

_SST_ATTRS = {
    "standard_name": "sea_surface_temperature",
    "long_name": "sea surface temperature",
    "units": "degC",
}
_LAT_ATTRS = {
    "standard_name": "latitude",
    "long_name": "latitude",
    "units": "degrees_north",
    "axis": "Y",
}
_LON_ATTRS = {
    "standard_name": "longitude",
    "long_name": "longitude",
    "units": "degrees_east",
    "axis": "X",
}
_TIME_ATTRS = {"standard_name": "time", "long_name": "time", "axis": "T"}

_SAMPLE_FILES = {"coarse": "sample_coarse.nc", "truth": "sample_truth.nc"}
_SAMPLE_STATIONS = "sample_stations.csv"


# --------------------------------------------------------------------------------------
# Synthetic SST
# --------------------------------------------------------------------------------------


def _rng(seed: int, tag: int, *extra: int) -> np.random.Generator:
    """Independent random stream per component (and per year for heatwaves)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag, *extra]))


def _cell_centres(n: int, lo: float, hi: float) -> np.ndarray:
    """``n`` regular cell centres covering ``[lo, hi]``."""
    step = (hi - lo) / n
    return lo + (np.arange(n, dtype=np.float64) + 0.5) * step


def _check_range(name: str, rng: Sequence[float]) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in rng)
    except (TypeError, ValueError) as err:
        raise GridError(f"{name} must be a (min, max) pair of numbers, got {rng!r}.") from err
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise GridError(f"{name} must satisfy min < max, got {rng!r}; swap or fix the bounds.")
    return lo, hi


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise GridError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _base_temperature(lat: np.ndarray) -> np.ndarray:
    """Annual-mean SST as a smooth sigmoid of |lat| (~29 C tropics, ~1 C polar)."""
    return 1.0 + 28.0 / (1.0 + np.exp((np.abs(lat) - 40.0) / 7.0))


def _seasonal(lat: np.ndarray, t_days: np.ndarray) -> np.ndarray:
    """Seasonal anomaly (time, lat): amplitude grows poleward, peak mid-August in the north."""
    amplitude = np.maximum(0.5, 0.22 * (np.abs(lat) - 15.0))
    hemisphere = np.tanh(lat / 5.0)  # smooth sign change across the equator
    phase = np.cos(2.0 * np.pi * (t_days - 225.0) / _DAYS_PER_YEAR)
    return phase[:, None] * (amplitude * hemisphere)[None, :]


def _front(
    lat: np.ndarray,
    lon: np.ndarray,
    t_days: np.ndarray,
    lat_range: tuple[float, float],
    seed: int,
) -> np.ndarray:
    """Meandering zonal front (time, lat, lon): a tanh step of ~3 K, ~0.3 deg wide."""
    rng = _rng(seed, _TAG_FRONT)
    lat0, lat1 = lat_range
    centre = lat0 + (lat1 - lat0) * rng.uniform(0.45, 0.6)
    wavelengths = rng.uniform(2.5, 8.0, size=3)  # deg of longitude
    amplitudes = rng.uniform(0.2, 0.6, size=3) * min(1.0, (lat1 - lat0) / 8.0)
    phases = rng.uniform(0.0, 2.0 * np.pi, size=3)
    speeds = rng.uniform(0.02, 0.08, size=3)  # eastward phase speed, deg/day
    shifted = lon[None, :, None] - speeds * t_days[:, None, None]  # (time, lon, meander)
    arg = 2.0 * np.pi / wavelengths * shifted + phases
    position = centre + (amplitudes * np.sin(arg)).sum(axis=-1)  # (time, lon)
    width = rng.uniform(0.25, 0.35)
    jump = rng.uniform(2.5, 3.5)
    return -0.5 * jump * np.tanh((lat[None, :, None] - position[:, None, :]) / width)


def _eddy_modes(seed: int, slope: float) -> dict[str, np.ndarray]:
    """Random Fourier modes whose isotropic spectrum follows ``k**slope``.

    Wavenumber magnitudes are log-uniform in ``[_EDDY_K_MIN, _EDDY_K_MAX]`` cycles/deg, so
    each mode stands for a band ``dk ~ k``; a mode variance ``~ k**(slope + 1)`` then gives
    ``E(k) ~ k**slope``. Amplitudes are normalised to ``_EDDY_STD_K`` from the modes alone,
    independent of any grid.
    """
    rng = _rng(seed, _TAG_EDDY)
    n = _EDDY_MODES
    # Stratified log-uniform draw: even coverage of every octave, still continuous.
    u = (np.arange(n) + rng.uniform(0.0, 1.0, size=n)) / n
    k = _EDDY_K_MIN * (_EDDY_K_MAX / _EDDY_K_MIN) ** u
    theta = rng.uniform(0.0, np.pi, size=n)
    variance = k ** (slope + 1.0)
    amp = np.sqrt(2.0 * variance / variance.sum()) * _EDDY_STD_K
    kx = 2.0 * np.pi * k * np.cos(theta)  # rad/deg
    ky = 2.0 * np.pi * k * np.sin(theta)
    # Each mode also evolves in place with a period of 20-120 days (random sign).
    omega = 2.0 * np.pi / np.exp(rng.uniform(np.log(20.0), np.log(120.0), size=n))
    omega *= rng.choice([-1.0, 1.0], size=n)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=n)
    return {"k": k, "kx": kx, "ky": ky, "amp": amp, "omega": omega, "phase": phase}


def _eddies(
    lat: np.ndarray, lon: np.ndarray, t_days: np.ndarray, seed: int, slope: float
) -> np.ndarray:
    """Eddy field (time, lat, lon) as a sum of drifting random Fourier modes.

    ``cos(kx*x + ky*y + c_j(t))`` is separable in x and y, so the sum over modes is a
    batched complex matrix product instead of ``modes x time x lat x lon`` cosines.
    """
    m = _eddy_modes(seed, slope)
    drift = m["kx"] * _EDDY_DRIFT[0] + m["ky"] * _EDDY_DRIFT[1]
    temporal = m["amp"] * np.exp(1j * (m["phase"] - np.outer(t_days, drift + m["omega"])))
    ey = np.exp(1j * np.outer(lat, m["ky"]))  # (lat, mode)
    ex = np.exp(1j * np.outer(m["kx"], lon))  # (mode, lon)
    # Re(A @ B) = Re(A) @ Re(B) - Im(A) @ Im(B): two real GEMMs instead of a complex one
    a = (ey[None, :, :] * temporal[:, None, :]).reshape(-1, ey.shape[1])  # (time*lat, mode)
    field = a.real @ ex.real - a.imag @ ex.imag
    return field.reshape(t_days.size, lat.size, lon.size)


def _heatwave_events(
    seed: int,
    t_start: float,
    t_stop: float,
    lat_range: tuple[float, float],
    lon_range: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Marine heatwave events overlapping ``[t_start, t_stop]`` (days since 2000-01-01).

    Events are drawn per calendar year from a stream seeded by ``(seed, year)``, so a
    window sees the same events whatever its start or length. Amplitudes are
    ``0.5 K + GPD(scale=0.7 K, shape=0.35)`` capped at 8 K: a power-law (heavy) tail.
    """
    margin_days = 40.0  # events are at most a few weeks long; catch those just outside
    lat0, lat1 = lat_range[0] - 1.0, lat_range[1] + 1.0
    lon0, lon1 = lon_range[0] - 1.0, lon_range[1] + 1.0
    area = (lat1 - lat0) * (lon1 - lon0)
    first = (_EPOCH + pd.Timedelta(days=t_start - margin_days)).year
    last = (_EPOCH + pd.Timedelta(days=t_stop + margin_days)).year
    chunks: list[dict[str, np.ndarray]] = []
    for year in range(first, last + 1):
        rng = _rng(seed, _TAG_HEAT, year + 10_000)
        y0 = (pd.Timestamp(year=year, month=1, day=1) - _EPOCH) / pd.Timedelta(days=1)
        n = rng.poisson(_HW_RATE * area / 100.0 * _DAYS_PER_YEAR)
        u = rng.uniform(size=n)
        chunks.append(
            {
                "t0": y0 + rng.uniform(0.0, _DAYS_PER_YEAR, size=n),
                "lat": rng.uniform(lat0, lat1, size=n),
                "lon": rng.uniform(lon0, lon1, size=n),
                "rlat": rng.uniform(0.3, 1.2, size=n),  # e-folding radii in degrees
                "rlon": rng.uniform(0.4, 1.6, size=n),
                "duration": rng.uniform(3.0, 10.0, size=n),  # e-folding time in days
                # GPD by inversion: sigma/xi * ((1-u)**-xi - 1)
                "amplitude": np.minimum(
                    _HW_MIN_K + _HW_SCALE_K / _HW_SHAPE * ((1.0 - u) ** -_HW_SHAPE - 1.0),
                    _HW_MAX_K,
                ),
            }
        )
    events = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    keep = (events["t0"] > t_start - margin_days) & (events["t0"] < t_stop + margin_days)
    return {key: val[keep] for key, val in events.items()}


def _heatwaves(
    lat: np.ndarray,
    lon: np.ndarray,
    t_days: np.ndarray,
    seed: int,
    lat_range: tuple[float, float],
    lon_range: tuple[float, float],
) -> np.ndarray:
    """Heatwave anomalies (time, lat, lon): separable Gaussian bumps in lat, lon and time."""
    ev = _heatwave_events(seed, float(t_days[0]), float(t_days[-1]), lat_range, lon_range)
    if ev["t0"].size == 0:
        return np.zeros((t_days.size, lat.size, lon.size))
    env = ev["amplitude"] * np.exp(-0.5 * ((t_days[:, None] - ev["t0"]) / ev["duration"]) ** 2)
    gy = np.exp(-0.5 * ((lat[None, :] - ev["lat"][:, None]) / ev["rlat"][:, None]) ** 2)
    gx = np.exp(-0.5 * ((lon[None, :] - ev["lon"][:, None]) / ev["rlon"][:, None]) ** 2)
    # sum_e env[t,e] * gy[e,y] * gx[e,x] as one matrix product
    a = (env[:, None, :] * gy.T[None, :, :]).reshape(-1, gx.shape[0])  # (time*lat, event)
    return (a @ gx).reshape(t_days.size, lat.size, lon.size)


def _land_potential(
    lat: np.ndarray,
    lon: np.ndarray,
    lat_range: tuple[float, float],
    lon_range: tuple[float, float],
    seed: int,
) -> tuple[np.ndarray, float]:
    """Smooth "height" (lat, lon) whose upper level set is land, and the land fraction.

    Coordinates are normalised to the box so the coastline (a continent on one edge with
    a peninsula and a wiggly coast) scales with the domain, not with the grid.
    """
    rng = _rng(seed, _TAG_LAND)
    v = (lat - lat_range[0]) / (lat_range[1] - lat_range[0])
    u = (lon - lon_range[0]) / (lon_range[1] - lon_range[0])
    uu, vv = np.meshgrid(u, v)
    side = int(rng.integers(4))  # continent on the west, north, east or south edge
    dist = (uu, 1.0 - vv, 1.0 - uu, vv)[side]  # 0 on that edge, 1 on the opposite one
    along = (vv, uu, vv, uu)[side]
    height = 1.0 - dist / 0.25
    # Peninsula: a bent Gaussian ridge growing out of the continent.
    p0, length = rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.6)
    width, bend = rng.uniform(0.05, 0.09), rng.uniform(-0.25, 0.25)
    ridge = np.exp(-0.5 * ((along - p0 - bend * dist**2) / width) ** 2)
    height = height + 3.0 * ridge * 0.5 * (1.0 - np.tanh((dist - length) / 0.06))
    # Low-wavenumber wiggles (bays, capes, a few islands).
    nmodes = 24
    kk = 2.0 * np.pi * rng.uniform(1.5, 6.0, size=nmodes)  # cycles per box
    th = rng.uniform(0.0, 2.0 * np.pi, size=nmodes)
    ph = rng.uniform(0.0, 2.0 * np.pi, size=nmodes)
    amp = 0.35 * np.sqrt(2.0 / nmodes)
    for j in range(nmodes):
        height = height + amp * np.cos(kk[j] * (np.cos(th[j]) * uu + np.sin(th[j]) * vv) + ph[j])
    fraction = float(rng.uniform(0.12, 0.22))
    return height, fraction


def _land_mask(
    lat: np.ndarray,
    lon: np.ndarray,
    lat_range: tuple[float, float],
    lon_range: tuple[float, float],
    seed: int,
) -> np.ndarray:
    """Boolean land mask (lat, lon), True on land.

    The threshold is the land-fraction quantile of the potential on a fixed 256 x 256
    reference grid, so every resolution sees the same coastline.
    """
    ref_lat = _cell_centres(256, *lat_range)
    ref_lon = _cell_centres(256, *lon_range)
    ref, fraction = _land_potential(ref_lat, ref_lon, lat_range, lon_range, seed)
    threshold = np.quantile(ref, 1.0 - fraction)
    height, _ = _land_potential(lat, lon, lat_range, lon_range, seed)
    return height > threshold


def _components(
    lat: np.ndarray,
    lon: np.ndarray,
    t_days: np.ndarray,
    *,
    lat_range: tuple[float, float],
    lon_range: tuple[float, float],
    seed: int,
    eddy_slope: float,
    heatwaves: bool,
    land: bool,
) -> dict[str, np.ndarray]:
    """All components of the synthetic field, float64, each broadcastable to (t, y, x)."""
    out = {
        "mean": _base_temperature(lat)[None, :, None],
        "seasonal": _seasonal(lat, t_days)[:, :, None],
        "front": _front(lat, lon, t_days, lat_range, seed),
        "eddies": _eddies(lat, lon, t_days, seed, eddy_slope),
    }
    if heatwaves:
        out["heatwaves"] = _heatwaves(lat, lon, t_days, seed, lat_range, lon_range)
    if land:
        out["land"] = _land_mask(lat, lon, lat_range, lon_range, seed)[None, :, :]
    return out


def synthetic_sst(
    nlat: int = 64,
    nlon: int = 64,
    *,
    lat_range: tuple[float, float] = (30.0, 42.0),
    lon_range: tuple[float, float] = (120.0, 132.0),
    start: str | pd.Timestamp = "2020-01-01",
    periods: int = 32,
    freq: str = "D",
    seed: int = 0,
    land: bool = True,
    eddy_slope: float = -3.0,
    heatwaves: bool = True,
    dtype: str | np.dtype[Any] = "float32",
    chunks: Mapping[Hashable, int] | int | str | None = None,
    background: xr.DataArray | None = None,
    land_mask: xr.DataArray | None = None,
    eddy_std: float = 0.8,
    eddy_seasonality: float = 0.0,
    front_strength: float = 1.0,
    upwelling: float = 0.0,
) -> xr.Dataset:
    """Realistic, seeded, resolution-consistent synthetic SST (degC).

    The field is the sum of

    * an annual-mean meridional gradient (a sigmoid of latitude, ~24 C at 30N, ~13 C at 42N);
    * a seasonal cycle whose amplitude grows poleward (~3.3 K at 30N, ~6 K at 42N), peaking
      in mid-August in the northern hemisphere (mid-February in the southern);
    * a meandering zonal front: a ``tanh`` step of 2.5-3.5 K, 0.25-0.35 deg wide, whose
      meanders (2.5-8 deg wavelength) propagate eastward;
    * mesoscale eddies: 384 random Fourier modes with wavelengths from 8 deg down to
      0.1 deg, standard deviation 0.8 K, whose isotropic wavenumber spectrum follows
      ``E(k) ~ k**eddy_slope`` (default ``k**-3``, typical of SST at mesoscales); the field
      drifts westward and each mode oscillates with a 20-120 day period;
    * marine heatwaves (``heatwaves=True``): localized Gaussian warm anomalies of 0.4-1.6
      deg radius and 3-10 day e-folding time, about 0.1 event per day per 100 deg^2, with
      Generalised-Pareto (heavy-tailed, shape 0.35) amplitudes of 0.5-8 K;
    * a coastline (``land=True``): a smooth random continent with a peninsula on one edge
      of the box covering 12-22 % of it, set to NaN at every time step.

    Every component is an analytic function of (lon, lat, time) evaluated at the cell
    centres, so the same seed and ranges at another resolution describe the same
    continuous field, only sampled differently: a fine field averaged over blocks (see
    :func:`coarsen_truth`) matches a direct coarse call up to sub-grid content. Time is
    measured from a fixed epoch, so windows with different ``start``/``periods`` also
    agree where they overlap.

    Parameters
    ----------
    nlat, nlon
        Number of grid cells in latitude and longitude.
    lat_range, lon_range
        ``(min, max)`` bounds of the box in degrees; cells are centred inside them with
        regular spacing, latitude ascending.
    start, periods, freq
        Time axis, as for :func:`pandas.date_range`.
    seed
        Seed of every random component; the output is a pure function of the arguments.
    land
        Add a coastline (NaN over land).
    eddy_slope
        Log-log slope of the isotropic eddy wavenumber spectrum.
    heatwaves
        Add marine heatwaves.
    dtype
        Floating dtype of ``sst`` (computations are done in float64).
    chunks
        If given, return ``ds.chunk(chunks)`` (dask-backed).
    background
        A real monthly climatology (month, lat, lon) in degC, e.g. the World Ocean
        Atlas surface temperature: it replaces the analytic gradient and seasonal cycle
        (interpolated to the cells and days; see :func:`xsstsr.realism.background_field`).
    land_mask
        A real land mask (True = land, any regular grid, e.g. etopo elevation > 0): it
        replaces the random coastline when ``land`` is True.
    eddy_std
        Standard deviation of the eddies (K): about 0.05 for quiet, smooth regimes, 0.8
        (the default) for an energetic western boundary current.
    eddy_seasonality
        Relative seasonal modulation of the eddy energy (0: none; 0.5: +-50 %, strongest
        in local late winter).
    front_strength
        Scale of the meandering front (0 removes it).
    upwelling
        Coastal upwelling: a cold anomaly of this many K at the coast, decaying over
        0.5 degrees offshore, strongest in local summer (needs land).

    Returns
    -------
    xarray.Dataset
        Variable ``sst`` with dims ``(time, lat, lon)`` and CF attributes.

    Raises
    ------
    GridError
        If sizes are not positive integers or a range is not ``(min, max)``.
    InputDataError
        If ``dtype`` is not a floating dtype.

    Examples
    --------
    >>> ds = synthetic_sst(32, 48, periods=3, seed=7)
    >>> ds.sst.dims, ds.sst.shape
    (('time', 'lat', 'lon'), (3, 32, 48))
    >>> ds.sst.attrs["units"]
    'degC'
    """
    nlat = _check_positive_int("nlat", nlat)
    nlon = _check_positive_int("nlon", nlon)
    periods = _check_positive_int("periods", periods)
    lat_rng = _check_range("lat_range", lat_range)
    lon_rng = _check_range("lon_range", lon_range)
    try:
        out_dtype = np.dtype(dtype)
    except TypeError:
        out_dtype = np.dtype(object)  # not a dtype at all: rejected just below
    if not np.issubdtype(out_dtype, np.floating):
        raise InputDataError(f"dtype must be a floating dtype (NaN marks land), got {dtype!r}.")

    lat = _cell_centres(nlat, *lat_rng)
    lon = _cell_centres(nlon, *lon_rng)
    try:
        time = pd.date_range(start, periods=periods, freq=freq).as_unit("ns")
    except (TypeError, ValueError) as err:  # pandas: an unparsable date or frequency
        raise OptionError(
            f"start={start!r} and freq={freq!r} must be a date and a pandas frequency ({err}); "
            'e.g. start="2020-01-01", freq="D".'
        ) from None
    try:
        slope = float(eddy_slope)
    except (TypeError, ValueError):
        slope = math.nan
    if not math.isfinite(slope):
        raise OptionError(f"eddy_slope must be a finite number, got {eddy_slope!r}; e.g. -3.")
    t_days = np.asarray((time - _EPOCH) / pd.Timedelta(days=1), dtype=np.float64)

    comp = _components(
        lat,
        lon,
        t_days,
        lat_range=lat_rng,
        lon_range=lon_rng,
        seed=seed,
        eddy_slope=slope,
        heatwaves=heatwaves,
        land=land,
    )
    for key, value in (
        ("eddy_std", eddy_std),
        ("eddy_seasonality", eddy_seasonality),
        ("front_strength", front_strength),
        ("upwelling", upwelling),
    ):
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise OptionError(f"{key} must be a finite number >= 0, got {value!r}.")
    from . import realism

    large_scale = (
        realism.background_field(background, lat, lon, t_days)
        if background is not None
        else comp["mean"] + comp["seasonal"]
    )
    hemisphere = 1.0 if float(np.mean(lat)) >= 0 else -1.0
    eddy_scale = (eddy_std / _EDDY_STD_K) * (
        1 + eddy_seasonality * hemisphere * np.cos(2 * np.pi * (t_days - 60.0) / 365.25)
    )
    sst = large_scale + front_strength * comp["front"] + eddy_scale[:, None, None] * comp["eddies"]
    if heatwaves:
        sst = sst + comp["heatwaves"]
    land_cells = None
    if land:
        land_cells = (
            realism.land_from_mask(land_mask, lat, lon)[None]
            if land_mask is not None
            else comp["land"]
        )
        if upwelling:
            sst = sst + realism.upwelling(land_cells[0], lat, lon, t_days, upwelling)
    sst = np.maximum(sst, _FREEZING_C)
    if land_cells is not None:
        sst = np.where(land_cells, np.nan, sst)

    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), sst.astype(out_dtype), dict(_SST_ATTRS))},
        coords={
            "time": ("time", time, dict(_TIME_ATTRS)),
            "lat": ("lat", lat, dict(_LAT_ATTRS)),
            "lon": ("lon", lon, dict(_LON_ATTRS)),
        },
        attrs={
            "title": "synthetic sea surface temperature",
            "source": "xsstsr.datasets.synthetic_sst",
            "seed": int(seed),
            "eddy_spectral_slope": slope,
            "Conventions": "CF-1.8",
        },
    )
    if chunks is not None:
        ds = ds.chunk(chunks)
    return ds


# --------------------------------------------------------------------------------------
# Stations and coarsening
# --------------------------------------------------------------------------------------


def _as_dataarray(truth: xr.Dataset | xr.DataArray, variable: str) -> xr.DataArray:
    if isinstance(truth, xr.DataArray):
        return truth
    if variable not in truth.data_vars:
        raise StationsError(
            f"variable {variable!r} not in the dataset (has {sorted(map(str, truth.data_vars))});"
            " pass variable=..."
        )
    return truth[variable]


def synthetic_stations(
    truth: xr.Dataset | xr.DataArray,
    n: int = 16,
    *,
    noise: float = 0.1,
    seed: int = 0,
    variable: str = "sst",
    min_distance_cells: int = 2,
) -> pd.DataFrame:
    """Sample noisy in-situ "stations" from a gridded truth.

    Stations sit at the centres of ``n`` random ocean cells (no NaN at any time) that are
    at least ``min_distance_cells`` cells away from the domain edge and from each other
    (Chebyshev distance). Each reports the truth at every time step plus Gaussian
    measurement noise of standard deviation ``noise`` (K).

    Parameters
    ----------
    truth
        Dataset holding ``variable``, or a DataArray, with dims ``time``, ``lat``, ``lon``.
    n
        Number of stations.
    noise
        Standard deviation of the measurement noise, in the units of the truth.
    seed
        Seed of station positions and noise.
    variable
        Variable of ``truth`` to sample; also the name of the value column.
    min_distance_cells
        Minimum distance, in cells, from the edge and between stations.

    Returns
    -------
    pandas.DataFrame
        Long-form table, one row per station and time, sorted by station then time, with
        columns ``station`` (``"ST01"``...), ``time`` (datetime64), ``lat``, ``lon`` and
        ``variable`` (float64).

    Raises
    ------
    StationsError
        If the truth has too few eligible ocean cells for ``n`` stations, or arguments are
        invalid.
    CoordinateError
        If the truth lacks ``time``, ``lat`` or ``lon`` dimensions.

    Examples
    --------
    >>> truth = synthetic_sst(32, 32, periods=2)
    >>> df = synthetic_stations(truth, n=4, seed=1)
    >>> list(df.columns), len(df)
    (['station', 'time', 'lat', 'lon', 'sst'], 8)
    """
    da = _as_dataarray(truth, variable)
    missing = {"time", "lat", "lon"} - set(map(str, da.dims))
    if missing:
        raise CoordinateError(
            f"truth needs dims ('time', 'lat', 'lon'); missing {sorted(missing)} in {da.dims}."
            " Rename its coordinates first."
        )
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
        raise StationsError(f"n must be a positive integer, got {n!r}.")
    if not np.isfinite(noise) or noise < 0:
        raise StationsError(f"noise must be a finite standard deviation >= 0, got {noise!r}.")
    margin = int(min_distance_cells)
    if margin < 0:
        raise StationsError(f"min_distance_cells must be >= 0, got {min_distance_cells!r}.")

    da = da.transpose("time", "lat", "lon")
    ocean = np.asarray(da.notnull().all("time").values)
    interior = np.zeros_like(ocean)
    ny, nx = ocean.shape
    interior[margin : ny - margin, margin : nx - margin] = True
    candidates = np.flatnonzero(ocean & interior)
    if candidates.size < n:
        raise StationsError(
            f"truth has only {candidates.size} ocean cells at least {margin} cells from the "
            f"edge, fewer than n={n} stations; lower n or min_distance_cells, or use a larger "
            "or less land-covered domain."
        )

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 5]))
    chosen: list[tuple[int, int]] = []
    for flat in rng.permutation(candidates):
        iy, ix = divmod(int(flat), nx)
        if all(max(abs(iy - cy), abs(ix - cx)) >= margin for cy, cx in chosen):
            chosen.append((iy, ix))
            if len(chosen) == n:
                break
    if len(chosen) < n:
        raise StationsError(
            f"could place only {len(chosen)} of n={n} stations {margin} cells apart in the "
            "ocean; lower n or min_distance_cells."
        )

    iy_arr = np.array([c[0] for c in chosen])
    ix_arr = np.array([c[1] for c in chosen])
    points = da.isel(
        lat=xr.DataArray(iy_arr, dims="station"), lon=xr.DataArray(ix_arr, dims="station")
    )
    values = np.asarray(points.transpose("station", "time").values, dtype=np.float64)
    values = values + rng.normal(0.0, noise, size=values.shape)

    nt = da.sizes["time"]
    width = max(2, len(str(n)))
    names = [f"ST{i + 1:0{width}d}" for i in range(n)]
    times = pd.DatetimeIndex(np.asarray(da["time"].values)).as_unit("ns")
    return pd.DataFrame(
        {
            "station": np.repeat(names, nt),
            "time": np.tile(times.values, n),
            "lat": np.repeat(np.asarray(da["lat"].values, dtype=np.float64)[iy_arr], nt),
            "lon": np.repeat(np.asarray(da["lon"].values, dtype=np.float64)[ix_arr], nt),
            variable: values.ravel(),
        }
    )


def coarsen_truth(
    truth: xr.Dataset | xr.DataArray,
    factor: float,
    *,
    lat: Hashable = "lat",
    lon: Hashable = "lon",
) -> xr.Dataset | xr.DataArray:
    """Area-average a fine field onto a grid ``factor`` times coarser.

    Each coarse cell is the mean of the ocean (non-NaN) values of the fine cells it
    covers, or NaN when more than half of its area is land/NaN, so the coarse coastline
    follows the majority of the fine cells. A rational factor such as 2.5 = 5/2 is exact:
    each fine cell is split into 2 x 2 equal parts and 5 x 5 parts make a coarse cell.
    Coordinates are the means of the fine coordinates; attributes are kept. Variables
    without both ``lat`` and ``lon`` dims are left untouched. Plain (unweighted) means: on
    boxes of a few degrees the cos(lat) area weighting changes little. This is how
    :func:`xsstsr.fit` makes its inputs when it is given no ``target``.

    Parameters
    ----------
    truth
        Dataset or DataArray with ``lat`` and ``lon`` dimensions.
    factor
        2, 2.5, 4, 5, ...: a ratio p/q (q <= 8) whose coarse grid fits the sizes.
    lat, lon
        Names of the latitude and longitude dimensions.

    Returns
    -------
    xarray.Dataset or xarray.DataArray
        Same type as ``truth``, on the coarse grid.

    Raises
    ------
    GridError
        If ``factor`` is not a valid factor or does not fit both sizes.
    CoordinateError
        If the ``lat`` or ``lon`` dimension is missing.

    Examples
    --------
    >>> fine = synthetic_sst(64, 64, periods=2)
    >>> coarsen_truth(fine, 4).sst.shape
    (2, 16, 16)
    >>> coarsen_truth(synthetic_sst(60, 60, periods=2), 2.5).sst.shape
    (2, 24, 24)
    """
    from fractions import Fraction

    for dim in (lat, lon):
        if dim not in truth.dims:
            raise CoordinateError(
                f"coarsen_truth needs a {dim!r} dimension; got dims {tuple(truth.dims)}. "
                "Rename the coordinates or pass lat=/lon=."
            )
    if (
        isinstance(factor, bool)
        or not isinstance(factor, int | float | np.integer | np.floating | Fraction)
        or not np.isfinite(float(factor))
        or factor < 1
    ):
        raise GridError(f"factor must be a number >= 1, got {factor!r}; pass e.g. factor=4.")
    frac = Fraction(factor).limit_denominator(8)
    if abs(float(frac) - float(factor)) > 1e-9:
        raise GridError(f"factor {factor!r} is not a ratio p/q with q <= 8 (such as 2.5).")
    up, pool = frac.numerator, frac.denominator
    ny, nx = truth.sizes[lat], truth.sizes[lon]
    if (ny * pool) % up or (nx * pool) % up:
        step = up // np.gcd(up, pool)
        raise GridError(
            f"factor={float(frac):g} does not fit the grid size ({lat}={ny}, {lon}={nx}); crop "
            f"the field to a multiple of {step} (e.g. .isel({lat}=slice(0, {ny - ny % step}), "
            f"{lon}=slice(0, {nx - nx % step}))) or pick another factor."
        )
    if pool > 1:  # split each fine cell into pool x pool equal parts
        truth = truth.isel(
            {lat: np.repeat(np.arange(ny), pool), lon: np.repeat(np.arange(nx), pool)}
        )

    def _one(da: xr.DataArray) -> xr.DataArray:
        if lat not in da.dims or lon not in da.dims:
            return da
        mean = da.coarsen({lat: up, lon: up}).mean(keep_attrs=True)  # skips NaN
        n_ocean = da.notnull().coarsen({lat: up, lon: up}).sum()
        # NaN when land is the strict majority of the fine cells
        out = mean.where(2 * n_ocean >= up * up)
        out.attrs = dict(da.attrs)
        return out

    if isinstance(truth, xr.DataArray):
        result: xr.Dataset | xr.DataArray = _one(truth)
    else:
        coarse = truth.coarsen({lat: up, lon: up}).mean(keep_attrs=True)
        result = coarse.assign({name: _one(truth[name]) for name in truth.data_vars})
        result.attrs = dict(truth.attrs)
    if pool > 1:  # the means of repeated coordinates are not the centres: set them exactly
        centres = {}
        for dim, n in ((lat, ny), (lon, nx)):
            fine = np.asarray(truth[dim].values[::pool], dtype="float64")
            step = (fine[-1] - fine[0]) / (n - 1)
            centres[dim] = fine[0] - step / 2 + (np.arange(n * pool // up) + 0.5) * step * up / pool
        result = result.assign_coords(centres)
    for dim in (lat, lon):
        result[dim].attrs = dict(truth[dim].attrs)
    return result


# --------------------------------------------------------------------------------------
# Bundled samples
# --------------------------------------------------------------------------------------


def _open_bundled_netcdf(name: str) -> xr.Dataset:
    ref = importlib.resources.files("xsstsr") / "data" / name
    with importlib.resources.as_file(ref) as path:
        if not path.is_file():
            raise DataFileNotFoundError(
                f"bundled sample {name!r} is missing from the xsstsr package; reinstall "
                "xsstsr or regenerate it with `python scripts/make_sample.py`."
            )
        with xr.open_dataset(path) as ds:
            return ds.load()  # in memory, so the file can be closed


def open_sample(kind: Literal["coarse", "truth"] = "coarse") -> xr.Dataset:
    """Open the bundled sample: a coarse input and its fine truth.

    Made by ``scripts/make_sample.py``: :func:`synthetic_sst` at 1/16 deg over
    33-41N, 124-132E (128 x 128 cells), 16 daily steps from 2021-08-01, ``seed=2021``
    (``"truth"``), averaged over 4 x 4 blocks with :func:`coarsen_truth` to 1/4 deg
    (32 x 32, ``"coarse"``). Both hold ``sst`` (degC) on ``time``, ``lat``, ``lon``.

    Parameters
    ----------
    kind
        ``"coarse"`` (the low-resolution input) or ``"truth"`` (the high-resolution field).

    Returns
    -------
    xarray.Dataset
        Loaded into memory; no file stays open.

    Raises
    ------
    OptionError
        If ``kind`` is unknown.

    Examples
    --------
    >>> open_sample("coarse").sst.shape
    (16, 32, 32)
    >>> open_sample("truth").sst.shape
    (16, 128, 128)
    """
    if not isinstance(kind, str) or kind not in _SAMPLE_FILES:
        raise OptionError(
            f"kind must be one of {sorted(_SAMPLE_FILES)}, got {kind!r}; e.g. "
            'open_sample("coarse") for the input, open_sample("truth") for the fine field.'
        )
    return _open_bundled_netcdf(_SAMPLE_FILES[kind])


def open_sample_stations() -> pd.DataFrame:
    """Open the bundled station table that goes with :func:`open_sample`.

    16 stations drawn by :func:`synthetic_stations` from the sample truth with 0.1 K noise
    (``seed=2021``).

    Returns
    -------
    pandas.DataFrame
        Columns ``station``, ``time`` (datetime64[ns]), ``lat``, ``lon``, ``sst``.

    Examples
    --------
    >>> df = open_sample_stations()
    >>> df["station"].nunique(), len(df)
    (16, 256)
    """
    ref = importlib.resources.files("xsstsr") / "data" / _SAMPLE_STATIONS
    with importlib.resources.as_file(ref) as path:
        if not path.is_file():
            raise DataFileNotFoundError(
                f"bundled sample {_SAMPLE_STATIONS!r} is missing from the xsstsr package; "
                "reinstall xsstsr or regenerate it with `python scripts/make_sample.py`."
            )
        df = pd.read_csv(path, dtype={"station": str}, parse_dates=["time"])
    df["time"] = df["time"].astype("datetime64[ns]")
    return df


# --------------------------------------------------------------------------------------
# Real NOAA climatologies from Debian's ferret-datasets
# --------------------------------------------------------------------------------------


def _find_ferret_file(name: str, path: str | os.PathLike[str] | None) -> Path:
    """Locate a ferret data file: ``path``, then ``$XSSTSR_FERRET_DIR``, then Debian's dir."""
    if path is not None:
        candidate = Path(path)
        if candidate.is_dir():
            candidate = candidate / name
        if not candidate.is_file():
            raise DataFileNotFoundError(f"no such file: {str(candidate)!r} (looking for {name}).")
        return candidate
    tried = []
    env_dir = os.environ.get(FERRET_ENV_VAR)
    if env_dir:
        tried.append(Path(env_dir) / name)
    tried.append(Path(FERRET_DATA_DIR) / name)
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise DataFileNotFoundError(
        f"{name} not found (tried {', '.join(map(str, tried))}). Install it with "
        f"`apt-get install ferret-datasets`, set {FERRET_ENV_VAR} to the directory holding "
        "it, or pass path=."
    )


def _ferret_time(hours: np.ndarray, year: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode a ferret climatological axis ("hour since 0000-01-01") onto a nominal year.

    Year 0 does not exist in the standard calendar, so the offsets within the year are
    added to 1 January of ``year`` (default 2000, a leap year like ferret's year 0).
    Returns datetime64[ns] times and month numbers.
    """
    offsets = pd.to_timedelta(np.asarray(hours, dtype=np.float64), unit="h")
    times = pd.Timestamp(year=year, month=1, day=1) + offsets
    times = pd.DatetimeIndex(times).as_unit("ns")
    return times.values, np.asarray(times.month, dtype=np.int64)


def _open_ferret_raw(file: Path, variables: list[str] | None, year: int) -> xr.Dataset:
    """Open a ferret file with its original names; decode its TIME axis; load and close."""
    with xr.open_dataset(file, decode_times=False) as ds:
        if variables is not None:
            missing = sorted(set(variables) - set(map(str, ds.data_vars)))
            if missing:
                raise InputDataError(
                    f"{file} has no {missing} variable (has {sorted(map(str, ds.data_vars))})."
                )
            ds = ds[variables]  # load only what is needed
        ds = ds.load()
    if "TIME" in ds.coords:
        times, _ = _ferret_time(ds["TIME"].values, year)
        attrs = {k: v for k, v in ds["TIME"].attrs.items() if k not in ("units", "time_origin")}
        attrs.update(
            {
                "standard_name": "time",
                "axis": "T",
                "long_name": f"climatological month (nominal year {year})",
            }
        )
        ds = ds.assign_coords(TIME=("TIME", times, attrs))
    return ds


def _normalise_lon(ds: xr.Dataset) -> xr.Dataset:
    """Wrap longitudes to [0, 360) and sort (ferret axes run e.g. 21..379)."""
    lon = np.mod(ds["lon"].values, 360.0)
    ds = ds.assign_coords(lon=("lon", lon, ds["lon"].attrs))
    return ds.sortby(["lat", "lon"])


def _tidy_ferret(ds: xr.Dataset, rename: dict[str, str], year: int) -> xr.Dataset:
    """Rename to lat/lon/time (+depth), add CF attributes and a ``month`` coordinate."""
    ds = ds.rename({k: v for k, v in rename.items() if k in ds.variables})
    for name, attrs in (("lat", _LAT_ATTRS), ("lon", _LON_ATTRS)):
        extra = {k: v for k, v in ds[name].attrs.items() if k not in ("modulo", "point_spacing")}
        ds[name].attrs = {**extra, **attrs}
    ds = _normalise_lon(ds)
    month = np.asarray(pd.DatetimeIndex(ds["time"].values).month, dtype=np.int64)
    ds = ds.assign_coords(month=("time", month, {"long_name": "month of the year"}))
    ds["time"].attrs = {
        **_TIME_ATTRS,
        "long_name": f"climatological month (nominal year {year})",
        "comment": "ferret axis 'hour since 0000-01-01' decoded onto the nominal year",
    }
    return ds


def open_coads_sst(
    path: str | os.PathLike[str] | None = None,
    *,
    raw: bool = False,
    year: int = 2000,
) -> xr.Dataset:
    """Open the NOAA COADS monthly SST climatology from Debian's ``ferret-datasets``.

    The file ``coads_climatology.cdf`` is searched in ``path`` (a file or a directory),
    then in ``$XSSTSR_FERRET_DIR``, then in ``/usr/share/ferret-vis/data``.

    Its ``TIME`` axis is a ferret climatology in "hour since 0000-01-01"; year 0 is not
    valid in the standard calendar, so it is decoded as mid-month datetime64 dates of the
    nominal ``year`` (2000 by default, e.g. 2000-01-16T06:00), with a ``month`` coordinate
    (1-12) along ``time``.

    Parameters
    ----------
    path
        The file, or a directory holding it. Default: search as above.
    raw
        Return every variable with its original names (``COADSX``, ``COADSY``, ``TIME``,
        ``SST``...), original longitudes (21-379) and attributes; only ``TIME`` is decoded.
    year
        Nominal year of the decoded climatological time axis.

    Returns
    -------
    xarray.Dataset
        By default ``sst`` (degC, CF attributes) on ``time``, ``lat`` (ascending), ``lon``
        (wrapped to [0, 360) and sorted), plus ``month``. Loaded; no file stays open.

    Raises
    ------
    DataFileNotFoundError
        If the file cannot be found (install ``ferret-datasets`` or set
        ``XSSTSR_FERRET_DIR``).
    InputDataError
        If the file has no ``SST`` variable.

    Examples
    --------
    >>> ds = open_coads_sst()  # doctest: +SKIP
    >>> ds.sst.dims, float(ds.lon.max()) < 360  # doctest: +SKIP
    (('time', 'lat', 'lon'), True)
    """
    file = _find_ferret_file("coads_climatology.cdf", path)
    if raw:
        return _open_ferret_raw(file, None, year)
    ds = _open_ferret_raw(file, ["SST"], year)
    ds = _tidy_ferret(ds, {"SST": "sst", "COADSX": "lon", "COADSY": "lat", "TIME": "time"}, year)
    history = ds["sst"].attrs.get("history")
    ds["sst"].attrs = dict(_SST_ATTRS)
    if history:
        ds["sst"].attrs["history"] = history
    ds.attrs = {
        **ds.attrs,
        "title": "COADS monthly climatology of sea surface temperature",
        "source": "NOAA COADS climatology, Debian package ferret-datasets (public domain)",
    }
    return ds


def open_ocean_atlas(
    path: str | os.PathLike[str] | None = None,
    depth: float | Sequence[float] | None = None,
    *,
    raw: bool = False,
    year: int = 2000,
) -> xr.Dataset:
    """Open the NOAA ocean atlas temperature subset from Debian's ``ferret-datasets``.

    The file ``ocean_atlas_subset.nc`` (a 2-degree monthly World Ocean Atlas
    temperature climatology, 19 levels from 0 to 1000 m) is searched like in
    :func:`open_coads_sst`, and its time axis decoded the same way.

    Parameters
    ----------
    path
        The file, or a directory holding it. Default: search ``$XSSTSR_FERRET_DIR`` then
        ``/usr/share/ferret-vis/data``.
    depth
        Depth(s) in metres to keep (nearest levels); the ``depth`` dimension is kept even
        for a single value. Default: all levels.
    raw
        Return the file with its original names (``XAX_SUBSET``, ``YAX_SUBSET``,
        ``ZAXLEVIT19``, ``TIME``, ``TEMP``); only ``TIME`` is decoded. ``depth`` is ignored.
    year
        Nominal year of the decoded climatological time axis.

    Returns
    -------
    xarray.Dataset
        ``temp`` (degC, ``sea_water_temperature``) on ``time``, ``depth`` (m, positive
        down), ``lat``, ``lon`` (wrapped to [0, 360) and sorted), plus ``month``.

    Raises
    ------
    DataFileNotFoundError
        If the file cannot be found.
    InputDataError
        If the file has no ``TEMP`` variable.

    Examples
    --------
    >>> ds = open_ocean_atlas(depth=0)  # doctest: +SKIP
    >>> ds.temp.dims  # doctest: +SKIP
    ('time', 'depth', 'lat', 'lon')
    """
    file = _find_ferret_file("ocean_atlas_subset.nc", path)
    if raw:
        return _open_ferret_raw(file, None, year)
    ds = _open_ferret_raw(file, ["TEMP"], year)
    rename = {
        "TEMP": "temp",
        "XAX_SUBSET": "lon",
        "YAX_SUBSET": "lat",
        "ZAXLEVIT19": "depth",
        "TIME": "time",
    }
    ds = _tidy_ferret(ds, rename, year)
    ds["depth"].attrs = {
        "standard_name": "depth",
        "long_name": "depth below the sea surface",
        "units": "m",
        "positive": "down",
        "axis": "Z",
    }
    history = ds["temp"].attrs.get("history")
    ds["temp"].attrs = {
        "standard_name": "sea_water_temperature",
        "long_name": "sea water temperature",
        "units": "degC",
    }
    if history:
        ds["temp"].attrs["history"] = history
    ds = ds.transpose("time", "depth", "lat", "lon")
    if depth is not None:
        ds = ds.sel(depth=np.atleast_1d(np.asarray(depth, dtype=np.float64)), method="nearest")
    ds.attrs = {
        **ds.attrs,
        "title": "NOAA ocean atlas monthly temperature climatology (subset)",
        "source": "NOAA World Ocean Atlas subset, Debian package ferret-datasets (public domain)",
    }
    return ds
