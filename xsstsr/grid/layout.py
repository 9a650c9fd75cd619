"""Canonical layout: the order (ascending lat/lon, sorted time) a model runs in, and back."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..cf.criteria import regular_spacing
from ..errors import (
    CoordinateError,
    TimeAxisWarning,
    warn_user,
)

#: Days in each CF/udunits time unit an undecoded time axis may count in ("hours since ...").
TIME_UNIT_DAYS = {
    **dict.fromkeys(("second", "seconds", "sec", "secs", "s"), 1 / 86400),
    **dict.fromkeys(("minute", "minutes", "min", "mins"), 1 / 1440),
    **dict.fromkeys(("hour", "hours", "hr", "hrs", "h"), 1 / 24),
    **dict.fromkeys(("day", "days", "d"), 1.0),
    **dict.fromkeys(("week", "weeks"), 7.0),
    # udunits: a month is a twelfth of a tropical year
    **dict.fromkeys(("month", "months"), 365.242198781 / 12),
    **dict.fromkeys(("year", "years", "yr", "yrs"), 365.242198781),
}


def time_as_days(values: np.ndarray) -> np.ndarray:
    """Datetime, cftime or undecoded numeric time values as float days (for order and gaps;
    numeric values as they are: see :func:`numeric_time_unit_days` for their unit)."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.datetime64):
        return values.astype("datetime64[ns]").astype("int64") / 86400e9
    if values.dtype == object:
        # differences from the first date: defined in every cftime calendar, year 0 included
        first = values.ravel()[0]
        return np.array([(v - first).total_seconds() / 86400.0 for v in values.ravel()])
    return values.astype("float64")


def numeric_time_unit_days(units: object) -> float | None:
    """Days in the unit of an undecoded CF time axis ("hours since 0000-01-01" -> 1/24);
    1 when there are no units, None when they name no known time unit."""
    if units is None or not str(units).strip():
        return 1.0
    return TIME_UNIT_DAYS.get(str(units).strip().split()[0].lower())


@dataclass(frozen=True)
class Layout:
    """How the input departs from the order the model runs in (latitude and longitude
    ascending, time increasing), so that the answer does not depend on it: the input is
    put in canonical order and the result back in the input's."""

    flipped: tuple[Hashable, ...] = ()
    time: Hashable | None = None
    time_order: np.ndarray | None = None  # the permutation that sorts time, when unsorted

    def canonical(self, da: xr.DataArray) -> xr.DataArray:
        out = da.isel({dim: slice(None, None, -1) for dim in self.flipped}) if self.flipped else da
        if self.time_order is not None:
            out = out.isel({self.time: self.time_order})
        return out

    def restore(self, da: xr.DataArray) -> xr.DataArray:
        out = da
        if self.time_order is not None:
            out = out.isel({self.time: np.argsort(self.time_order)})
        if self.flipped:
            out = out.isel({dim: slice(None, None, -1) for dim in self.flipped})
        return out


def canonical_layout(
    da: xr.DataArray, lat: Hashable, lon: Hashable, time: Hashable | None, window: int
) -> Layout:
    """The :class:`Layout` of ``da``; refuses duplicated time steps and warns when the
    model's time window would span a gap in the time axis."""
    flipped = tuple(dim for dim in (lat, lon) if regular_spacing(da[dim].values, dim) < 0)
    if time is None or time not in da.coords:
        return Layout(flipped=flipped)
    days = time_as_days(da[time].values)  # order and gaps only: any unit does
    order = np.argsort(days, kind="stable")
    ordered = days[order]
    steps = np.diff(ordered)
    if np.any(steps == 0):
        dup = da[time].values[order][1:][steps == 0][0]
        raise CoordinateError(
            f"{time!r} has duplicated steps (e.g. {dup}); drop them with "
            f"ds.drop_duplicates({str(time)!r}) or average them with ds.groupby({str(time)!r})"
            ".mean()."
        )
    if window > 1 and steps.size > 1:
        typical = float(np.median(steps))
        gaps = np.flatnonzero(steps > 1.5 * typical)
        if gaps.size:
            values = da[time].values[order]
            i = int(gaps[0])
            warn_user(
                f"{time!r} has {gaps.size} gap(s) longer than 1.5 times its typical step "
                f"(e.g. {values[i]} -> {values[i + 1]}); the model's window of {window} steps "
                "spans them, so steps just after a gap see frames from before it. Split the "
                f"record at the gap (ds.sel({time}=slice(...))) or fill the missing steps "
                f"(e.g. ds.resample({time}=...).asfreq()).",
                TimeAxisWarning,
            )
    sorted_already = bool(np.all(order == np.arange(order.size)))
    return Layout(flipped=flipped, time=time, time_order=None if sorted_already else order)
