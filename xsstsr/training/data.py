"""Training data: the SST on nested grids, stations on the fine grid, patches, time splits.

Patches are cut lazily, so a dask-backed record larger than memory is never loaded whole.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..cf.criteria import find_fields, is_global_longitude, regular_spacing, wrap_longitudes
from ..cf.units import check_physical_range_of, to_celsius
from ..errors import GridError, InputDataError, StationsError, warn_user
from ..grid.coords import align_source, fine_coordinate
from ..grid.factor import parse_factor
from ..grid.layout import time_as_days
from ..stations import align_to_times, drop_outside, read_stations


@dataclass
class TrainingData:
    """Low-resolution inputs and high-resolution truth on exactly nested grids, in degC."""

    low: list[Any]  # arrays (time, y, x): fusion sources first, the SST last
    high: Any  # array (time, y*f, x*f)
    upsample: int
    pool: int
    times: np.ndarray
    fine_lat: np.ndarray
    fine_lon: np.ndarray
    coarse_lat: np.ndarray
    coarse_lon: np.ndarray
    mode: str
    inputs: list[str] = field(default_factory=lambda: ["sst"])
    periodic: bool = False  # global in longitude; then rolled to start near 0 E

    @property
    def shape(self) -> tuple[int, int, int]:
        nt, ny, nx = self.low[-1].shape
        return int(nt), int(ny), int(nx)


def data_domain(data: TrainingData) -> dict[str, list[float]]:
    """The domain a model fitted on ``data`` declares: its input grid spacing, time step
    and SST range (see :attr:`xsstsr.Model.domain`)."""
    import dask
    import dask.array as dsa

    spacing = max(
        abs(float(np.median(np.diff(axis)))) if axis.size > 1 else 0.0
        for axis in (data.coarse_lat, data.coarse_lon)
    )
    times = np.asarray(data.times)
    # numeric times carry no unit: only datetime and cftime axes declare a time step
    dated = np.issubdtype(times.dtype, np.datetime64) or times.dtype == object
    step = float(np.median(np.diff(time_as_days(times)))) if dated and times.size > 1 else np.nan
    high = data.high
    if isinstance(high, dsa.Array):
        low, top = (float(v) for v in dask.compute(dsa.nanmin(high), dsa.nanmax(high)))
    else:
        low, top = float(np.nanmin(high)), float(np.nanmax(high))
    domain = {"input_spacing_deg": [spacing, spacing], "sst_range_degC": [low, top]}
    if np.isfinite(step):
        domain["time_spacing_days"] = [step, step]
    return domain


# -- data preparation ----------------------------------------------------------


def prepare_data(
    obj: xr.Dataset | xr.DataArray,
    *,
    target: xr.Dataset | xr.DataArray | None,
    sources: Sequence[xr.DataArray] | None,
    factor: Any,
    variable: Hashable | None,
    lat: Hashable | None,
    lon: Hashable | None,
    time: Hashable | None = None,
) -> TrainingData:
    """Find the SST, build the inputs and the truth on nested grids (in canonical order:
    latitude and longitude ascending, time sorted)."""
    from ..grid.layout import canonical_layout

    da, fields = find_fields(obj, variable, lat, lon, time)
    da = canonical_layout(da, fields.lat, fields.lon, fields.time, 1).canonical(da)
    if fields.time is None:
        raise InputDataError(
            "training needs a time dimension (the generator sees a window of time steps); "
            "add one with da.expand_dims(time=[...])."
        )
    extra = [d for d in da.dims if d not in (fields.time, fields.lat, fields.lon)]
    if extra:
        raise InputDataError(
            f"training data must be (time, lat, lon); select or stack the extra dims {extra} "
            "first, e.g. ds.isel(depth=0)."
        )
    da = to_celsius(da.transpose(fields.time, fields.lat, fields.lon), fields.units)
    da = da.where(np.isfinite(da))  # an infinite value is missing, as downscale reads it
    da = _float32_in_order(da)
    check_physical_range_of(da, fields.units, fields.variable or "the SST")
    lat_dim, lon_dim, time_dim = fields.lat, fields.lon, fields.time
    if target is None:
        frac = parse_factor(4 if factor is None else factor)
        up, pool = frac.numerator, frac.denominator
        high = da
        for dim in (lat_dim, lon_dim):
            if (high.sizes[dim] * pool) % up:
                raise GridError(
                    f"the {dim!r} size {high.sizes[dim]} is not a multiple of the factor "
                    f"{float(frac):g}; crop it, e.g. .isel({dim}=slice(0, "
                    f"{high.sizes[dim] - high.sizes[dim] % up or up}))."
                )
        fine_lat = high[lat_dim].values.astype("float64")
        fine_lon = high[lon_dim].values.astype("float64")
        coarse_lat = _coarse_centres(fine_lat, lat_dim, up, pool)
        coarse_lon = _coarse_centres(fine_lon, lon_dim, up, pool)
        from ..grid.coarsen import coarsen_truth

        coarse = coarsen_truth(high, float(frac), lat=lat_dim, lon=lon_dim)
        assert isinstance(coarse, xr.DataArray)
        low = coarse.assign_coords({lat_dim: coarse_lat, lon_dim: coarse_lon})
        mode = "coarsened-truth"
    else:
        low = da
        tda, tfields = find_fields(target, None, None, None)
        if tfields.time is None:
            raise InputDataError("target needs the same time dimension as the input.")
        tda = canonical_layout(tda, tfields.lat, tfields.lon, tfields.time, 1).canonical(tda)
        check_physical_range_of(
            to_celsius(tda, tfields.units), tfields.units, tfields.variable or "target"
        )
        t_lat, t_lon = tfields.lat, tfields.lon
        tda = to_celsius(tda, tfields.units).transpose(tfields.time, t_lat, t_lon)
        tda = _float32_in_order(tda.where(np.isfinite(tda)))
        tda = tda.rename({tfields.time: time_dim, t_lat: lat_dim, t_lon: lon_dim})
        ratio = regular_spacing(low[lat_dim].values, lat_dim) / regular_spacing(
            tda[lat_dim].values, lat_dim
        )
        frac = parse_factor(round(abs(ratio) * 8) / 8 if factor is None else factor)
        up, pool = frac.numerator, frac.denominator
        fine_lat, _ = fine_coordinate(low[lat_dim], up, pool)
        fine_lon, _ = fine_coordinate(low[lon_dim], up, pool)
        same = (
            tda.sizes[lat_dim] == fine_lat.size
            and tda.sizes[lon_dim] == fine_lon.size
            and np.allclose(tda[lat_dim], fine_lat, atol=1e-6 * abs(fine_lat[1] - fine_lat[0]))
            and np.allclose(tda[lon_dim], fine_lon, atol=1e-6 * abs(fine_lon[1] - fine_lon[0]))
        )
        if not same:
            warn_user(
                f"target grid is not the input grid refined by {float(frac):g}; interpolating "
                "it linearly onto that grid."
            )
            tda = tda.interp({lat_dim: fine_lat, lon_dim: fine_lon}, method="linear")
        low, high = xr.align(
            low,
            tda.assign_coords({lat_dim: fine_lat, lon_dim: fine_lon}),
            join="inner",
            exclude=[lat_dim, lon_dim],
        )
        if low.sizes[time_dim] == 0:
            raise InputDataError("the input and the target share no time step.")
        coarse_lat = low[lat_dim].values.astype("float64")
        coarse_lon = low[lon_dim].values.astype("float64")
        mode = "target"
    # fusion sources first, on the SST's grid as the file has it; the SST last
    inputs = [align_source(s, low, lat_dim, lon_dim, i) for i, s in enumerate(sources or [])]
    names = [str(s.name or f"source{i}") for i, s in enumerate(sources or [])] + ["sst"]
    inputs.append(low)
    periodic = is_global_longitude(coarse_lon, regular_spacing(coarse_lon, lon_dim))
    if periodic:
        inputs, high, coarse_lon, fine_lon = _canonical_seam(
            inputs, high, coarse_lon, fine_lon, lon_dim, up, pool
        )
    return TrainingData(
        low=[_as_array(x) for x in inputs],
        high=_as_array(high),
        upsample=up,
        pool=pool,
        times=np.asarray(low[time_dim].values),
        fine_lat=fine_lat,
        fine_lon=fine_lon,
        coarse_lat=coarse_lat,
        coarse_lon=coarse_lon,
        mode=mode,
        inputs=names,
        periodic=periodic,
    )


def _canonical_seam(
    lows: list[xr.DataArray],
    high: xr.DataArray,
    coarse_lon: np.ndarray,
    fine_lon: np.ndarray,
    lon: Hashable,
    up: int,
    pool: int,
) -> tuple[list[xr.DataArray], xr.DataArray, np.ndarray, np.ndarray]:
    """A global grid rolled so that it starts at the nested blocks' edge nearest 0 E (the
    eastern one of two as near): where the file puts the seam (-180..180, 0..360 or
    21..379) then does not change which cells a patch draw cuts, so neither the model nor
    its validation. A grid stored from near 0 E is left as it is."""
    step = float(coarse_lon[1] - coarse_lon[0])
    fine_step = float(fine_lon[1] - fine_lon[0])
    starts = np.arange(0, coarse_lon.size, pool)  # block starts: pool coarse, up fine cells
    edges = np.round((coarse_lon[starts] - step / 2 + 180.0) % 360.0 - 180.0, 6)
    best = int(np.lexsort((-edges, np.abs(edges)))[0])
    k, edge = int(starts[best]), float(edges[best])
    coarse_lon = edge + (np.arange(coarse_lon.size) + 0.5) * step
    fine_lon = edge + (np.arange(fine_lon.size) + 0.5) * fine_step
    lows = [x.roll({lon: -k}, roll_coords=False).assign_coords({lon: coarse_lon}) for x in lows]
    high = high.roll({lon: -k * up // pool}, roll_coords=False)
    return lows, high.assign_coords({lon: fine_lon}), coarse_lon, fine_lon


def _coarse_centres(fine: np.ndarray, name: Hashable, up: int, pool: int) -> np.ndarray:
    step = regular_spacing(fine, name)
    n = fine.size * pool // up
    return fine[0] - step / 2 + (np.arange(n) + 0.5) * step * up / pool


def _float32_in_order(da: xr.DataArray) -> xr.DataArray:
    """``da`` in float32 and in C order of its dims, whatever dtype and memory layout the
    data came in: coarsening and the normalisation's sums then round alike (a float64 copy,
    or a file stored (lon, lat, time), trained a model up to 0.02 K different)."""
    if da.chunks is not None:
        data = da.data.astype("float32").map_blocks(np.ascontiguousarray, dtype="float32")
    else:
        data = np.ascontiguousarray(da.values, dtype="float32")
    return da.copy(data=data)


def _as_array(da: xr.DataArray) -> Any:
    """numpy for in-memory data, dask for lazy data: patches are cut from either."""
    return _float32_in_order(da).data


# Frames read to estimate the normalisation of a long (possibly lazy) record.
NORMALISATION_FRAMES = 16
MIN_ANOMALY_STD = 0.02  # kelvin


def normalisation_statistics(arr: Any) -> tuple[float, float]:
    """Mean of the ocean cells and the RMS of their local anomalies, in degC and K.

    The generator sees each frame minus its 5 x 5 local mean, so its inputs are of the size
    of those anomalies over the normalisation ``std``. Dividing by the RMS of the anomalies
    (rather than by the field's spread of several kelvin) gives the network inputs of order
    one, and a correction it learns in hundreds of steps instead of thousands.
    """
    from scipy.ndimage import uniform_filter

    nt = arr.shape[0]
    picks = np.unique(np.linspace(0, nt - 1, min(nt, NORMALISATION_FRAMES)).round().astype(int))
    # frame by frame: a lazy record is read one chunk at a time, never whole
    frames = np.stack([np.asarray(arr[int(i)], dtype="float64") for i in picks])
    valid = np.isfinite(frames)
    if not valid.any():
        raise InputDataError(
            "the SST is NaN everywhere; check the variable, its _FillValue and the region."
        )
    mean = float(frames[valid].mean())
    filled = np.where(valid, frames, 0.0)
    size = (1, 5, 5)
    total = uniform_filter(filled, size=size, mode="constant")
    count = uniform_filter(valid.astype("float64"), size=size, mode="constant")
    local = total / np.maximum(count, 1e-12)
    anomalies = (frames - local)[valid & (count > 0.5)]
    std = float(np.sqrt(np.mean(anomalies**2))) if anomalies.size else 0.0
    return mean, max(std, MIN_ANOMALY_STD)


# -- stations ------------------------------------------------------------------


@dataclass
class StationData:
    ids: list[str]
    fy: np.ndarray  # fractional fine-grid row of each station (cell centres at integers)
    fx: np.ndarray
    values: np.ndarray  # (time, station) degC, NaN where no observation


def prepare_stations(
    stations: Any,
    data: TrainingData,
    columns: Mapping[str, Hashable] | None,
    units: str = "degC",
) -> StationData:
    if not np.issubdtype(np.asarray(data.times).dtype, np.datetime64):
        raise StationsError(
            "stations are matched to the record's time steps as dates, but its time axis "
            f"holds {np.asarray(data.times).dtype} values (cftime or undecoded); give it "
            "datetime64 steps first: ds.convert_calendar('standard', use_cftime=False) for a "
            "cftime calendar, or ds.assign_coords(time=pd.date_range(...)) for a climatology "
            "or numeric time."
        )
    table = read_stations(stations, columns, units)
    if data.periodic:  # the grid starts near 0 E: any longitude convention lands on it
        west = data.coarse_lon[0] - (data.coarse_lon[1] - data.coarse_lon[0]) / 2
        table = table.assign(lon=wrap_longitudes(table["lon"].to_numpy(), west))
    first = data.low[-1][0]
    ocean = np.isfinite(np.asarray(first))
    table = drop_outside(table, data.coarse_lat, data.coarse_lon, data.times, ocean)
    ids, values = align_to_times(table, data.times)
    if not np.isfinite(values).any():
        raise StationsError("no station observation falls on the data's time steps.")
    positions = table.groupby("station")[["lat", "lon"]].first().loc[ids]
    fy = (positions["lat"].to_numpy() - data.fine_lat[0]) / (data.fine_lat[1] - data.fine_lat[0])
    fx = (positions["lon"].to_numpy() - data.fine_lon[0]) / (data.fine_lon[1] - data.fine_lon[0])
    return StationData(ids=ids, fy=fy, fx=fx, values=values)


# -- patches -------------------------------------------------------------------


@dataclass
class Batch:
    frames: np.ndarray  # (n, inputs*window, P, P) normalised
    target: np.ndarray  # (n, 1, P*f, P*f) normalised, NaN = land
    station_grid: np.ndarray  # (n, k, 2) grid_sample coordinates in [-1, 1]
    station_values: np.ndarray  # (n, k) normalised, NaN = none


class PatchSampler:
    """Cuts random patches (and the stations inside them) from the training record."""

    def __init__(
        self,
        data: TrainingData,
        window: int,
        patch: int,
        mean: float,
        std: float,
        stations: StationData | None,
    ) -> None:
        _, ny, nx = data.shape
        pool = data.pool
        self.patch = max(pool, min(patch, ny - ny % pool, nx - nx % pool))
        self.patch -= self.patch % pool
        if self.patch < 4:
            raise InputDataError(
                f"the grid ({ny} x {nx} low-resolution cells) is too small to train on; use "
                "at least 8 x 8 cells."
            )
        self.data, self.window, self.mean, self.std = data, window, mean, std
        self.stations = stations
        self.ny, self.nx = ny, nx

    def positions(
        self, rng: np.random.Generator, times: np.ndarray, n: int
    ) -> list[tuple[int, int, int]]:
        pool, p = self.data.pool, self.patch
        t = rng.choice(times, size=n)
        y0 = rng.integers(0, self.ny - p + 1, size=n)
        x0 = rng.integers(0, self.nx - p + 1, size=n)
        if self.stations is not None:  # half of the patches hold a station
            f = self.data.upsample / pool
            pick = rng.integers(0, len(self.stations.ids), size=n)
            jitter_y = rng.integers(1, p, size=n)
            jitter_x = rng.integers(1, p, size=n)
            sy = np.clip((self.stations.fy[pick] / f).astype(int) - jitter_y, 0, self.ny - p)
            sx = np.clip((self.stations.fx[pick] / f).astype(int) - jitter_x, 0, self.nx - p)
            half = rng.random(n) < 0.5
            y0, x0 = np.where(half, sy, y0), np.where(half, sx, x0)
        y0 -= y0 % pool
        x0 -= x0 % pool
        return [(int(a), int(b), int(c)) for a, b, c in zip(t, y0, x0, strict=True)]

    def load(self, positions: list[tuple[int, int, int]]) -> Batch:
        import dask

        data, w, p = self.data, self.window, self.patch
        up, pool = data.upsample, data.pool
        pf = p * up // pool
        lows, highs = [], []
        for t, y0, x0 in positions:
            steps = np.clip(np.arange(t - w + 1, t + 1), 0, None)
            lows.append([src[steps, y0 : y0 + p, x0 : x0 + p] for src in data.low])
            fy0, fx0 = y0 * up // pool, x0 * up // pool
            highs.append(data.high[t, fy0 : fy0 + pf, fx0 : fx0 + pf])
        lows, highs = dask.compute(lows, highs, scheduler="threads")
        frames = np.stack([np.concatenate(parts, axis=0) for parts in lows]).astype("float32")
        target = np.stack(highs)[:, None].astype("float32")
        frames = (frames - self.mean) / self.std
        target = (target - self.mean) / self.std
        grid, values = self._stations(positions, pf)
        return Batch(frames, target, grid, values)

    def _stations(
        self, positions: list[tuple[int, int, int]], pf: int
    ) -> tuple[np.ndarray, np.ndarray]:
        n = len(positions)
        st = self.stations
        if st is None:
            return np.zeros((n, 1, 2), "float32"), np.full((n, 1), np.nan, "float32")
        up, pool = self.data.upsample, self.data.pool
        grids, vals = [], []
        for t, y0, x0 in positions:
            ly = st.fy - y0 * up // pool
            lx = st.fx - x0 * up // pool
            obs = st.values[t]
            ok = (ly >= 0) & (ly <= pf - 1) & (lx >= 0) & (lx <= pf - 1) & np.isfinite(obs)
            # grid_sample with align_corners=False: pixel centre i sits at (2i + 1) / n - 1
            grids.append(np.stack([(2 * lx[ok] + 1) / pf - 1, (2 * ly[ok] + 1) / pf - 1], -1))
            vals.append((obs[ok] - self.mean) / self.std)
        k = max(1, max(len(v) for v in vals))
        grid = np.zeros((n, k, 2), "float32")
        values = np.full((n, k), np.nan, "float32")
        for i, (g, v) in enumerate(zip(grids, vals, strict=True)):
            grid[i, : len(v)] = g
            values[i, : len(v)] = v
        return grid, values


# -- validation split ----------------------------------------------------------


def split_times(
    nt: int, validation: float, blocks: int | None, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation time indices: validation in contiguous blocks.

    ``round(nt * validation)`` steps are held out in ``blocks`` contiguous blocks spread
    evenly over the record (default: one per 24 steps, 1 to 4). The ``window - 1`` steps
    on either side of a block (at least one) are used for neither, so no training frame
    is adjacent to a validation frame and no validation target is inside a training
    window. With ``validation=0`` the validation frames are the training frames.
    """
    everything = np.arange(nt)
    n_val = round(nt * validation)
    if n_val == 0:
        return everything, everything
    if blocks is None:
        blocks = max(1, min(4, nt // 24))
    blocks = max(1, min(blocks, n_val))
    gap = max(2, window)
    sizes = np.full(blocks, n_val // blocks)
    sizes[: n_val % blocks] += 1
    # block b is centred on the middle of the b-th of `blocks` equal parts of the record
    val: list[int] = []
    for b, size in enumerate(sizes):
        centre = (b + 0.5) * nt / blocks
        start = int(np.clip(round(centre - size / 2), 0, nt - size))
        val.extend(range(start, start + int(size)))
    val_set = np.unique(val)
    distance = np.min(np.abs(everything[:, None] - val_set[None, :]), axis=1)
    train = everything[distance >= gap]
    if train.size == 0:
        raise InputDataError(
            f"the record has {nt} time steps: too few to hold out {n_val} in {blocks} "
            f"block(s) and keep {gap - 1} step(s) between them and the training steps; pass a "
            "smaller validation= (or validation=0), fewer validation_blocks=, or a longer "
            "record."
        )
    return train, val_set


# -- augmentation --------------------------------------------------------------


def augment(batch: Batch, codes: np.ndarray) -> Batch:
    """Flip and transpose each patch by its code (0-7: bit 0 flips x, bit 1 flips y,
    bit 2 swaps the axes), the stations with it.

    The network sees anomalies from a local mean, so a flipped coastline or eddy is as
    real as the original; on a small record the eight orientations are eight times the
    examples, and the model learns less of one region's geography by heart.
    """
    frames, target = batch.frames.copy(), batch.target.copy()
    grid = batch.station_grid.copy()
    for i, code in enumerate(codes):
        f, t, g = frames[i], target[i], grid[i]
        if code & 1:
            f, t = f[..., ::-1], t[..., ::-1]
            g[:, 0] = -g[:, 0]
        if code & 2:
            f, t = f[..., ::-1, :], t[..., ::-1, :]
            g[:, 1] = -g[:, 1]
        if code & 4:
            f, t = np.swapaxes(f, -1, -2), np.swapaxes(t, -1, -2)
            g[:, [0, 1]] = g[:, [1, 0]]
        frames[i], target[i], grid[i] = f, t, g
    return Batch(frames, target, grid, batch.station_values)
