"""Cut the small real-data test fixture ``tests/data/coads_subset.nc``.

The fixture is a subset of NOAA's COADS monthly climatology as shipped by the Debian
package ``ferret-datasets`` (public domain): the ``SST`` variable only, the first 3
months, 20 latitudes (21N-59N) x 30 longitudes (COADSX 321-379, i.e. 39W-19E, which
crosses the 360 wrap of ferret's 21..379 axis and includes European/African land). The
ORIGINAL variable names, coordinate names, attributes, fill values and file format
(NetCDF-3 classic) are kept, so tests can exercise coordinate detection on them.

Usage::

    python scripts/make_fixtures.py [--source FILE_OR_DIR] [--out tests/data/coads_subset.nc]

Without ``--source`` the file is looked up like :func:`xsstsr.datasets.open_coads_sst`
does (``$XSSTSR_FERRET_DIR``, then ``/usr/share/ferret-vis/data``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import netCDF4
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TIME_SLICE = slice(0, 3)
LAT_VALUES = (21.0, 59.0)  # COADSY, inclusive: 20 points
LON_VALUES = (321.0, 379.0)  # COADSX, inclusive: 30 points


def _index_range(values: np.ndarray, lo: float, hi: float) -> slice:
    idx = np.flatnonzero((values >= lo) & (values <= hi))
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _copy_attrs(src: netCDF4.Variable | netCDF4.Dataset, dst: object) -> None:
    for name in src.ncattrs():
        if name != "_FillValue":  # set at creation time
            dst.setncattr(name, src.getncattr(name))  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "coads_subset.nc")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from xsstsr.datasets.files import _find_ferret_file

    source = _find_ferret_file("coads_climatology.cdf", args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with (
        netCDF4.Dataset(source) as src,
        netCDF4.Dataset(args.out, "w", format="NETCDF3_CLASSIC") as dst,
    ):
        src.set_auto_maskandscale(False)  # copy the raw values, fill values included
        ysl = _index_range(src["COADSY"][:], *LAT_VALUES)
        xsl = _index_range(src["COADSX"][:], *LON_VALUES)
        slices = {"TIME": TIME_SLICE, "COADSY": ysl, "COADSX": xsl}
        _copy_attrs(src, dst)
        dst.setncattr(
            "history",
            f"{src.getncattr('history')}\nsubset by xsstsr scripts/make_fixtures.py "
            "(SST, first 3 months, COADSY 21..59, COADSX 321..379)",
        )
        for dim in ("COADSX", "COADSY", "TIME"):
            size = None if src.dimensions[dim].isunlimited() else len(src[dim][slices[dim]])
            dst.createDimension(dim, size)
        for name in ("COADSX", "COADSY", "TIME", "SST"):
            var = src[name]
            fill = var.getncattr("_FillValue") if "_FillValue" in var.ncattrs() else None
            out = dst.createVariable(name, var.dtype, var.dimensions, fill_value=fill)
            _copy_attrs(var, out)
            out.set_auto_maskandscale(False)
            out[:] = var[tuple(slices[d] for d in var.dimensions)]
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB) from {source}")


if __name__ == "__main__":
    main()
