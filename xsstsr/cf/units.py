"""SST units and values: unit aliases, the one kelvin conversion, fill values, physical range."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import xarray as xr

from ..errors import (
    InputDataError,
    UnitsError,
)

# Canonical unit -> accepted spellings (compared case-insensitively, spaces removed).
UNIT_ALIASES: dict[str, tuple[str, ...]] = {
    "degC": (
        "degc",
        "degreec",
        "degreesc",
        "degree_c",
        "degrees_c",
        "degree_celsius",
        "degrees_celsius",
        "celsius",
        "°c",
        "deg_c",
        "c",
    ),
    "K": ("k", "kelvin", "kelvins", "degk", "degree_k", "degrees_k", "deg_k"),
}


KELVIN_OFFSET = 273.15


def canonical_units(units: object, name: Hashable = "the SST") -> str:
    """Map a units attribute to ``"degC"`` or ``"K"``."""
    if units is not None and not isinstance(units, str):
        raise UnitsError(
            f"{name} has units {units!r} ({type(units).__name__}), not a string; set it, e.g. "
            "da.attrs['units'] = 'degC' (or 'K')."
        )
    if not isinstance(units, str) or not units.strip():
        raise UnitsError(
            f"{name} has no units attribute; set it, e.g. da.attrs['units'] = 'degC' (or 'K')."
        )
    key = units.strip().lower().replace(" ", "_").replace("degrees", "degrees")
    key = key.replace("deg._", "deg").replace("°_", "°")
    for canonical, aliases in UNIT_ALIASES.items():
        if key in aliases or key.replace("_", "") in {a.replace("_", "") for a in aliases}:
            return canonical
    raise UnitsError(
        f"{name} has units {units!r}, which is not a temperature unit xsstsr knows; "
        "use 'degC' or 'K' (set da.attrs['units'])."
    )


#: Where sea surface temperature can lie, in degC (seawater freezes at about -1.9 degC;
#: a margin for skin and lake temperatures). Values outside are refused, not clipped.
PHYSICAL_RANGE_DEGC: tuple[float, float] = (-5.0, 45.0)


#: The output's physical bounds in degC: seawater freezes at about -1.9 degC; 40 degC is
#: above any observed open-ocean SST. Every result is clipped to them (recorded in attrs).
OUTPUT_BOUNDS_DEGC: tuple[float, float] = (-1.9, 40.0)


#: Attributes that flag missing or invalid values of undecoded data (CF section 2.5.1).
FILL_ATTRS: tuple[str, ...] = (
    "_FillValue",
    "missing_value",
    "valid_min",
    "valid_max",
    "valid_range",
)


def mask_fill_values(da: xr.DataArray) -> xr.DataArray:
    """``da`` with the values its ``_FillValue``, ``missing_value`` and ``valid_*``
    attributes flag set to NaN (lazily for dask), and those attributes dropped.

    xarray applies these on decoding and moves them to ``encoding``; they remain in
    ``attrs`` when a file was opened with ``mask_and_scale=False`` or an array was built
    by hand. The input is never modified.
    """
    attrs = da.attrs
    if "scale_factor" in attrs or "add_offset" in attrs:
        raise InputDataError(
            f"{da.name or 'the SST'} still has scale_factor/add_offset attributes: its values "
            "are packed, not temperatures. Open the file with mask_and_scale=True (the "
            "default) or decode it with xr.decode_cf(ds)."
        )
    present = [key for key in FILL_ATTRS if key in attrs]
    if not present:
        return da
    numbers = {key: _attr_numbers(attrs[key], key, da.name) for key in present}
    # xarray unpacks values but leaves valid_* in attrs, in packed units (CF 2.5.1)
    scale = float(da.encoding.get("scale_factor", 1.0))
    offset = float(da.encoding.get("add_offset", 0.0))
    for key in ("valid_range", "valid_min", "valid_max"):
        if key in numbers:
            numbers[key] = (
                np.sort(numbers[key] * scale + offset)
                if key == "valid_range"
                else (numbers[key] * scale + offset)
            )
    bad = xr.zeros_like(da, dtype=bool)
    for key in ("_FillValue", "missing_value"):
        if key in numbers:
            # compared in the data's dtype: 1e20 as float32 is not 1e20 as float64
            for value in numbers[key].astype(da.dtype):
                bad = bad | (np.isnan(da) if np.isnan(value) else (da == value))
    if "valid_range" in numbers:
        if numbers["valid_range"].size != 2:
            raise InputDataError(
                f"valid_range of {da.name or 'the SST'} is {attrs['valid_range']!r}, not two "
                "numbers [min, max]; fix it or delete it (del da.attrs['valid_range'])."
            )
        lo, hi = numbers["valid_range"]
        bad = bad | (da < lo) | (da > hi)
    if "valid_min" in numbers:
        bad = bad | (da < numbers["valid_min"][0])
    if "valid_max" in numbers:
        bad = bad | (da > numbers["valid_max"][0])
    out = da.where(~bad)
    out.attrs = {k: v for k, v in attrs.items() if k not in FILL_ATTRS}
    return out


def _attr_numbers(value: object, key: str, name: Hashable) -> np.ndarray:
    try:
        numbers = np.atleast_1d(np.asarray(value, dtype="float64")).ravel()
    except (TypeError, ValueError):
        numbers = np.empty(0)
    if not numbers.size:
        raise InputDataError(
            f"the {key} attribute of {name or 'the SST'} is {value!r}, not a number; fix it "
            f"or delete it (del da.attrs[{key!r}])."
        )
    return numbers


def check_physical_range(celsius: np.ndarray, units: str, name: Hashable = "the SST") -> None:
    """Refuse SST values (``celsius``: in degC, converted from the input's ``units``)
    outside :data:`PHYSICAL_RANGE_DEGC`, saying why.

    Kelvin labelled as degC (or the reverse) gets a ``UnitsError``; other outliers an
    ``InputDataError`` with their count and a hint about fill values. NaN is allowed.
    """
    values = np.asarray(celsius)
    celsius_finite = values[np.isfinite(values)]
    if not celsius_finite.size:
        return
    lo, hi = PHYSICAL_RANGE_DEGC
    outside = (celsius_finite < lo) | (celsius_finite > hi)
    n_out = int(np.count_nonzero(outside))
    if not n_out:
        return
    finite = celsius_finite + KELVIN_OFFSET if units == "K" else celsius_finite  # as labelled
    median = float(np.median(finite))
    if units == "degC" and 250.0 <= median <= 320.0:
        raise UnitsError(
            f"{name} is labelled degC but its values look like kelvin (median {median:.1f}); "
            "set da.attrs['units'] = 'K'."
        )
    if units == "K" and -5.0 <= median <= 45.0:
        raise UnitsError(
            f"{name} is labelled K but its values look like degC (median {median:.1f}); "
            "set da.attrs['units'] = 'degC'."
        )
    low, high = float(finite[outside].min()), float(finite[outside].max())
    hint = " Check the units attribute and mask invalid cells with da.where(...)."
    if low <= -100 or high >= 1000:
        sentinel = low if low <= -100 else high
        hint = (
            f" Values such as {sentinel:g} look like fill values for land or missing data: "
            f"set da.attrs['_FillValue'] = {sentinel:g} (or open the file with "
            "mask_and_scale=True), or mask them with da.where(...)."
        )
    raise InputDataError(
        f"{n_out} of {finite.size} values of {name} lie outside the physical range of sea "
        f"surface temperature ({lo:g} to {hi:g} degC after units; from {low:g} to {high:g} "
        f"{units}).{hint}"
    )


def check_physical_range_of(celsius: xr.DataArray, units: str, name: Hashable = "the SST") -> None:
    """:func:`check_physical_range` for a DataArray: a dask one is reduced chunk by chunk
    (its minimum and maximum), and loaded whole only to word the error when one is out."""
    import dask
    import dask.array as dsa

    if isinstance(celsius.data, dsa.Array):
        lo, hi = dask.compute(celsius.min(), celsius.max())
        low, high = PHYSICAL_RANGE_DEGC
        if not (float(lo) < low or float(hi) > high):  # NaN extremes: nothing finite
            return
    check_physical_range(celsius.values, units, name)


def to_celsius(values: Any, units: str) -> Any:
    """``values`` (numpy, dask, xarray or pandas) in degC, from ``units`` ("K" or "degC").

    The one kelvin conversion of the package: every other module calls this one."""
    return values - KELVIN_OFFSET if units == "K" else values


def from_celsius(values: Any, units: str) -> Any:
    """``values`` in degC back to ``units`` ("K" or "degC")."""
    return values + KELVIN_OFFSET if units == "K" else values
