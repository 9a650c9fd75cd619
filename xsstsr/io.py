"""Writing results: netCDF or zarr chosen by extension, atomically, with dask's progress bar.

The data is written to a temporary sibling of the destination and renamed into
place only once complete, so an interrupted or failed run leaves no partial file
at the destination (and an existing file there is kept until the new one is whole).
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import xarray as xr

from .errors import InputDataError

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
ZARR_SUFFIXES = (".zarr",)


def output_format(path: str | os.PathLike[str]) -> str:
    """``"netcdf"`` or ``"zarr"`` from the file name; a clear error otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix in NETCDF_SUFFIXES:
        return "netcdf"
    if suffix in ZARR_SUFFIXES:
        return "zarr"
    raise InputDataError(
        f"cannot tell the format of {str(path)!r} from its extension; use one of "
        f"{NETCDF_SUFFIXES + ZARR_SUFFIXES}."
    )


def open_any(path: str | os.PathLike[str], chunks: Any = None) -> xr.Dataset:
    """Open a netCDF file or a zarr store (by extension), lazily with ``chunks``."""
    kind = output_format(path)
    if not Path(path).exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist.")
    if kind == "zarr":
        return xr.open_zarr(path, chunks=chunks)
    return xr.open_dataset(path, chunks=chunks)


def _encoding(ds: xr.Dataset, kind: str) -> dict[str, dict[str, Any]]:
    """Compression for float variables; chunking follows the dask chunks."""
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.data_vars.items():
        if var.dtype.kind != "f":
            continue
        if kind == "netcdf":
            enc: dict[str, Any] = {"zlib": True, "complevel": 4}
            if var.chunks is not None:
                enc["chunksizes"] = tuple(c[0] for c in var.chunks)
            encoding[str(name)] = enc
    return encoding


def write_dataset(
    ds: xr.Dataset | xr.DataArray,
    path: str | os.PathLike[str],
    *,
    progress: bool = False,
    overwrite: bool = True,
) -> Path:
    """Compute and write ``ds`` to ``path`` (netCDF or zarr), atomically.

    Examples
    --------
    >>> write_dataset(hi, "sst_x4.zarr", progress=True)  # doctest: +SKIP
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "sst")
    path = Path(path)
    kind = output_format(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass overwrite=True or remove it.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    bar: Any = nullcontext()
    if progress:
        from dask.diagnostics import ProgressBar

        bar = ProgressBar()
    try:
        with bar:
            if kind == "zarr":
                ds.to_zarr(tmp, mode="w", encoding=_encoding(ds, kind))
            else:
                ds.to_netcdf(tmp, encoding=_encoding(ds, kind))
        _replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    return path


def _replace(tmp: Path, path: Path) -> None:
    if tmp.is_dir():  # a zarr store: directories cannot be swapped in one rename
        old = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.old")
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        _remove(old)
    else:
        os.replace(tmp, path)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()
