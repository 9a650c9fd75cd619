"""Tiled inference: halos, batches of tiles, crops and the dask graph.

A block of shape (..., time, y, x) is extended by the model's halo in space and
by the previous block's last ``window - 1`` steps in time (:func:`look_back`), run
through the generator in batches of tiles
and cropped, so that the result equals whole-field inference to float rounding
whatever the chunking. Kernels are module-level functions and receive a small
:class:`~xsstsr.model.ModelRef`, never the model, so graphs stay light and run
on threads, processes or a dask.distributed cluster alike.
"""

from __future__ import annotations

import bisect
import itertools
import operator
from dataclasses import dataclass
from typing import Any

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from ..cf.units import OUTPUT_BOUNDS_DEGC
from ..models.container import Model
from .cache import ModelRef, resolve_ref
from .devices import autocast_dtype, device_lock, free_device_memory, is_cuda, worker_device

# Low-resolution pixels per tile side (before the halo). On 2 CPU cores 256-pixel tiles one at
# a time ran ~2x faster per pixel than 128-pixel tiles in batches of 4 (less halo, and the
# activations of one tile stay in cache).
DEFAULT_TILE = 256


#: A compute block larger than this many default blocks a side is split (memory per task).
BLOCK_SPLIT = 8


CPU_BATCH_BYTES = 512 * 1024**2  # activation budget per forward pass on the CPU


@dataclass(frozen=True)
class TileSpec:
    """Everything a block kernel needs besides the data; small and picklable."""

    ref: ModelRef
    device: str  # "auto" is resolved in each worker process: a GPU-less client is fine
    upsample: int
    pool: int
    halo: int
    window: int
    mask_output: bool
    batch_size: int | None
    tile: int | None = None  # None: DEFAULT_TILE on the CPU, gpu_tile() on a GPU
    periodic_x: bool = False
    precision: str = "auto"  # resolved with the device, in the worker
    self_ensemble: bool = False  # average over the 8 flips and transposes of each tile

    @property
    def factor(self) -> float:
        return self.upsample / self.pool


GPU_TILES = (1024, 512, 256, 128, 64)  # tile sides tried on a GPU, largest first


GPU_MEMORY_SHARE = 0.5  # of the free device memory, for one forward pass's activations


def activation_bytes_per_pixel(spec: TileSpec, model: Model) -> int:
    """Peak float32 activation bytes per low-resolution pixel of one forward pass (an upper
    bound: the widest layers alive at once, and the sub-pixel output)."""
    arch = model.metadata["architecture"]
    return 4 * (3 * int(arch["features"]) + 2 * int(arch["up_features"]) * spec.upsample**2 + 8)


def gpu_tile(free_bytes: int, per_pixel: int, halo: int) -> int:
    """The largest tile side whose one (halo-extended) tile fits the memory share; on a GPU
    the halo's share of the work should be small and memory, not cache, is the limit."""
    budget = GPU_MEMORY_SHARE * free_bytes
    for side in GPU_TILES:
        if (side + 2 * halo) ** 2 * per_pixel <= budget:
            return side
    return GPU_TILES[-1]


