"""``downscale``: find the SST, build the fine grid, run the tiled generator, stamp metadata.

Works on any Dataset or DataArray, with or without the ``.sstsr`` accessor.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Hashable, Sequence
from typing import Any

import dask.array as dsa
import numpy as np
import xarray as xr

from ._version import __version__
from .cf import (
    KELVIN_OFFSET,
    find_fields,
    find_lat_lon,
    is_global_longitude,
    regular_spacing,
)
from .errors import GridError, InputDataError, InputTypeError, ModelMismatchError
from .model import Model, register
from .tiling import (
    TileSpec,
    check_precision,
    downscale_dask,
    downscale_numpy,
    resolve_device,
    resolve_precision,
)
from .weights import model_for

ModelLike = str | os.PathLike[str] | Model

# Encodings that describe how the coarse file was stored and would break saving the fine one.
_DROPPED_ENCODING = (
    "chunks",
    "preferred_chunks",
    "chunksizes",
    "zlib",
    "complevel",
    "shuffle",
    "contiguous",
    "compressor",
    "compressors",
    "filters",
    "source",
    "original_shape",
)


def fine_coordinate(coord: xr.DataArray, upsample: int, pool: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell centres and bounds of the fine grid for one regular 1-D coordinate.

    The fine cells tile the coarse cells' extent exactly: spacing divided by the
    factor, starting at the outer edge of the first coarse cell.
    """
    values = np.asarray(coord.values, dtype="float64")
    step = regular_spacing(values, coord.name)
    n = values.size
    if (n * upsample) % pool:
        raise GridError(
            f"factor {upsample}/{pool} needs a number of {coord.name!r} cells divisible by "
            f"{pool} (found {n}); drop one with .isel({coord.name}=slice(0, {n - n % pool}))."
        )
    fine_step = step * pool / upsample
    edge = values[0] - step / 2
    centres = edge + (np.arange(n * upsample // pool) + 0.5) * fine_step
    bounds = np.stack([centres - fine_step / 2, centres + fine_step / 2], axis=-1)
    return centres, bounds


def _history_line(model: Model, frac: float, device: str, precision: str) -> str:
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"{now}: xsstsr {__version__} downscale(factor={frac:g}, model={model.name!r}, "
        f"sha256={model.sha256[:12]}, device={device!r}, precision={precision!r})"
    )


def _append_history(attrs: dict[Hashable, Any], line: str) -> None:
    old = attrs.get("history")
    attrs["history"] = f"{old}\n{line}" if isinstance(old, str) and old else line


def _clean_encoding(encoding: dict[Hashable, Any]) -> dict[Hashable, Any]:
    return {k: v for k, v in encoding.items() if k not in _DROPPED_ENCODING}


def _in_celsius(da: xr.DataArray, units: str) -> xr.DataArray:
    return da - KELVIN_OFFSET if units == "K" else da


def align_source(
    source: xr.DataArray, like: xr.DataArray, lat: Hashable, lon: Hashable, index: int
) -> xr.DataArray:
    """A fusion source in degC on the SST's grid (linear interpolation when grids differ)."""
    from .cf import canonical_units

    if not isinstance(source, xr.DataArray):
        raise InputTypeError(
            f"sources[{index}] must be an xarray DataArray, got {type(source).__name__}; pass "
            "sources=[da1, ...] with one DataArray per extra model input."
        )
    units = canonical_units(source.attrs.get("units"), f"sources[{index}]")
    s_lat, s_lon = find_lat_lon(source)
    source = source.rename({s_lat: lat, s_lon: lon}) if (s_lat, s_lon) != (lat, lon) else source
    if not (source[lat].equals(like[lat]) and source[lon].equals(like[lon])):
        source = source.interp({lat: like[lat], lon: like[lon]}, method="linear")
    source = source.broadcast_like(like).transpose(*like.dims)
    return _in_celsius(source, units).astype(like.dtype)


def _fine_land_mask(
    land_mask: xr.DataArray,
    lat: Hashable,
    lon: Hashable,
    fine_lat: np.ndarray,
    fine_lon: np.ndarray,
) -> xr.DataArray:
    m_lat, m_lon = find_lat_lon(land_mask)
    mask = land_mask.rename({m_lat: lat, m_lon: lon}) if (m_lat, m_lon) != (lat, lon) else land_mask
    if mask.dtype != bool:
        mask = mask.fillna(1) > 0.5
    return mask.reindex({lat: fine_lat, lon: fine_lon}, method="nearest")


def _graph_device(device: str) -> str:
    """Validate ``device`` here, except where a dask.distributed client may run the graph
    on workers with GPUs this process lacks: then "auto" and "cuda" are decided there."""
    try:
        from distributed import default_client

        default_client()
    except (ImportError, ValueError):
        return resolve_device(device)
    if device == "auto" or (isinstance(device, str) and device.startswith("cuda")):
        return device
    return resolve_device(device)


def downscale(
    obj: xr.Dataset | xr.DataArray,
    factor: float | None = None,
    *,
    model: ModelLike | None = None,
    device: str = "auto",
    precision: str = "auto",
    variable: Hashable | None = None,
    lat: Hashable | None = None,
    lon: Hashable | None = None,
    land_mask: xr.DataArray | None = None,
    sources: Sequence[xr.DataArray] | None = None,
    batch_size: int | None = None,
    tile_size: int | None = None,
    keep_attrs: bool = True,
) -> xr.Dataset | xr.DataArray:
    """Downscale SST onto a grid ``factor`` times finer with a trained generator.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
        Low-resolution SST on a regular 1-D latitude/longitude grid, in degC or K.
        Dask-backed input gives a lazy result; in-memory input is computed at once.
    factor : float, optional
        2, 2.5, 4 or 5 for the released models. Defaults to the model's factor, or 4.
    model : str, path or Model, optional
        A registry name (see :func:`xsstsr.available_models`), a ``.safetensors`` path
        or a fitted :class:`xsstsr.Model`. Defaults to ``f"sst-x{factor}"``.
    device : {"auto", "cpu", "cuda", "cuda:N"}
        ``"auto"`` uses CUDA when PyTorch sees a GPU.
    precision : {"auto", "float32", "float16", "bfloat16"}
        Arithmetic of the network's correction branch (the bicubic base is always
        float32). ``"auto"`` is float16 autocast on a GPU, within 0.01 K of float32 for
        the released models, and float32 on the CPU.
    variable, lat, lon : str, optional
        Names of the SST variable and of its latitude/longitude dimensions when they
        cannot be found from CF attributes or common names.
    land_mask : xarray.DataArray, optional
        Land mask (True or 1 = land) on the fine grid, or any grid (nearest-neighbour).
        Without it, a fine cell is land where the coarse cell holding it is NaN.
    sources : list of xarray.DataArray, optional
        Extra low-resolution inputs of a fusion model, in the model's input order.
    batch_size : int, optional
        Tiles per forward pass; chosen from memory when not given.
    tile_size : int, optional
        Tile side in low-resolution pixels before the halo: 256 on the CPU; on a GPU the
        largest of 1024, 512, ... whose activations fit half the free memory.
    keep_attrs : bool
        Copy the input's attributes to the result.

    Returns
    -------
    Same type as ``obj``: the SST on the fine grid, with the model's name, sha256,
    the factor and the xsstsr version in its attributes and a line in ``history``.

    Examples
    --------
    >>> import xsstsr
    >>> ds = xsstsr.datasets.open_sample()
    >>> hi = ds.sstsr.downscale(factor=4)
    >>> hi.sizes["lat"] == 4 * ds.sizes["lat"]
    True
    """
    loaded, frac = model_for(factor, model)
    upsample, pool = frac.numerator, frac.denominator
    if (upsample, pool) != (loaded.upsample, loaded.pool):  # e.g. 4/1 served by an 8/2 net
        upsample, pool = loaded.upsample, loaded.pool
    device = _graph_device(device)
    check_precision(precision)
    if land_mask is not None and not isinstance(land_mask, xr.DataArray):  # before computing
        raise InputTypeError(
            f"land_mask must be an xarray DataArray (True or 1 = land), got "
            f"{type(land_mask).__name__}; wrap it with xr.DataArray(mask, dims=..., coords=...)."
        )
    for key, value in (("batch_size", batch_size), ("tile_size", tile_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
        ):
            raise InputDataError(
                f"{key} must be a positive integer (or None for the default), got {value!r}."
            )

    da, fields = find_fields(obj, variable, lat, lon)
    lat_dim, lon_dim, time_dim = fields.lat, fields.lon, fields.time
    fine_lat, lat_bounds = fine_coordinate(da[lat_dim], upsample, pool)
    fine_lon, lon_bounds = fine_coordinate(da[lon_dim], upsample, pool)
    lon_step = regular_spacing(da[lon_dim].values, lon_dim)
    periodic = is_global_longitude(da[lon_dim].values, lon_step)

    n_sources = len(loaded.inputs) - 1
    given = list(sources or [])
    if len(given) != n_sources:
        raise ModelMismatchError(
            f"model {loaded.name!r} takes inputs {loaded.inputs}: pass {n_sources} source(s) "
            f"as sources=[...] (got {len(given)})."
        )

    work = da if time_dim is not None else da.expand_dims("__time__", axis=0)
    t_dim = time_dim if time_dim is not None else "__time__"
    others = [d for d in work.dims if d not in (t_dim, lat_dim, lon_dim)]
    order = [*others, t_dim, lat_dim, lon_dim]
    work = work.transpose(*order)
    # keep coordinates that do not live on the coarse grid
    work = work.drop_vars(
        [
            c
            for c in work.coords
            if (lat_dim in work[c].dims or lon_dim in work[c].dims) and c not in (lat_dim, lon_dim)
        ]
    )
    inputs = [align_source(s, work, lat_dim, lon_dim, i) for i, s in enumerate(given)]
    inputs.append(_in_celsius(work, fields.units))

    lazy = any(isinstance(x.data, dsa.Array) for x in inputs)
    if not lazy:  # computed here and now: the device must be this process's
        device = resolve_device(device)
    spec = TileSpec(
        ref=register(loaded),
        device=device,
        upsample=upsample,
        pool=pool,
        halo=loaded.halo,
        window=loaded.window,
        mask_output=land_mask is None,
        batch_size=batch_size,
        tile=int(tile_size) if tile_size is not None else None,
        periodic_x=periodic,
        precision=precision,
    )
    if lazy:
        stacked = dsa.stack([dsa.asarray(x.data) for x in inputs], axis=0)
        data: Any = downscale_dask(stacked, spec)
    else:
        stacked_np = np.stack([np.asarray(x.values) for x in inputs], axis=0)
        if not np.isfinite(stacked_np[-1]).any():
            raise InputDataError(
                "the SST is NaN everywhere; check the variable, its _FillValue and the "
                "selected region."
            )
        data = downscale_numpy(stacked_np, spec)
    if fields.units == "K":
        data = data + KELVIN_OFFSET

    coords: dict[Hashable, Any] = {
        name: coord for name, coord in work.coords.items() if name not in (lat_dim, lon_dim)
    }
    coords[lat_dim] = xr.Variable(lat_dim, fine_lat, dict(da[lat_dim].attrs))
    coords[lon_dim] = xr.Variable(lon_dim, fine_lon, dict(da[lon_dim].attrs))
    result = xr.DataArray(data, dims=order, coords=coords, name=da.name)
    for name in (lat_dim, lon_dim):
        result[name].encoding = _clean_encoding(dict(da[name].encoding))
    if time_dim is not None:
        result[time_dim].encoding = _clean_encoding(dict(da[time_dim].encoding))
    else:
        result = result.isel(__time__=0, drop=True)
    result = result.transpose(*da.dims)

    if land_mask is not None:
        mask = _fine_land_mask(land_mask, lat_dim, lon_dim, fine_lat, fine_lon)
        result = result.where(~mask)

    attrs: dict[Hashable, Any] = dict(da.attrs) if keep_attrs else {}
    attrs.update(
        xsstsr_model=loaded.name,
        xsstsr_model_sha256=loaded.sha256,
        xsstsr_factor=float(frac),
        xsstsr_version=__version__,
        xsstsr_device=device,
        xsstsr_precision=resolve_precision(precision, device),
    )
    line = _history_line(loaded, float(frac), device, attrs["xsstsr_precision"])
    if isinstance(obj, xr.DataArray):
        _append_history(attrs, line)
        result.attrs = attrs
        return result

    result.attrs = attrs
    ds_attrs: dict[Hashable, Any] = dict(obj.attrs) if keep_attrs else {}
    _append_history(ds_attrs, line)
    keep = {
        name: var
        for name, var in obj.data_vars.items()
        if name != fields.variable and lat_dim not in var.dims and lon_dim not in var.dims
    }
    out = xr.Dataset({**keep, fields.variable: result}, attrs=ds_attrs)
    for name, bounds in ((lat_dim, lat_bounds), (lon_dim, lon_bounds)):
        bname = f"{name}_bnds"
        out[name].attrs["bounds"] = bname
        out = out.assign_coords({bname: ((name, "bnds"), bounds)})
    return out
