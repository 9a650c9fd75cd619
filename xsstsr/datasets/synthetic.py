"""Synthetic SST: a deterministic world with fronts, eddies, heatwaves and coasts."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..cf.attrs import LAT_ATTRS, LON_ATTRS, SST_ATTRS, TIME_ATTRS
from ..errors import (
    GridError,
    InputDataError,
    OptionError,
)
from ..grid.land import land_from_mask

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


def _rng(seed: int, tag: int, *extra: int) -> np.random.Generator:
    """Independent random stream per component (and per year for heatwaves)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), tag, *extra]))


def cell_centres(n: int, lo: float, hi: float) -> np.ndarray:
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


def front_component(
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


def eddy_component(
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


def heatwave_events(
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


def heatwave_component(
    lat: np.ndarray,
    lon: np.ndarray,
    t_days: np.ndarray,
    seed: int,
    lat_range: tuple[float, float],
    lon_range: tuple[float, float],
) -> np.ndarray:
    """Heatwave anomalies (time, lat, lon): separable Gaussian bumps in lat, lon and time."""
    ev = heatwave_events(seed, float(t_days[0]), float(t_days[-1]), lat_range, lon_range)
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
    ref_lat = cell_centres(256, *lat_range)
    ref_lon = cell_centres(256, *lon_range)
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
        "front": front_component(lat, lon, t_days, lat_range, seed),
        "eddies": eddy_component(lat, lon, t_days, seed, eddy_slope),
    }
    if heatwaves:
        out["heatwaves"] = heatwave_component(lat, lon, t_days, seed, lat_range, lon_range)
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

    lat = cell_centres(nlat, *lat_rng)
    lon = cell_centres(nlon, *lon_rng)
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
            land_from_mask(land_mask, lat, lon)[None] if land_mask is not None else comp["land"]
        )
        if upwelling:
            sst = sst + realism.upwelling(land_cells[0], lat, lon, t_days, upwelling)
    sst = np.maximum(sst, _FREEZING_C)
    if land_cells is not None:
        sst = np.where(land_cells, np.nan, sst)

    ds = xr.Dataset(
        {"sst": (("time", "lat", "lon"), sst.astype(out_dtype), dict(SST_ATTRS))},
        coords={
            "time": ("time", time, dict(TIME_ATTRS)),
            "lat": ("lat", lat, dict(LAT_ATTRS)),
            "lon": ("lon", lon, dict(LON_ATTRS)),
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