def tiles_per_pass(free_bytes: int | None, per_pixel: int, tile_pixels: int) -> int:
    """Tiles per forward pass: a fixed activation budget on the CPU (``free_bytes`` None),
    the memory share of the free device memory on a GPU."""
    budget = CPU_BATCH_BYTES if free_bytes is None else int(GPU_MEMORY_SHARE * free_bytes)
    return max(1, budget // max(1, per_pixel * tile_pixels))


def fine_index(n_fine: int, upsample: int, pool: int) -> np.ndarray:
    """Index of the coarse cell that holds each fine cell's centre."""
    return ((2 * np.arange(n_fine) + 1) * pool) // (2 * upsample)


def _even_pieces(size: int, parts: int, multiple: int) -> list[tuple[int, int]]:
    """(start, stop) of ``parts`` near-equal pieces of ``size`` cells, cut at multiples of
    ``multiple`` (a remainder goes to the last piece)."""
    units = size // multiple
    parts = max(1, min(parts, units))
    edges = [0]
    for i in range(parts):
        edges.append(edges[-1] + multiple * (units // parts + (i < units % parts)))
    edges[-1] = size
    return list(itertools.pairwise(edges))


def tile_grid(
    ny: int, nx: int, tile: int, multiple: int, halo: int = 0
) -> list[tuple[int, int, int, int]]:
    """Tiles (y0, y1, x0, x1) covering a ny x nx field: rows of at most ``tile`` cells, each
    row cut into as few near-equal pieces as keep a tile with its halo (clipped at the
    field's edges) within the ``(tile + 2 * halo) ** 2`` cells of a square tile.

    A budget of area rather than side keeps the memory of a forward pass what the tile side
    promises, while a block narrower than a tile (a 180 x 360 field, a band of rows) runs
    in fewer, wider tiles and pays the halo on fewer edges; near-equal pieces keep the
    tiles one shape, so they batch.
    """
    if ny <= 0 or nx <= 0:
        return []

    def extent(lo: int, hi: int, size: int) -> int:
        return min(size, hi + halo) - max(0, lo - halo)

    rows = _even_pieces(ny, -(-ny // tile), multiple)
    height = max(extent(y0, y1, ny) for y0, y1 in rows)
    budget = (tile + 2 * halo) ** 2
    parts = max(1, -(-nx // max(1, budget // height)))  # no fewer can fit
    while True:
        cols = _even_pieces(nx, parts, multiple)
        widest = max(extent(x0, x1, nx) for x0, x1 in cols)
        if height * widest <= budget or len(cols) < parts:  # fits, or cannot cut finer
            break
        parts += 1
    return [(y0, y1, x0, x1) for y0, y1 in rows for x0, x1 in cols]


def infer_frames(frames: np.ndarray, spec: TileSpec, model: Model) -> np.ndarray:
    """Run the generator over (n, window, y, x) normalised frames; return (n, y*f, x*f).

    The field is cut into tiles of at most a ``spec.tile`` square's area, halo included
    (:func:`tile_grid`), plus the halo (clipped at the field's edges), tiles of one shape
    are batched, and the halos are cropped, so the result equals one forward pass over
    the whole field.
    """
    import torch

    n, _, ny, nx = frames.shape
    up, pool, halo = spec.upsample, spec.pool, spec.halo
    device = worker_device(spec.device)
    cuda = is_cuda(device)
    per_pixel = activation_bytes_per_pixel(spec, model)
    free = free_device_memory(device) if cuda else None
    size = spec.tile
    if size is None:
        size = gpu_tile(free, per_pixel, halo) if free is not None else DEFAULT_TILE
    tile = max(pool, size - size % pool)
    out = np.empty((n, ny * up // pool, nx * up // pool), dtype=np.float32)
    net = model.network(device)
    half = autocast_dtype(spec.precision, device)

    # Tiles grouped by their (halo-extended) shape so that each group batches.
    groups: dict[tuple[int, int], list[tuple[int, int, int, int, int, int]]] = {}
    for y0, y1, x0, x1 in tile_grid(ny, nx, tile, pool, halo):
        ya, yb = max(0, y0 - halo), min(ny, y1 + halo)
        xa, xb = max(0, x0 - halo), min(nx, x1 + halo)
        groups.setdefault((yb - ya, xb - xa), []).append((y0, y1, ya, x0, x1, xa))

    for (hy, hx), tiles in groups.items():
        batch = spec.batch_size or tiles_per_pass(free, per_pixel, hy * hx)
        items = [(i, t) for i in range(n) for t in tiles]
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            stack = np.stack(
                [frames[i, :, ya : ya + hy, xa : xa + hx] for i, (_, _, ya, _, _, xa) in chunk]
            )
            x = torch.from_numpy(stack)
            if cuda:
                x = x.pin_memory().to(device, non_blocking=True)
            x = x.contiguous(memory_format=torch.channels_last)
            with device_lock(device), torch.inference_mode():
                if spec.self_ensemble:
                    y = dihedral_mean(lambda z: forward_splitting(net, z, half, device), x)
                else:
                    y = forward_splitting(net, x, half, device)
            result = y[:, 0].float().cpu().numpy()
            for k, (i, (y0, y1, ya, x0, x1, xa)) in enumerate(chunk):
                oy, ox = (y0 - ya) * up // pool, (x0 - xa) * up // pool
                hy_out, hx_out = (y1 - y0) * up // pool, (x1 - x0) * up // pool
                out[
                    i,
                    y0 * up // pool : y0 * up // pool + hy_out,
                    x0 * up // pool : x0 * up // pool + hx_out,
                ] = result[k, oy : oy + hy_out, ox : ox + hx_out]
    return out


def dihedral_mean(forward: Any, x: Any) -> Any:
    """The mean of ``forward`` over the eight flips and transposes of ``x`` (each output
    turned back): geometric self-ensembling, about 8 times the cost of one pass."""
    total: Any = None
    for code in range(8):
        z = x.transpose(-1, -2) if code & 4 else x
        dims = [d for bit, d in ((1, -1), (2, -2)) if code & bit]
        z = z.flip(dims) if dims else z
        y = forward(z.contiguous()).float()
        y = y.flip(dims) if dims else y
        y = y.transpose(-1, -2) if code & 4 else y
        total = y if total is None else total + y
    return total / 8


def forward_splitting(net: Any, x: Any, autocast: Any, device: str) -> Any:
    """Forward pass; on a device out-of-memory, split the batch in two and retry."""
    import torch

    from ..errors import DeviceError

    try:
        return net(x, autocast=autocast)
    except torch.OutOfMemoryError as err:
        if is_cuda(device):
            torch.cuda.empty_cache()
        if x.shape[0] == 1:
            side = max(x.shape[-2:])
            raise DeviceError(
                f"one tile of {x.shape[-2]} x {x.shape[-1]} low-resolution pixels does not fit "
                f"in the free memory of {device}; pass a smaller tile_size= (e.g. "
                f"tile_size={max(16, side // 2)}) or free memory on the device."
            ) from err
        half = x.shape[0] // 2
        return torch.cat(
            [
                forward_splitting(net, x[:half], autocast, device),
                forward_splitting(net, x[half:], autocast, device),
            ]
        )


def downscale_block(
    block: np.ndarray,
    spec: TileSpec,
    left: tuple[int, int, int],
    right: tuple[int, int, int],
) -> np.ndarray:
    """Downscale one (inputs, others..., time, y, x) block in degC, extended by halos.

    ``left``/``right`` are the halo widths present on each side for (time, y, x).
    Only earlier steps feed a window, and the record's first steps repeat the first
    frame. The last input is the SST; the others are fusion sources. Returns
    (others..., time, y*f, x*f) with the halos cropped.
    """
    model = resolve_ref(spec.ref)
    mean, std = model.normalisation
    lt, ly, lx = left
    rt, ry, rx = right
    n_inputs = block.shape[0]
    lead = block.shape[1:-3]
    nt, ny, nx = block.shape[-3:]
    cube = block.reshape((n_inputs, -1, nt, ny, nx)).astype(np.float32, copy=False)
    norm = (cube - np.float32(mean)) / np.float32(std)
    core_t = nt - lt - rt
    w = spec.window
    if lt < w - 1:  # start of the record: repeat the first frame
        pad = np.repeat(norm[:, :, :1], w - 1 - lt, axis=2)
        norm = np.concatenate([pad, norm], axis=2)
        offset = w - 1
    else:
        offset = lt
    # windows ending at each core step, inputs then time on the channel axis
    idx = offset + np.arange(core_t)[:, None] + np.arange(-(w - 1), 1)[None, :]
    frames = norm[:, :, idx]  # (inputs, m, core_t, w, y, x)
    frames = frames.transpose(1, 2, 0, 3, 4, 5).reshape((-1, n_inputs * w, ny, nx))
    fine = infer_frames(np.ascontiguousarray(frames), spec, model)
    up, pool = spec.upsample, spec.pool
    fy0, fy1 = ly * up // pool, (ny - ry) * up // pool
    fx0, fx1 = lx * up // pool, (nx - rx) * up // pool
    # in place, on the crop of our own buffer: at 0.25 degrees x4 each full-size copy of a
    # 2-step block is 130 MiB, and peak memory while streaming is a few such blocks
    fine = fine[:, fy0:fy1, fx0:fx1]
    fine *= np.float32(std)
    fine += np.float32(mean)
    np.clip(fine, *OUTPUT_BOUNDS_DEGC, out=fine)  # never below freezing seawater (NaN kept)
    if spec.mask_output:
        valid = np.isfinite(cube[-1, :, lt : lt + core_t, ly : ny - ry, lx : nx - rx])
        valid = valid.reshape((-1, *valid.shape[-2:]))
        iy = fine_index(fine.shape[-2], up, pool)
        ix = fine_index(fine.shape[-1], up, pool)
        np.copyto(fine, np.float32(np.nan), where=~valid[:, iy][:, :, ix])
    return fine.reshape((*lead, core_t, *fine.shape[-2:])).astype(block.dtype, copy=False)


def _block_kernel(
    block: np.ndarray,
    previous: np.ndarray | None,
    spec: TileSpec,
    depth: tuple[int, int, int],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """map_blocks kernel: prepend the previous block's last steps, work out the halos
    present on each side and downscale."""
    assert block_info is not None
    device = worker_device(spec.device)
    if device == "cpu":
        # On the CPU, torch already spreads each forward pass over every core; a second
        # thread padding and cropping meanwhile would only compete with its threads, so
        # one block runs at a time per process (on a GPU, that CPU work overlaps instead).
        with device_lock(device):
            return _run_block(block, previous, spec, depth, block_info)
    return _run_block(block, previous, spec, depth, block_info)


def _run_block(
    block: np.ndarray,
    previous: np.ndarray | None,
    spec: TileSpec,
    depth: tuple[int, int, int],
    block_info: dict[Any, Any],
) -> np.ndarray:
    info = block_info[None]
    loc = info["chunk-location"][-3:]
    num = info["num-chunks"][-3:]
    periodic = (False, spec.periodic_x)
    left_yx = [
        d if (i > 0 or p) else 0 for d, i, p in zip(depth[1:], loc[1:], periodic, strict=True)
    ]
    right_yx = [
        d if (i < n - 1 or p) else 0
        for d, i, n, p in zip(depth[1:], loc[1:], num[1:], periodic, strict=True)
    ]
    left_t = 0
    if previous is not None and loc[0] > 0:  # the look-back steps from the previous block
        block = np.concatenate([previous, block], axis=-3)
        left_t = previous.shape[-3]
    left = (left_t, *left_yx)
    right = (0, *right_yx)
    return downscale_block(block, spec, left, right)  # type: ignore[arg-type]


def _last_steps(block: np.ndarray, n: int) -> np.ndarray:
    return block[..., -n:, :, :]


def look_back(arr: da.Array, steps: int) -> da.Array:
    """An array whose time block ``i`` is the last ``steps`` steps of ``arr``'s block
    ``i - 1`` (block 0 repeats its own: the kernel ignores it).

    Each task then depends on its own block and a small slice of the one before (with
    ``da.overlap`` in time, each held a copy of its neighbours' overlapped blocks). Under a
    store's finalize, dask's ordering still computes inputs ahead of the writes; writing
    in passes (:func:`xsstsr.io.write_dataset`) bounds that.
    """
    axis = arr.ndim - 3
    n = len(arr.chunks[axis])
    tail_chunks = list(arr.chunks)
    tail_chunks[axis] = (steps,) * n
    tails = da.map_blocks(_last_steps, arr, n=steps, chunks=tuple(tail_chunks), dtype=arr.dtype)
    index: list[Any] = [slice(None)] * arr.ndim
    first, rest = list(index), list(index)
    first[axis] = slice(0, steps)
    rest[axis] = slice(0, (n - 1) * steps)
    return da.concatenate([tails[tuple(first)], tails[tuple(rest)]], axis=axis)


def _chunks_for(
    chunks: tuple[int, ...], minimum: int, multiple: int, short_last: bool = False
) -> tuple[int, ...]:
    """Merge chunks so each is at least ``minimum`` and a multiple of ``multiple``.

    ``short_last``: the last chunk may be shorter than ``minimum`` (time: only a chunk
    with a successor gives a look-back). Merging it would make one block larger than the
    others, whose output is then split again for zarr (a heavier last task).
    """
    total = sum(chunks)
    need = max(minimum, multiple, 1)
    out: list[int] = []
    acc = 0
    for c in chunks:
        acc += c
        if acc >= need and acc % multiple == 0:
            out.append(acc)
            acc = 0
    if acc:
        if out and (acc % multiple or (acc < need and not short_last)):
            out[-1] += acc
        else:
            out.append(acc)
    if not out:
        out = [total]
    return tuple(out)


def compute_blocks(chunks: tuple[int, ...], block: int, multiple: int) -> tuple[int, ...]:
    """Compute blocks along one spatial axis, whatever the storage chunks: chunks merged
    until each block holds at least ``block`` cells (or the whole axis), blocks larger than
    ``BLOCK_SPLIT * block`` split into near-equal pieces; all multiples of ``multiple``."""
    merged = _chunks_for(chunks, block, multiple)
    out: list[int] = []
    limit = BLOCK_SPLIT * block
    for size in merged:
        pieces = -(-size // limit)
        if pieces == 1:
            out.append(size)
            continue
        units = size // multiple  # split in whole multiples; the remainder to the last
        base = [units // pieces + (i < units % pieces) for i in range(pieces)]
        out.extend(b * multiple for b in base)
        out[-1] += size - sum(b * multiple for b in base)
    return tuple(out)


def compute_chunks(
    chunks: tuple[tuple[int, ...], ...], spec: TileSpec
) -> tuple[tuple[int, ...], ...]:
    """The compute blocks of a (..., time, y, x) array stored in ``chunks``.

    Time chunks hold the window's look-back; spatial blocks at least a tile and nothing
    smaller than the halo, in whole fine cells (:func:`compute_blocks`). Leading axes keep
    their chunks. Rechunking the inputs to these before any per-chunk work keeps small
    storage chunks from multiplying the graph's tasks.
    """
    block = max(spec.halo, spec.tile or DEFAULT_TILE)
    time, y, x = chunks[-3:]
    return (
        *chunks[:-3],
        _chunks_for(time, spec.window - 1, 1, short_last=True),
        compute_blocks(y, block, spec.pool),
        compute_blocks(x, block, spec.pool),
    )


def downscale_dask(
    arr: da.Array, spec: TileSpec, storage: tuple[tuple[int, ...], ...] | None = None
) -> da.Array:
    """Build the lazy graph for an (inputs, others..., time, y, x) dask array in degC.

    Compute blocks are the library's choice (:func:`compute_chunks`), so the halo's cost
    does not depend on how the input is stored; the output is then rechunked to the
    storage chunks times the factor (in whole fine cells), so storage layout and compute
    layout are independent. ``storage``: the chunks the input had before the caller
    rechunked it to :func:`compute_chunks` (default: ``arr``'s own), matched by their last
    three axes.
    """
    ndim = arr.ndim
    if len(arr.chunks[0]) > 1:
        arr = arr.rechunk({0: -1})
    w, halo, up, pool = spec.window, spec.halo, spec.upsample, spec.pool
    stored = arr.chunks[1:] if storage is None else storage
    storage_yx = [_chunks_for(stored[axis], 1, pool) for axis in (-2, -1)]  # whole fine cells
    chunks = (*arr.chunks[:-3], *compute_chunks(stored[-3:], spec))
    merged_time = chunks[-3] != stored[-3]
    if chunks != arr.chunks:
        arr = arr.rechunk(chunks)
    depth_t = min(w - 1, arr.shape[-3]) if len(arr.chunks[-3]) > 1 else 0
    depth_y = halo if len(arr.chunks[-2]) > 1 else 0
    periodic = spec.periodic_x and arr.shape[-1] >= halo
    depth_x = halo if (len(arr.chunks[-1]) > 1 or periodic) else 0
    if not periodic:
        spec = TileSpec(**{**spec.__dict__, "periodic_x": False})
    # halos in space by overlap; the window's look-back in time by a separate array
    depth = {ndim - 2: depth_y, ndim - 1: depth_x}
    boundary = {ndim - 2: "none", ndim - 1: "periodic" if periodic else "none"}
    for axis in range(ndim - 2):
        depth[axis] = 0
        boundary[axis] = "none"

    def in_space(a: da.Array) -> da.Array:
        if depth_y or depth_x:
            return da.overlap.overlap(a, depth=depth, boundary=boundary)
        return a

    previous = in_space(look_back(arr, depth_t)) if depth_t else None
    out_chunks = arr.chunks[1:-2] + tuple(
        tuple(c * up // pool for c in axis_chunks) for axis_chunks in arr.chunks[-2:]
    )
    out = da.map_blocks(
        _block_kernel,
        in_space(arr),
        previous,  # paired block by block (map_blocks matches numbers of blocks, not sizes)
        spec=spec,
        depth=(depth_t, depth_y, depth_x),
        chunks=out_chunks,
        drop_axis=0,
        dtype=arr.dtype,
        meta=np.empty((0,) * (ndim - 1), dtype=arr.dtype),
        name="sstsr-downscale-" + da.core.tokenize(arr.name, spec),
    )
    # back to the storage chunks: in space times the factor, in time as stored (other
    # variables of the Dataset keep theirs, and the result's chunks must agree with them)
    storage_out = {
        out.ndim - 2 + i: tuple(c * up // pool for c in axis) for i, axis in enumerate(storage_yx)
    }
    if merged_time:
        storage_out[out.ndim - 3] = stored[-3]
    if any(out.chunks[a] != c for a, c in storage_out.items()):
        out = split_chunks(out, storage_out)
    return out


def split_chunks(arr: da.Array, chunks: dict[int, tuple[int, ...]]) -> da.Array:
    """``arr.rechunk(chunks)`` in one slicing task per new chunk when every new chunk lies
    inside one block of ``arr`` (compute blocks are merged storage chunks, so the output's
    split back to storage always does); otherwise a plain rechunk.

    Dask's rechunk spends a split and a merge task on each piece; on small fields stored in
    small chunks those tasks cost as much as the network.
    """
    target = tuple(chunks.get(axis, c) for axis, c in enumerate(arr.chunks))
    starts = [tuple(itertools.accumulate(c, initial=0)) for c in arr.chunks]
    pieces: list[list[tuple[int, slice]]] = []  # per axis, per new chunk: (block, slice)
    for axis, new in enumerate(target):
        axis_pieces = []
        for lo, hi in itertools.pairwise(itertools.accumulate(new, initial=0)):
            block = bisect.bisect_right(starts[axis], lo) - 1
            if hi > starts[axis][block + 1]:
                return arr.rechunk(chunks)
            start = starts[axis][block]
            axis_pieces.append((block, slice(lo - start, hi - start)))
        pieces.append(axis_pieces)
    name = "sstsr-split-" + da.core.tokenize(arr.name, target)
    graph: dict[Any, Any] = {}
    for index in itertools.product(*(range(len(c)) for c in target)):
        parts = [pieces[axis][i] for axis, i in enumerate(index)]
        source = (arr.name, *(block for block, _ in parts))
        graph[(name, *index)] = (operator.getitem, source, tuple(s for _, s in parts))
    deps: list[Any] = [arr]  # dask's DaskCollection protocol does not match its own Array
    layers = HighLevelGraph.from_collections(name, graph, dependencies=deps)
    return da.Array(layers, name, target, meta=arr._meta)


def downscale_numpy(values: np.ndarray, spec: TileSpec) -> np.ndarray:
    """Eager path for in-memory (inputs, others..., time, y, x) data in degC."""
    if spec.periodic_x and values.shape[-1] >= spec.halo:
        h = spec.halo
        padded = np.concatenate([values[..., -h:], values, values[..., :h]], axis=-1)
        return downscale_block(padded, spec, (0, 0, h), (0, 0, h))
    return downscale_block(values, spec, (0, 0, 0), (0, 0, 0))
