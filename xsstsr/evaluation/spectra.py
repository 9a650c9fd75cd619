"""Zonal wavenumber spectra (rows by :func:`scipy.signal.periodogram`), streamed by block."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from ..cf.criteria import find_fields, regular_spacing
from ..errors import InputDataError, OptionError
from .subsets import KM_PER_DEGREE


def _row_spectra(block: np.ndarray, dx: float, cos_lat: np.ndarray) -> dict[str, Any]:
    """Sums of the one-sided PSD of every (lat) row of a (..., lat, lon) block.

    Two accumulations: rows without NaN only ("skip"), and rows at least half ocean with
    NaN filled by linear interpolation along the row ("fill").
    """
    x = np.asarray(block, dtype="float64")
    n = x.shape[-1]
    rows = x.reshape(-1, n)
    cos_rows = np.broadcast_to(cos_lat, x.shape[:-1]).reshape(-1)
    finite = np.isfinite(rows)
    complete = finite.all(axis=1)
    fillable = finite.mean(axis=1) >= 0.5
    filled = rows[fillable].copy()
    idx = np.arange(n)
    for i in np.nonzero(~np.isfinite(filled).all(axis=1))[0]:
        ok = np.isfinite(filled[i])
        filled[i] = np.interp(idx, idx[ok], filled[i][ok])
    out: dict[str, Any] = {}
    for mode, data, cos_used in (
        ("skip", rows[complete], cos_rows[complete]),
        ("fill", filled, cos_rows[fillable]),
    ):
        out[mode] = (_psd(data, dx).sum(axis=0), data.shape[0], float(cos_used.sum()))
    out["n"] = n
    return out


def _psd(rows: np.ndarray, dx: float) -> np.ndarray:
    """One-sided PSD (per cycle per unit of ``dx``) of linearly detrended, Hann-windowed rows."""
    from scipy.signal import periodogram

    if rows.shape[0] == 0:
        return np.zeros((0, rows.shape[1] // 2 + 1))
    # density scaling corrects for the window, so the PSD integrates to the row's variance
    _, psd = periodogram(
        rows, fs=1.0 / dx, window="hann", detrend="linear", scaling="density", axis=-1
    )
    return np.asarray(psd)


def _merge_spectra(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": parts[0]["n"]}
    for mode in ("skip", "fill"):
        out[mode] = (
            sum(p[mode][0] for p in parts),
            sum(p[mode][1] for p in parts),
            sum(p[mode][2] for p in parts),
        )
    return out


def spectrum_task(
    obj: xr.Dataset | xr.DataArray,
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
) -> tuple[Any, float, str]:
    """Lazy (or computed) row-spectra sums of a field, its lon spacing in degrees, its name."""
    import dask.array as dsa

    da, fields = find_fields(obj, variable, lat, lon)
    lat_dim, lon_dim = fields.lat, fields.lon
    dx = abs(regular_spacing(da[lon_dim].values, lon_dim))
    if da.sizes[lon_dim] < 4:
        raise InputDataError(f"a spectrum needs at least 4 longitudes, got {da.sizes[lon_dim]}.")
    order = [*(d for d in da.dims if d not in (lat_dim, lon_dim)), lat_dim, lon_dim]
    da = da.transpose(*order)
    cos_lat = np.cos(np.deg2rad(np.asarray(da[lat_dim].values, dtype="float64")))
    data = da.data
    if not isinstance(data, dsa.Array):
        return _row_spectra(data, dx, cos_lat), dx, str(da.name or "sst")
    import dask

    data = data.rechunk({data.ndim - 1: -1})
    bounds = np.concatenate([[0], np.cumsum(data.chunks[-2])])
    blocks = data.to_delayed()
    one = dask.delayed(_row_spectra, pure=True)
    parts = []
    for index in np.ndindex(blocks.shape):
        iy = index[-2]
        parts.append(one(blocks[index], dx, cos_lat[bounds[iy] : bounds[iy + 1]]))
    merge = dask.delayed(_merge_spectra, pure=True)
    while len(parts) > 1:
        parts = [merge(*parts[i : i + 8]) for i in range(0, len(parts), 8)]
    return parts[0], dx, str(da.name or "sst")


def zonal_spectrum(
    obj: xr.Dataset | xr.DataArray,
    *,
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
    units: str = "degree",
    nan: str = "auto",
) -> xr.DataArray:
    """The 1-D zonal wavenumber power spectrum, averaged over latitude rows and time.

    Each row along longitude is linearly detrended, multiplied by a Hann window and
    Fourier transformed; the one-sided power spectral density is normalised so that it
    integrates to the row's variance (Parseval, corrected for the window), and averaged
    over rows (every latitude, time step and other dim).

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        SST on a regular lat/lon grid; dask-backed input is reduced block by block.
    units : {"degree", "km"}
        Wavenumber in cycles per degree of longitude, or per km at the mean latitude of the
        rows used (1 degree = 111.195 km x cos(lat)).
    nan : {"auto", "skip", "fill"}
        Land handling: ``"skip"`` uses only rows without NaN; ``"fill"`` also uses rows at
        least half ocean, with NaN filled by linear interpolation along the row; ``"auto"``
        skips when any complete row exists, else fills.

    Returns
    -------
    xarray.DataArray
        PSD (K^2 per cycle per degree, or per km) on a ``wavenumber`` coordinate (zero
        excluded), with attributes ``rows`` (rows averaged), ``nan`` (mode used) and
        ``nyquist`` (the grid's Nyquist wavenumber).
    """
    check_spectrum_options(units, nan)
    import dask

    task, dx, name = spectrum_task(obj, variable, lat, lon)
    (parts,) = dask.compute(task)
    mode = nan if nan != "auto" else ("skip" if parts["skip"][1] else "fill")
    return spectrum_from_parts(parts, dx, mode, units, name)


def check_spectrum_options(units: object, nan: object) -> None:
    """Raise :class:`OptionError` unless ``units`` and ``nan`` are among their choices."""
    if not isinstance(units, str) or units not in ("degree", "km"):
        raise OptionError(f"units must be 'degree' or 'km', got {units!r}.")
    if not isinstance(nan, str) or nan not in ("auto", "skip", "fill"):
        raise OptionError(f"nan must be 'auto', 'skip' or 'fill', got {nan!r}.")


def spectrum_from_parts(
    parts: Mapping[str, Any], dx: float, mode: str, units: str, name: str
) -> xr.DataArray:
    """Finish a spectrum from the summed row spectra (see :func:`zonal_spectrum`)."""
    total, rows, cos_sum = parts[mode]
    if rows == 0:
        raise InputDataError(
            "no latitude row of the field is "
            + (
                "free of land (NaN); use nan='fill'."
                if mode == "skip"
                else "at least half ocean; a zonal spectrum needs longer stretches of sea."
            )
        )
    total = np.asarray(total, dtype="float64")
    n = int(parts["n"])
    psd = total[1:] / rows
    k = np.arange(1, total.size) / (n * dx)
    nyquist = 1.0 / (2.0 * dx)
    unit_k, unit_psd = "cycles per degree", "K2 degree"
    if units == "km":
        scale = KM_PER_DEGREE * (cos_sum / rows)
        k, psd, nyquist = k / scale, psd * scale, nyquist / scale
        unit_k, unit_psd = "cycles per km", "K2 km"
    out = xr.DataArray(
        psd,
        dims="wavenumber",
        coords={
            "wavenumber": ("wavenumber", k, {"units": unit_k, "long_name": "zonal wavenumber"})
        },
        name=f"{name}_psd",
        attrs={
            "units": unit_psd,
            "long_name": "zonal power spectral density",
            "rows": int(rows),
            "nan": mode,
            "nyquist": float(nyquist),
        },
    )
    return out
