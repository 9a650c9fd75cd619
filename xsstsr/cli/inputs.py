"""Opening what a user names on the command line: input files as they come, stations, outputs."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr


def with_units(ds: xr.Dataset, variable: Any, units: str | None) -> xr.Dataset:
    """``ds`` with ``--units`` set on the SST variable (a copy; None leaves it as it is)."""
    if units is None:
        return ds
    from ..cf.criteria import find_sst_variable

    name = find_sst_variable(ds, variable)
    out = ds.copy()
    out[name] = out[name].assign_attrs(units=units)
    return out


def check_outputs(out: str, *, overwrite: bool, png: Path | None = None) -> None:
    """OUT's extension and folder, and an existing OUT (or PNG) without --overwrite."""
    from ..errors import WriteError
    from ..io import check_destination

    check_destination(out, overwrite=overwrite, overwrite_hint="use --overwrite")
    if png is not None and not png.expanduser().resolve().parent.is_dir():
        raise WriteError(
            f"the folder of {str(png)!r} does not exist; create it or choose another --png."
        )
    if png is not None and png.exists() and not overwrite:
        raise WriteError(
            f"{str(png)!r} exists; use --overwrite to replace it, or choose another --png."
        )


def refuse_an_input_as_output(out: str, **inputs: str | None) -> None:
    """An output path that is one of the command's inputs is refused, --overwrite or not:
    writing it would destroy what is being read."""
    from ..errors import WriteError

    target = Path(out).expanduser().resolve()
    for what, given in inputs.items():
        if given and Path(given).expanduser().resolve() == target:
            raise WriteError(
                f"{out!r} is also {what}: writing it would destroy the input; choose another "
                "output path."
            )


# xarray's notice when it falls back to cftime: expected here, and no use to a CLI user
_CFTIME_NOTICE = "Unable to decode time axis into full numpy.datetime64"


_YEAR_ZERO = re.compile(r"\bsince\s+0+-")


_NO_YEAR_ZERO = (None, "standard", "gregorian")  # CF calendars without a year 0


def open_input(path: str, *, chunks: Any, what: str) -> tuple[xr.Dataset, dict[Any, Any]]:
    """Open a netCDF file or zarr store as it comes, for the commands.

    Times decode to datetime64 where they fit and to cftime dates otherwise (other
    calendars, dates before 1678). A "since 0000-..." reference in the standard calendar
    (ferret's and COARDS climatologies) has no year 0 there, so it is decoded in the
    proleptic_gregorian calendar, which has one; a time that still cannot be decoded is
    kept as numbers. Both warn. ``--chunks`` must name the file's dimensions. Dimensions
    without coordinate values take them from the one 1-D latitude or longitude data
    variable along them (NCL's ``lat(latitude)``).

    Returns
    -------
    xarray.Dataset, dict
        The dataset and the dimensions renamed (old -> new) by the last step, so that
        ``--lat``/``--lon`` may name either.
    """
    import xarray as xr

    from ..errors import DataFileNotFoundError
    from ..io import output_format

    kind = output_format(path)
    if not Path(path).exists():
        raise DataFileNotFoundError(f"{what} {path!r} does not exist; check the path.")
    opener = xr.open_zarr if kind == "zarr" else xr.open_dataset
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CFTIME_NOTICE)
        try:
            ds = opener(path, chunks=chunks)
        except ValueError as err:
            if "decode time" not in str(err) and "decode_times" not in str(err):
                raise
            ds = _decode_times_as_possible(opener(path, chunks=chunks, decode_times=False), what)
    _check_chunks(ds, chunks, what)
    ds, renamed = _coordinates_from_variables(ds, what)
    return _without_cyclic_point(ds, what), renamed


def _without_cyclic_point(ds: xr.Dataset, what: str) -> xr.Dataset:
    """Drop a last meridian that repeats the first (``0, 2, ..., 358, 360``, as NCL's files
    add for plotting) when its values are a copy of the first's: in Python the library
    refuses it with the same ``isel``; a command line has no place to run that."""
    import numpy as np

    from ..cf.criteria import has_cyclic_point, regular_spacing
    from ..errors import GridError, warn_user

    for dim in list(ds.dims):
        if dim not in ds.coords or ds.sizes[dim] < 3 or _axis_of(dim, ds[dim]) != "longitude":
            continue
        lon = np.asarray(ds[dim].values, dtype="float64")
        if lon.ndim != 1 or not np.isclose(abs(lon[-1] - lon[0]), 360.0):
            continue
        try:
            step = regular_spacing(lon, dim)
        except GridError:  # irregular: the library's own check says what to do
            continue
        if not has_cyclic_point(lon, step):
            continue
        along = [name for name, var in ds.data_vars.items() if dim in var.dims]
        if all(
            np.array_equal(ds[n].isel({dim: 0}).values, ds[n].isel({dim: -1}).values, True)
            for n in along
        ):
            warn_user(
                f"{what}: dropped the last {str(dim)!r} column ({lon[-1]:g}), a copy of the "
                f"first ({lon[0]:g}) (a cyclic point); the grid is global without it."
            )
            ds = ds.isel({dim: slice(0, -1)})
    return ds


