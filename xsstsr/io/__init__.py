"""Files: opening netCDF and zarr, and writing them atomically (zarr streamed in passes of a
few time chunks, so memory stays flat however long the record)."""

from __future__ import annotations

from .atomic import PARTIAL_SUFFIX, sweep_stale, temporary_sibling, write_atomic
from .write import (
    check_destination,
    check_file_destination,
    check_netcdf_attrs,
    open_any,
    output_format,
    write_dataset,
)

__all__ = [
    "PARTIAL_SUFFIX",
    "check_destination",
    "check_file_destination",
    "check_netcdf_attrs",
    "open_any",
    "output_format",
    "sweep_stale",
    "temporary_sibling",
    "write_atomic",
    "write_dataset",
]
