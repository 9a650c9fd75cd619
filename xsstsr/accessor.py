"""The ``.sstsr`` accessor on Dataset and DataArray: a thin front over plain functions.

It keeps the object and nothing else (xarray makes a new accessor for every new
object); each method calls the function that owns the work, which also works
without the accessor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import xarray as xr

if TYPE_CHECKING:
    import os
    from pathlib import Path

    import pandas as pd
    from matplotlib.figure import Figure

    from .model import Model


class SSTSRAccessor:
    """``obj.sstsr``: downscale, fit, evaluate and plot SST with xsstsr."""

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    def downscale(self, factor: float | None = None, **kwargs: Any) -> xr.Dataset | xr.DataArray:
        """Downscale onto a finer grid; see :func:`xsstsr.downscale`."""
        from .downscale import downscale

        return downscale(self._obj, factor, **kwargs)

    def fit(self, stations: Any = None, **kwargs: Any) -> Model:
        """Train a generator on this data; see :func:`xsstsr.fit`."""
        from .training import fit

        return fit(self._obj, stations, **kwargs)

    def evaluate(self, truth: Any = None, stations: Any = None, **kwargs: Any) -> pd.DataFrame:
        """Skill scores of this (downscaled) field against truth and/or stations.

        See :func:`xsstsr.evaluate`.
        """
        from .evaluation import evaluate

        return evaluate(self._obj, truth, stations, **kwargs)

    def write(self, path: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Compute and write to netCDF or zarr, atomically; zarr in passes of a few time
        chunks, so memory stays flat however long the record. See
        :func:`xsstsr.io.write_dataset`."""
        from .io import write_dataset

        return write_dataset(self._obj, path, **kwargs)

    def plot_compare(self, **kwargs: Any) -> Figure:
        """This (downscaled) field beside the coarse input and truth; see :func:`plot_compare`."""
        from .plotting import plot_compare

        return plot_compare(self._obj, **kwargs)

    def plot_spectrum(self, **kwargs: Any) -> Figure:
        """Wavenumber power spectra; see :func:`xsstsr.plot_spectrum`."""
        from .plotting import plot_spectrum

        return plot_spectrum(self._obj, **kwargs)

    def plot_stations(self, stations: Any, **kwargs: Any) -> Figure:
        """Station time series against this field; see :func:`xsstsr.plot_stations`."""
        from .plotting import plot_stations

        return plot_stations(self._obj, stations, **kwargs)


xr.register_dataset_accessor("sstsr")(SSTSRAccessor)
xr.register_dataarray_accessor("sstsr")(SSTSRAccessor)