def _time_like(ds: xr.Dataset) -> list[Any]:
    return [
        name
        for name, var in ds.variables.items()
        if isinstance(var.attrs.get("units"), str) and " since " in var.attrs["units"]
    ]


def _decode_times_as_possible(raw: xr.Dataset, what: str) -> xr.Dataset:
    """``raw`` (opened with decode_times=False) with what can be decoded, decoded."""
    import xarray as xr

    from ..errors import XsstsrWarning, warn_user

    names = _time_like(raw)
    fixed = raw.copy()
    year_zero = []
    for name in names:
        attrs = fixed[name].attrs
        if _YEAR_ZERO.search(attrs["units"]) and attrs.get("calendar") in _NO_YEAR_ZERO:
            fixed[name].attrs = {**attrs, "calendar": "proleptic_gregorian"}
            year_zero.append(name)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CFTIME_NOTICE)
            decoded = xr.decode_cf(fixed, mask_and_scale=False, decode_coords=False)
    except ValueError as err:
        units = {str(n): raw[n].attrs["units"] for n in names}
        reason = str(err).splitlines()[0].split(". Try ")[0]  # not xarray's advice to us
        warn_user(
            f"{what}: cannot decode the time of {units} ({reason}); it is "
            "kept as the numbers in the file, in those units, so the model's time window "
            "and its time-step check read them as numbers. Give the time variable a "
            "'units' and 'calendar' that cftime can decode to have dates.",
            XsstsrWarning,
        )
        return raw
    if year_zero:
        warn_user(
            f"{what}: the time of {[str(n) for n in year_zero]} counts from year 0, which "
            "the standard calendar lacks; decoded in the proleptic_gregorian calendar "
            "(which has it), as the output's calendar attribute says.",
            XsstsrWarning,
        )
    return decoded


def _check_chunks(ds: xr.Dataset, chunks: Any, what: str) -> None:
    """xarray ignores chunks for dimensions a file has not: a typo would go unnoticed."""
    from ..errors import OptionError

    if not isinstance(chunks, dict):
        return
    unknown = [name for name in chunks if name not in ds.dims]
    if unknown:
        raise OptionError(
            f"--chunks names {unknown}, which {what} has not; its dimensions are "
            f"{[str(d) for d in ds.dims]}: use those (e.g. --chunks {next(iter(ds.dims))}=8)."
        )


def _axis_of(name: Any, var: xr.DataArray) -> str | None:
    """The axis ("latitude" or "longitude") ``var`` looks like by its CF attributes, or by
    a common name without length units; None when neither."""
    from ..cf.criteria import COORD_CRITERIA, LENGTH_UNITS

    units = var.attrs.get("units")
    for axis, criteria in COORD_CRITERIA.items():
        for key in ("standard_name", "units", "axis"):
            if var.attrs.get(key) in criteria[key]:
                return axis
        if (
            len(str(name)) > 1
            and name in criteria["names"]
            and not (isinstance(units, str) and units.strip().lower() in LENGTH_UNITS)
        ):
            return axis
    return None


def _coordinates_from_variables(ds: xr.Dataset, what: str) -> tuple[xr.Dataset, dict[Any, Any]]:
    """Make latitude/longitude data variables coordinates: the one 1-D variable along a
    dimension without coordinate values becomes that dimension (``lat(latitude)`` ->
    ``lat(lat)``); 2-D ones become coordinates, so the grid check names them."""
    from ..errors import CoordinateError

    looks = {name: _axis_of(name, var) for name, var in ds.data_vars.items()}
    looks = {name: axis for name, axis in looks.items() if axis is not None}
    renamed: dict[Any, Any] = {}
    for dim in list(ds.dims):
        if dim in ds.coords:
            continue
        along = [name for name in looks if ds[name].dims == (dim,) and name not in ds.dims]
        if len(along) > 1:
            fix = (
                f"ds.set_coords([{str(along[0])!r}]).swap_dims({{{str(dim)!r}: {str(along[0])!r}}})"
            )
            raise CoordinateError(
                f"{what} has no coordinate values on dimension {str(dim)!r} and several 1-D "
                f"variables along it that could hold them: {[str(n) for n in along]}. Make "
                f"one the coordinate and write the file again, e.g. in Python ds = {fix}, "
                "then ds.to_netcdf(...)."
            )
        if along:
            ds = ds.set_coords(along).swap_dims({dim: along[0]})
            renamed[dim] = along[0]
    grids = [name for name in looks if name in ds.data_vars and ds[name].ndim > 1]
    return (ds.set_coords(grids) if grids else ds), renamed


def read_stations_csv(path: str) -> Any:
    import pandas as pd

    if not Path(path).is_file():
        from ..errors import DataFileNotFoundError

        raise DataFileNotFoundError(
            f"station file {path!r} does not exist; check the --stations path."
        )
    return pd.read_csv(path, dtype={"station": str})
