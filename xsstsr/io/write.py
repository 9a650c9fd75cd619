"""Writing results: netCDF or zarr chosen by extension, atomically, with dask's progress bar.

The data is written to a temporary sibling of the destination and renamed into
place only once complete, so an interrupted or failed run leaves no partial file
at the destination (and an existing file there is kept until the new one is whole).
"""

from __future__ import annotations

import errno
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import DataFileNotFoundError, InputDataError
from .atomic import (
    deferred_interrupts,
    disk_full,
    disk_full_error,
    remove_path,
    replace_atomically,
    sweep_stale,
    temporary_sibling,
    write_error,
)

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
        raise DataFileNotFoundError(f"{str(path)!r} does not exist; check the path.")
    if kind == "zarr":
        return xr.open_zarr(path, chunks=chunks)
    return xr.open_dataset(path, chunks=chunks)


def _encoding(ds: xr.Dataset, kind: str) -> dict[str, dict[str, Any]]:
    """Compression for float variables; chunking follows the dask chunks. Coordinates and
    cell bounds get no _FillValue (CF: they have no missing values; xarray would add NaN)."""
    encoding: dict[str, dict[str, Any]] = {}
    bounds = {var.attrs.get("bounds") for var in ds.variables.values()}
    for name, variable in ds.variables.items():
        plain = name in ds.coords or name in bounds
        if variable.dtype.kind == "f" and plain and "_FillValue" not in variable.encoding:
            encoding[str(name)] = {"_FillValue": None}
    for name, var in ds.data_vars.items():
        if var.dtype.kind != "f":
            continue
        if kind == "netcdf":
            enc: dict[str, Any] = {"zlib": True, "complevel": 4}
            if var.chunks is not None:
                enc["chunksizes"] = tuple(c[0] for c in var.chunks)
            encoding[str(name)] = {**encoding.get(str(name), {}), **enc}
    return encoding


def _zarr_chunks(ds: xr.Dataset) -> xr.Dataset:
    """Rechunk dims whose dask chunks zarr cannot store (unequal, or a larger last chunk),
    or on which the dask variables disagree (the passes of region writes need one chunking
    per dimension): to the largest chunk of the largest variable on that dimension."""
    lazy = sorted(
        (var for var in ds.variables.values() if var.chunks is not None),
        key=lambda var: var.size,
        reverse=True,
    )
    fix = {}
    for dim in {dim for var in lazy for dim in var.dims}:
        chunkings = {var.chunksizes[dim] for var in lazy if dim in var.dims}
        chunks = next(var.chunksizes[dim] for var in lazy if dim in var.dims)
        uneven = len(chunks) > 1 and (len(set(chunks[:-1])) > 1 or chunks[-1] > chunks[0])
        if uneven or len(chunkings) > 1:
            fix[dim] = max(chunks)
    return ds.chunk(fix) if fix else ds


