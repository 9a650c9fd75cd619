"""``downscale``: find the SST, build the fine grid, run the tiled generator, stamp metadata.

Works on any Dataset or DataArray, with or without the ``.sstsr`` accessor.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Hashable, Sequence
from typing import Any

import dask.array as dsa
import numpy as np
import xarray as xr

from .._version import __version__
from ..cf.criteria import find_fields, is_global_longitude, regular_spacing
from ..cf.units import OUTPUT_BOUNDS_DEGC, check_physical_range, from_celsius, to_celsius
from ..errors import (
    DomainWarning,
    InputDataError,
    InputTypeError,
    ModelMismatchError,
    PoleWarning,
    warn_user,
)
from ..grid.coords import align_source, fine_coordinate
from ..grid.land import fine_land_mask
from ..grid.layout import canonical_layout, numeric_time_unit_days, time_as_days
from ..models.container import Model
from ..models.weights import model_for
from .cache import register
from .devices import check_precision, graph_device, resolve_device, resolve_precision
from .tiling import TileSpec, compute_chunks, downscale_dask, downscale_numpy

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


def _history_line(
    model: Model, frac: float, device: str, precision: str, self_ensemble: bool = False
) -> str:
    now = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = ", self_ensemble=True" if self_ensemble else ""
    return (
        f"{now}: xsstsr {__version__} downscale(factor={frac:g}, model={model.name!r}, "
        f"sha256={model.sha256[:12]}, device={device!r}, precision={precision!r}{extra})"
    )


def _append_history(attrs: dict[Hashable, Any], line: str) -> None:
    old = attrs.get("history")
    attrs["history"] = f"{old}\n{line}" if isinstance(old, str) and old else line


def _stamp_provenance(attrs: dict[Hashable, Any], model: Model, frac: float) -> None:
    """Say in ``source`` (and ``title``, when there is one) that this is a downscaled
    product: the kept attributes otherwise still describe the coarse input."""
    done = (
        f"downscaled x{frac:g} by xsstsr {__version__} with model {model.name!r} "
        f"(sha256 {model.sha256[:12]})"
    )
    source = attrs.get("source")
    # CF's source is the method of production: the input's, then the downscaling
    attrs["source"] = f"{source}; {done}" if isinstance(source, str) and source else done
    title = attrs.get("title")
    if isinstance(title, str) and title:
        attrs["title"] = f"{title} (downscaled x{frac:g} by xsstsr {model.name})"


def _clean_encoding(encoding: dict[Hashable, Any]) -> dict[Hashable, Any]:
    return {k: v for k, v in encoding.items() if k not in _DROPPED_ENCODING}


def domain_departures(
    model: Model,
    da: xr.DataArray,
    lat: Hashable,
    lon: Hashable,
    time: Hashable | None,
) -> list[str]:
    """How the input departs from the domain the model declares (empty when inside).

    Spacing counts as inside within a factor 1.5 of the trained range, the time step
    within a factor 2 (monthly steps vary), the SST within 2 K; the SST is only checked
    for in-memory input (a dask input is not read to decide a warning).
    """
    domain = model.domain
    if not domain:
        return []
    found = []
    spacing = max(abs(regular_spacing(da[d].values, d)) for d in (lat, lon))
    if "input_spacing_deg" in domain:
        lo, hi = domain["input_spacing_deg"]
        if not lo / 1.5 <= spacing <= hi * 1.5:
            found.append(f"grid spacing {spacing:g} deg (trained on {lo:g}..{hi:g})")
    if "time_spacing_days" in domain and time is not None and da.sizes[time] > 1:
        coord = da[time]
        per_unit: float | None = 1.0  # datetime and cftime values come in days
        if coord.dtype.kind in "iuf":  # undecoded: in its CF units
            per_unit = numeric_time_unit_days(coord.attrs.get("units", coord.encoding.get("units")))
        days = time_as_days(coord.values)
        # no claim about the step of a time axis in units that name no time unit
        step = float(np.median(np.abs(np.diff(days)))) * per_unit if per_unit else 0.0
        lo, hi = domain["time_spacing_days"]
        if step > 0 and not lo / 2 <= step <= hi * 2:
            found.append(f"time step {step:g} days (trained on {lo:g}..{hi:g})")
    if "sst_range_degC" in domain and not isinstance(da.data, dsa.Array):
        values = np.asarray(da.values)
        if np.isfinite(values).any():
            low, top = float(np.nanmin(values)), float(np.nanmax(values))
            lo, hi = domain["sst_range_degC"]
            if low < lo - 2 or top > hi + 2:
                found.append(f"SST {low:.1f}..{top:.1f} degC (trained on {lo:.1f}..{hi:.1f})")
    return found


def _warn_beyond_poles(fine_lat: np.ndarray, lat: Hashable) -> None:
    """A grid with centres on the poles has cells half beyond them, and so fine rows."""
    beyond = int(np.count_nonzero(np.abs(fine_lat) > 90.0 + 1e-9))
    if beyond:
        name = str(lat)
        warn_user(
            f"the input's outermost cells reach beyond a pole (e.g. cell centres on +-90), "
            f"so {beyond} row(s) of the result lie beyond it (|latitude| up to "
            f"{float(np.max(np.abs(fine_lat))):g}); drop them with "
            f"hi.isel({name}=abs(hi[{name!r}].values) <= 90), or drop the polar rows of the "
            f"input first.",
            PoleWarning,
        )


def _checked_range(block: np.ndarray, units: str, variable: Hashable) -> np.ndarray:
    """map_blocks kernel: the lazy path's physical-range check, block by block."""
    check_physical_range(block, units, variable)
    return block


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
    time: Hashable | None = None,
    land_mask: xr.DataArray | None = None,
    sources: Sequence[xr.DataArray] | None = None,
    batch_size: int | None = None,
    tile_size: int | None = None,
    self_ensemble: bool = False,
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
        cannot be found from CF attributes or common names. Latitude and longitude may
        run in either direction; the result keeps the input's.
    time : str, optional
        Name of the time dimension, along which the model's window runs. Found from
        datetime or cftime values or CF attributes when not given; another extra
        dimension (``member``, ``depth``) is downscaled step by step. Unsorted time is
        sorted for the window and the result returned in the input's order; duplicated
        steps are refused and a gap the window spans warns (:class:`TimeAxisWarning`).
    land_mask : xarray.DataArray, optional
        Land mask (True or 1 = land) on the fine grid, or any grid (nearest-neighbour).
        Without it, a fine cell is land where the coarse cell holding it is NaN.
    sources : list of xarray.DataArray, optional
        Extra low-resolution inputs of a fusion model, in the model's input order.
    batch_size : int, optional
        Tiles per forward pass; chosen from memory when not given.
    tile_size : int, optional
        Tile side in low-resolution pixels before the halo: 256 on the CPU; on a GPU the
        largest of 1024, 512, ... whose activations fit half the free memory. A tile holds at
        most its square's area, halo included: a field or block narrower than the side runs
        in wider tiles of no more memory.
    self_ensemble : bool
        Average the generator's output over the eight flips and transposes of each tile
        (geometric self-ensembling): about 8 times the compute for a lower RMSE (sst-x4 on
        held-out real SST: 0.821 instead of 0.828 x bicubic). For the accurate models; it
        smooths out the texture of a realistic (``-gan``) one.
    keep_attrs : bool
        Copy the input's attributes to the result; ``units`` and ``standard_name`` are
        kept either way.

    Returns
    -------
    Same type as ``obj``: the SST on the fine grid, with the model's name, sha256,
    the factor and the xsstsr version in its attributes and a line in ``history``. A
    Dataset keeps its variables off the grid (time series, scalars); its other gridded
    variables are left out, with a warning.
    ``source`` (the Dataset's and the variable's) gains "downscaled xFACTOR by xsstsr
    VERSION with model NAME (sha256 PREFIX)" and a kept ``title`` gains
    " (downscaled xFACTOR by xsstsr NAME)", so they no longer describe the coarse input.

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
    device = graph_device(device)
    check_precision(precision)
    if land_mask is not None and not isinstance(land_mask, xr.DataArray):  # before computing
        raise InputTypeError(
            f"land_mask must be an xarray DataArray (True or 1 = land), got "
            f"{type(land_mask).__name__}; wrap it with xr.DataArray(mask, dims=..., coords=...)."
        )
    if not isinstance(self_ensemble, (bool, np.bool_)):
        raise InputTypeError(f"self_ensemble must be True or False, got {self_ensemble!r}.")
    for key, value in (("batch_size", batch_size), ("tile_size", tile_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1
        ):
            raise InputDataError(
                f"{key} must be a positive integer (or None for the default), got {value!r}."
            )

    da, fields = find_fields(obj, variable, lat, lon, time)
    lat_dim, lon_dim, time_dim = fields.lat, fields.lon, fields.time
    layout = canonical_layout(da, lat_dim, lon_dim, time_dim, loaded.window)
    da = layout.canonical(da)
    fine_lat, lat_bounds = fine_coordinate(da[lat_dim], upsample, pool)
    _warn_beyond_poles(fine_lat, lat_dim)
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
    inputs.append(to_celsius(work, fields.units))
    name = fields.variable if fields.variable is not None else "the SST"
    lazy = any(isinstance(x.data, dsa.Array) for x in inputs)
    if not lazy:  # refused before any warning about the model's domain
        sst = np.asarray(inputs[-1].values)
        if not np.isfinite(sst).any():
            raise InputDataError(
                "the SST is NaN everywhere; check the variable, its _FillValue and the "
                "selected region."
            )
        check_physical_range(sst, fields.units, name)
    outside = domain_departures(loaded, inputs[-1], lat_dim, lon_dim, time_dim)
    if outside:
        warn_user(
            f"the input lies outside what model {loaded.name!r} was trained on: "
            f"{'; '.join(outside)}. Its result may be no better than interpolation there: "
            "check it with xsstsr.evaluate (beside bicubic), pick a model whose domain "
            "covers the input (xsstsr models), or fine-tune one on your data with "
            f"fit(init={loaded.name!r}).",
            DomainWarning,
        )

    if not lazy:  # computed here and now: the device must be this process's
        device = resolve_device(device)
    spec = TileSpec(
        ref=register(loaded, persist=lazy),  # a graph may run in other processes
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
        self_ensemble=bool(self_ensemble),
    )
    # a global grid narrower than the halo wraps onto copies of itself
    copies = math.ceil(loaded.halo / da.sizes[lon_dim]) if periodic else 1
    n_fine_lon = fine_lon.size
    if lazy:
        arrays = [dsa.asarray(x.data) for x in inputs]
        storage = arrays[-1].chunks
        if copies == 1:  # per-chunk work on compute blocks: fewer tasks for small chunks
            arrays = [a.rechunk(compute_chunks(storage, spec)) for a in arrays]
        arrays[-1] = arrays[-1].map_blocks(
            _checked_range, units=fields.units, variable=name, dtype=arrays[-1].dtype
        )
        stacked = dsa.stack(arrays, axis=0)
        if copies > 1:
            stacked = dsa.concatenate([stacked] * copies, axis=-1)
        data: Any = downscale_dask(stacked, spec, storage if copies == 1 else None)
    else:
        stacked_np = np.stack([np.asarray(x.values) for x in inputs], axis=0)
        if copies > 1:
            stacked_np = np.concatenate([stacked_np] * copies, axis=-1)
        data = downscale_numpy(stacked_np, spec)
    if copies > 1:
        data = data[..., :n_fine_lon]
    data = from_celsius(data, fields.units)

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
    result = layout.restore(result.transpose(*da.dims))
    for dim in layout.flipped:
        bounds = lat_bounds if dim == lat_dim else lon_bounds
        bounds = bounds[::-1, ::-1]  # each cell's bounds run the coordinate's way
        if dim == lat_dim:
            lat_bounds = bounds
        else:
            lon_bounds = bounds

    if land_mask is not None:
        mask = fine_land_mask(
            land_mask, lat_dim, lon_dim, result[lat_dim].values, result[lon_dim].values
        )
        result = result.where(~mask)

    # units and standard_name stay whatever keep_attrs says: the values are in them
    attrs: dict[Hashable, Any] = dict(da.attrs)
    if not keep_attrs:
        attrs = {k: v for k, v in attrs.items() if k in ("units", "standard_name")}
    attrs.update(
        xsstsr_model=loaded.name,
        xsstsr_model_sha256=loaded.sha256,
        xsstsr_factor=float(frac),
        xsstsr_version=__version__,
        xsstsr_device=device,
        xsstsr_precision=resolve_precision(precision, device),
        xsstsr_bounds_degC=list(OUTPUT_BOUNDS_DEGC),  # the clip applied to every value
    )
    if self_ensemble:
        attrs["xsstsr_self_ensemble"] = "mean over 8 flips and transposes"
    line = _history_line(
        loaded, float(frac), device, attrs["xsstsr_precision"], bool(self_ensemble)
    )
    _stamp_provenance(attrs, loaded, float(frac))
    if isinstance(obj, xr.DataArray):
        _append_history(attrs, line)
        result.attrs = attrs
        return result

    if "history" in attrs:  # the variable's own history gets the line too
        _append_history(attrs, line)
    result.attrs = attrs
    ds_attrs: dict[Hashable, Any] = dict(obj.attrs) if keep_attrs else {}
    _append_history(ds_attrs, line)
    _stamp_provenance(ds_attrs, loaded, float(frac))
    keep = {
        name: var
        for name, var in obj.data_vars.items()
        if name != fields.variable and lat_dim not in var.dims and lon_dim not in var.dims
    }
    gridded = [str(n) for n in obj.data_vars if n != fields.variable and n not in keep]
    if gridded:  # never silently: a file's other fields do not come along
        warn_user(
            f"only {str(fields.variable)!r} is downscaled; the other variables along its "
            f"latitude or longitude, {gridded}, are not in the result; downscale one with "
            f"variable=..., or select the SST first, ds[[{str(fields.variable)!r}]], to "
            "silence this."
        )
    out = xr.Dataset({**keep, fields.variable: result}, attrs=ds_attrs)
    for name, bounds in ((lat_dim, lat_bounds), (lon_dim, lon_bounds)):
        bname = f"{name}_bnds"
        out[name].attrs["bounds"] = bname
        out = out.assign_coords({bname: ((name, "bnds"), bounds)})
    return out
