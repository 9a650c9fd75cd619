"""Catalogue rows: writes refused before any compute (the path, the attributes, an
existing destination). The destination's files are part of each row's input, so the
framework checks that their bytes are unchanged; a directory is watched through a file
inside it. The full disk and the no-compute proofs are in tests/test_io.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from catalogue import Case, field

import xsstsr
from xsstsr.io import write_dataset

E = xsstsr


def lazy() -> xr.Dataset:
    return field().chunk(time=1).to_dataset()


def write(path: Path, **kwargs: Any) -> Callable[[Any], Any]:
    """write_dataset(input[0], path): the tuple's other elements are files to watch."""
    return lambda obj: write_dataset(obj[0], path, **kwargs)


def with_attr(where: str, key: str, value: Any) -> xr.Dataset:
    ds = lazy()
    (ds if where == "dataset" else ds[where]).attrs[key] = value
    return ds


def attr_row(where: str, key: str, value: Any) -> Callable[[Any], Any]:
    """A row's builder: a dataset with one attribute netCDF cannot store, and its path."""
    return lambda env: ((with_attr(where, key, value), env.tmp / "a.nc"), write(env.tmp / "a.nc"))


def _parent_is_a_file(env):
    notes = env.tmp / "notes"
    notes.write_text("a file, not a folder")
    return (lazy(), notes), write(notes / "out.nc")


def _netcdf_path_is_a_directory(env):
    folder = env.tmp / "out.nc"
    folder.mkdir()
    (folder / "keep.txt").write_text("kept")
    return (lazy(), folder / "keep.txt"), write(folder, overwrite=True)


def _zarr_path_is_a_file(env):
    path = env.tmp / "out.zarr"
    path.write_bytes(b"not a store")
    return (lazy(), path), write(path, overwrite=True)


def _directory_not_a_store(env):
    folder = env.tmp / "results.zarr"
    folder.mkdir()
    (folder / "table.csv").write_text("a,b\n1,2\n")
    return (lazy(), folder / "table.csv"), write(folder, overwrite=True)


def _existing_netcdf(env):
    path = env.tmp / "out.nc"
    write_dataset(field() + 100.0, path)
    return (lazy(), path), lambda obj: obj[0].sstsr.write(obj[1])


def _existing_store(env):
    path = env.tmp / "out.zarr"
    write_dataset(field() + 100.0, path)
    (metadata,) = [p for p in path.iterdir() if p.is_file() and "zarr" in p.name]
    return (lazy(), metadata), write(path)


def _downscaled_bool_attr(env):
    da = field().assign_attrs(quality_checked=True)
    return (da, env.tmp / "x4.nc"), lambda obj: xsstsr.downscale(
        obj[0], model=env.m4, device="cpu"
    ).sstsr.write(obj[1])


CASES: list[Case] = [
    Case(
        "write-parent-is-a-file",
        _parent_is_a_file,
        E.WriteError,
        OSError,
        r"'.*notes' is a file, not a folder; choose an output path in a folder",
    ),
    Case(
        "write-netcdf-path-is-a-directory",
        _netcdf_path_is_a_directory,
        E.WriteError,
        OSError,
        r"a netCDF output is a single file; choose another name",
    ),
    Case(
        "write-zarr-path-is-a-file",
        _zarr_path_is_a_file,
        E.WriteError,
        OSError,
        r"a zarr store is a directory; choose another name",
    ),
    Case(
        "write-over-a-directory-not-a-store",
        _directory_not_a_store,
        E.WriteError,
        OSError,
        r"not a zarr store, and replacing it would delete what it holds",
    ),
    Case(
        "write-existing-file-without-overwrite",
        _existing_netcdf,
        E.WriteError,
        OSError,
        r"exists; pass overwrite=True to replace it",
    ),
    Case(
        "write-existing-store-without-overwrite",
        _existing_store,
        E.WriteError,
        OSError,
        r"exists; pass overwrite=True to replace it",
    ),
    Case(
        "write-bool-attr",
        attr_row("dataset", "converged", True),
        E.WriteError,
        OSError,
        r"attribute 'converged' of the dataset is a bool.*int\(\) for a bool",
    ),
    Case(
        "write-dict-attr",
        attr_row("sst", "provenance", {"run": 1}),
        E.WriteError,
        OSError,
        r"attribute 'provenance' of variable 'sst' is a dict.*json\.dumps\(\)",
    ),
    Case(
        "write-list-attr",
        attr_row("sst", "bounds", [[0, 1], [2, 3]]),
        E.WriteError,
        OSError,
        r"attribute 'bounds' of variable 'sst' is a nested list.*convert it",
    ),
    Case(
        "write-none-attr",
        attr_row("dataset", "comment", None),
        E.WriteError,
        OSError,
        r"attribute 'comment' of the dataset is None.*or drop it",
    ),
    Case(
        "write-coordinate-attr",
        attr_row("lat", "regular", np.bool_(True)),
        E.WriteError,
        OSError,
        r"attribute 'regular' of coordinate 'lat' is a bool",
    ),
    Case(
        "write-downscaled-bool-attr",
        _downscaled_bool_attr,
        E.WriteError,
        OSError,
        r"attribute 'quality_checked' of variable 'sst' is a bool",
    ),
    Case(
        "write-unknown-extension",
        lambda env: ((lazy(), env.tmp / "out.h5"), write(env.tmp / "out.h5")),
        E.InputDataError,
        ValueError,
        r"from its extension; use one of",
    ),
]