def write_dataset(
    ds: xr.Dataset | xr.DataArray,
    path: str | os.PathLike[str],
    *,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Compute and write ``ds`` to ``path`` (netCDF or zarr, by extension), atomically.

    The data goes to a hidden temporary sibling (``.NAME.HOST-PID-XXXXXXXX.partial``) that
    is renamed onto ``path`` only once complete. On any error or interrupt
    (KeyboardInterrupt, or SIGTERM turned into one by the command line) the temporary is
    removed after the tasks still running have stopped writing, and an existing ``path`` is
    left untouched. Only a process killed outright (SIGKILL, power loss) can leave the
    hidden ``.partial`` behind; ``path`` itself is never partial, and the next write to
    ``path`` on the same host clears it (see :func:`sweep_stale`). Interrupts that arrive while
    a zarr store is being set up (metadata and in-memory data, which zarr writes from
    its own I/O thread) are held until that step returns; a second one is not held.

    On the local schedulers a zarr store's dask variables are written in passes of a few
    chunks of the time (first chunked) dimension, ``CHUNKS_PER_PASS_PER_WORKER`` per worker
    thread and at least ``MIN_CHUNKS_PER_PASS``: memory stays flat however long the record
    (see :func:`_write_zarr` for why). netCDF files, and stores written on a
    dask.distributed cluster, are computed as one graph.

    Before anything is computed, the destination is checked (see
    :func:`check_destination`) and, for netCDF, every attribute (see
    :func:`check_netcdf_attrs`): these mistakes cost no compute and raise
    :class:`~xsstsr.errors.WriteError`. A disk that fills up during the write (``ENOSPC``,
    ``EDQUOT``, or ``EFBIG`` past a file-size limit) raises a WriteError that says so;
    the temporary is removed and an existing ``path`` kept.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Lazy (dask) or in-memory data; dask data is computed while writing.
    path : str or path
        ``*.nc`` (``.nc4``, ``.netcdf``, ``.cdf``) or ``*.zarr``.
    progress : bool
        Show progress while computing: dask's progress bar for one graph, a tqdm bar over
        the time steps written when a zarr store is written in several passes.
    overwrite : bool
        Replace an existing ``path``; without it an existing ``path`` raises WriteError.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> write_dataset(hi, "sst_x4.zarr", progress=True)  # doctest: +SKIP
    """
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "sst")
    path = Path(path)
    kind = check_destination(path, overwrite=overwrite)
    if kind == "netcdf":
        check_netcdf_attrs(ds)
    else:
        ds = _zarr_chunks(ds)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with warnings.catch_warnings():
            # zarr 3 warns on every consolidated write; xarray reads these stores fastest
            warnings.filterwarnings(
                "ignore", message="Consolidated metadata is currently not", category=UserWarning
            )
            if kind == "zarr":
                _write_zarr(ds, tmp, progress=progress, label=path.name)
            else:
                store = ds.to_netcdf(tmp, encoding=_encoding(ds, kind), compute=False)
                with _progress_bar(progress):
                    _compute(store)
        with deferred_interrupts():
            replace_atomically(tmp, path)
    except BaseException as err:
        # probe before removing the temporary: the probe appends to it
        full = disk_full(err, tmp) if isinstance(err, Exception) else None
        remove_path(tmp)
        if full is not None:
            raise disk_full_error(path, full) from err
        raise
    return path


def check_destination(
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    overwrite_hint: str = "pass overwrite=True",
) -> str:
    """Check that ``path`` can be written (nothing is computed or created); return its kind.

    A dead writer's leftovers beside ``path`` are cleared first (:func:`sweep_stale`).

    Raises InputDataError for an unknown extension, and WriteError for a folder on the
    way that is a file, a netCDF ``path`` that is a directory, a zarr ``path`` that is a
    file, a directory that is not a zarr store (it would be replaced, with whatever it
    holds), or an existing ``path`` without ``overwrite`` (the message suggests
    ``overwrite_hint``; the command line says ``use --overwrite``).
    """
    path = Path(path)
    kind = output_format(path)
    _refuse_a_file_on_the_way(path)
    # a dead writer may have moved a previous store aside: put it back first, so that it
    # counts as existing below (and its temporaries go)
    sweep_stale(path)
    if kind == "netcdf" and path.is_dir():
        raise write_error(
            errno.EISDIR,
            f"{str(path)!r} is a directory, and a netCDF output is a single file; choose "
            "another name (or a .zarr name to write a zarr store), or remove the directory.",
        )
    if kind == "zarr" and path.exists() and not path.is_dir():
        raise write_error(
            errno.ENOTDIR,
            f"{str(path)!r} is a file, and a zarr store is a directory; choose another name "
            "(or a .nc name to write netCDF), or remove the file.",
        )
    if path.exists() and not overwrite:
        raise write_error(
            errno.EEXIST,
            f"{str(path)!r} exists; {overwrite_hint} to replace it, or choose another path.",
        )
    if kind == "zarr" and path.is_dir() and not _is_zarr_store(path):
        # replacing it would delete what it holds: only stores are replaced
        raise write_error(
            errno.EEXIST,
            f"{str(path)!r} is a directory that is not a zarr store, and replacing it would "
            "delete what it holds; choose another name, or remove it yourself.",
        )
    return kind


def check_file_destination(
    path: str | os.PathLike[str], *, overwrite: bool, overwrite_hint: str = "pass overwrite=True"
) -> None:
    """:func:`check_destination`'s folder and existing-path rules for a plain file of any
    kind (a model, a table)."""
    path = Path(path)
    _refuse_a_file_on_the_way(path)
    if path.exists() and not overwrite:
        raise write_error(
            errno.EEXIST,
            f"{str(path)!r} exists; {overwrite_hint} to replace it, or choose another path.",
        )


def _refuse_a_file_on_the_way(path: Path) -> None:
    for folder in path.parents:  # nearest first; mkdir would fail on a file on the way
        if folder.is_dir():
            break
        if folder.exists() or folder.is_symlink():
            raise write_error(
                errno.ENOTDIR,
                f"cannot write {str(path)!r}: {str(folder)!r} is a file, not a folder; "
                "choose an output path in a folder, or move that file away.",
            )


def _is_zarr_store(path: Path) -> bool:
    markers = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")
    return any((path / m).is_file() for m in markers) or not any(path.iterdir())


def check_netcdf_attrs(ds: xr.Dataset) -> None:
    """Raise WriteError naming the first attribute netCDF cannot store (nothing is computed).

    netCDF attributes are strings, numbers, or 1-D sequences of numbers or of strings;
    bools, dicts, None, nested or mixed lists are refused (netCDF4 fails on them, or
    turns a mixed list into strings). Only attributes are read, never the data.
    """
    places: list[tuple[str, Mapping[Any, Any]]] = [("the dataset", ds.attrs)]
    for name, var in ds.variables.items():
        what = "coordinate" if name in ds.coords else "variable"
        places.append((f"{what} {str(name)!r}", var.attrs))
    for where, attrs in places:
        for key, value in attrs.items():
            problem = _netcdf_attr_problem(value)
            if problem is None and not isinstance(key, str):
                problem = f"named by a {type(key).__name__}, not a string"
            if problem is None:
                continue
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise write_error(
                errno.EINVAL,
                f"attribute {key!r} of {where} is {problem} ({shown}), which netCDF cannot "
                "store; convert it (int() for a bool, str() or json.dumps() for a dict, a "
                "list or None) or drop it (del ....attrs[...]), or write a .zarr store.",
            )


def _netcdf_attr_problem(value: Any) -> str | None:
    """What makes ``value`` unstorable as a netCDF attribute, or None if it is storable."""
    if isinstance(value, (str, bytes)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return "a bool"
    if isinstance(value, numbers.Complex) and not isinstance(value, numbers.Real):
        return "a complex number"
    if isinstance(value, numbers.Real):
        return None
    if value is None:
        return "None"
    if isinstance(value, Mapping):
        return "a dict"
    if isinstance(value, np.ndarray):
        if value.ndim > 1:
            return "a multi-dimensional array"
        if value.dtype.kind in "iufSU":
            return None
        return f"an array of {value.dtype}"
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (list, tuple, np.ndarray, Mapping)) for v in value):
            return "a nested list"
        if any(_netcdf_attr_problem(v) is not None for v in value):
            return "a list holding values netCDF cannot store"
        strings = [isinstance(v, (str, bytes)) for v in value]
        if any(strings) and not all(strings):
            return "a list mixing strings and numbers"  # netCDF4 would store all as strings
        return None
    return f"a {type(value).__name__}"


def _compute(delayed: Any) -> None:
    import dask

    with _pool_kwargs() as kwargs:
        dask.compute(delayed, **kwargs)


@contextmanager
def _pool_kwargs() -> Iterator[dict[str, Any]]:
    """Compute keywords for a private thread pool on the local threaded scheduler.

    dask's threaded scheduler returns at once on an exception in the calling thread (a
    KeyboardInterrupt), while its worker threads finish the chunks they are writing. A
    private pool lets us wait for them on the way out, so that nothing writes into the
    temporary after it has been removed. Other schedulers get no keywords.
    """
    import dask
    import dask.threaded

    if _scheduler() is not dask.threaded.get:  # distributed, synchronous or processes
        yield {}
        return
    pool = ThreadPoolExecutor(max_workers=_local_workers(), thread_name_prefix="xsstsr-write")
    try:
        yield {"pool": pool}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _scheduler() -> Any:
    """The get function dask would use for an array computed here and now."""
    import dask.array
    from dask.base import get_scheduler

    return get_scheduler(cls=dask.array.Array)


def _local_workers() -> int:
    import dask

    return int(dask.config.get("num_workers", None) or os.cpu_count() or 1)


def _progress_bar(progress: bool) -> Any:
    if not progress:
        return nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar()


#: Chunks of the streamed dimension computed per pass, per local worker thread (at least
#: ``MIN_CHUNKS_PER_PASS``): enough to keep the threads busy, few enough that what dask's
#: ordering holds ahead of the writes stays bounded.
CHUNKS_PER_PASS_PER_WORKER = 4


MIN_CHUNKS_PER_PASS = 8


def _write_zarr(ds: xr.Dataset, tmp: Path, *, progress: bool, label: str) -> None:
    """Write a zarr store: metadata first, then the dask variables pass by pass.

    A store computed in one graph lets dask's ordering compute the inputs of many later
    chunks ahead of their writes: with a time look-back or spatial halos, about a fifth of
    a record's input blocks were held at once, so memory grew with the record's length.
    Writing a few chunks of the streamed dimension per pass (zarr region writes) bounds
    what can be held, whatever the length. On a dask.distributed cluster the store is one
    pass: passes would idle its workers at each pass's end, and its scheduler did not run
    ahead in the same way (docs/guide/parallel.rst has the figures).
    """
    import zarr

    # lazy times (a time-bounds variable): with the metadata, not in the passes, whose
    # region writes decode the store's variables and cannot decode a time not yet written
    # ("since 0000-01-01" needs cftime, which refuses the placeholder NaNs)
    times = [n for n, v in ds.variables.items() if v.chunks is not None and _is_time(v)]
    if times:
        ds = ds.copy()
        for name in times:
            ds[name].load()
    # zarr writes through its own I/O thread, which an interrupt of this thread would
    # leave writing into the temporary after its removal: hold signals while zarr writes
    # from this thread (the dask passes below are interruptible)
    with deferred_interrupts():
        # metadata and in-memory variables; the dask variables follow, pass by pass
        ds.to_zarr(tmp, mode="w", encoding=_encoding(ds, "zarr"), compute=False, consolidated=False)
    lazy = [str(name) for name, var in ds.variables.items() if var.chunks is not None]
    if lazy:
        with _pool_kwargs() as kwargs:
            for part, region in _passes(ds, lazy, progress=progress, label=label):
                part.to_zarr(
                    tmp,
                    mode="r+",
                    region=region,
                    consolidated=False,
                    chunkmanager_store_kwargs=kwargs,
                )
    with deferred_interrupts():
        zarr.consolidate_metadata(str(tmp))


def _is_time(var: xr.Variable) -> bool:
    """Dates or durations: decoded, or cftime objects or numbers with CF time units."""
    units = var.encoding.get("units", var.attrs.get("units", ""))
    return var.dtype.kind in "Mm" or " since " in str(units)


def _passes(
    ds: xr.Dataset, lazy: list[str], *, progress: bool, label: str
) -> Iterator[tuple[xr.Dataset, dict[str, slice] | None]]:
    """(dataset, region) pairs that together write every dask variable once."""

    def only(names: list[str]) -> xr.Dataset:
        return ds.drop_vars([n for n in ds.variables if n not in names])

    def whole(names: list[str]) -> Iterator[tuple[xr.Dataset, None]]:
        with _progress_bar(progress):  # one graph: dask's own progress bar
            yield only(names), None

    dim = _streamed_dim(ds, lazy)
    if dim is None or _is_distributed(_scheduler()):
        yield from whole(lazy)
        return
    streamed = [n for n in lazy if dim in ds[n].dims]
    rest = [n for n in lazy if n not in streamed]
    if rest:
        yield from whole(rest)
    chunks = ds[streamed[0]].chunksizes[dim]
    per_pass = max(MIN_CHUNKS_PER_PASS, CHUNKS_PER_PASS_PER_WORKER * _local_workers())
    starts = np.cumsum((0, *chunks))
    bounds = [
        (int(starts[i]), int(starts[min(i + per_pass, len(chunks))]))
        for i in range(0, len(chunks), per_pass)
    ]
    if len(bounds) == 1:
        yield from whole(streamed)
        return
    bar = _steps_bar(progress, total=int(starts[-1]), label=label, unit=dim)
    try:
        for start, stop in bounds:
            window = slice(start, stop)
            yield only(streamed).isel({dim: window}), {dim: window}
            bar.update(stop - start)
    finally:
        bar.close()


def _streamed_dim(ds: xr.Dataset, lazy: list[str]) -> str | None:
    """The dimension to write in passes: the first of the largest dask variable's
    dimensions that has several chunks (time, for a downscaled record)."""
    largest = max(lazy, key=lambda n: ds[n].size)
    for dim in ds[largest].dims:
        if len(ds[largest].chunksizes[dim]) > 1:
            return str(dim)
    return None


def _is_distributed(scheduler: Any) -> bool:
    return "distributed" in type(getattr(scheduler, "__self__", None)).__module__


def _steps_bar(progress: bool, *, total: int, label: str, unit: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"writing {label}", unit=unit, disable=not progress)
