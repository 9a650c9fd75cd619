"""The one place that decides the device and the precision a generator runs with."""

from __future__ import annotations

import os
import threading
from typing import Any

_DEVICE_LOCKS: dict[str, threading.RLock] = {}
_LOCKS_LOCK = threading.Lock()


def free_device_memory(device: str) -> int:
    import torch

    free, _ = torch.cuda.mem_get_info(torch.device(device))
    return int(free)


PRECISIONS = ("auto", "float32", "float16", "bfloat16")


def check_precision(precision: object) -> str:
    """Validate a ``precision=`` argument early, where the caller can still fix it."""
    from ..errors import InputDataError

    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise InputDataError(
            f"precision must be one of {', '.join(map(repr, PRECISIONS))}, got {precision!r}; "
            "'auto' is float16 on a GPU (within 0.01 K of float32) and float32 on the CPU."
        )
    return precision


def resolve_precision(precision: str, device: str) -> str:
    """``"auto"`` -> float16 on a GPU, float32 elsewhere (``device`` "auto" stays undecided)."""
    if precision != "auto" or device == "auto":
        return precision
    return "float16" if is_cuda(device) else "float32"


def autocast_dtype(precision: str, device: str) -> Any:
    """The torch dtype of the correction branch, or None for plain float32."""
    import torch

    dtypes = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}
    return dtypes[resolve_precision(precision, device)]


def resolve_device(device: str) -> str:
    """``"auto"`` -> ``"cuda"`` when a GPU is visible, else ``"cpu"``; validate others."""
    import torch

    from ..errors import DeviceError

    if not isinstance(device, str):
        raise DeviceError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}.")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        return device
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device={device!r} was requested but no CUDA GPU is visible to PyTorch "
                f"(torch {torch.__version__}); use device='cpu' or 'auto', or install a CUDA "
                "build of PyTorch."
            )
        return device
    raise DeviceError(f"unknown device {device!r}; use 'auto', 'cpu' or 'cuda[:N]'.")


def device_lock(device: str) -> threading.RLock:
    # One forward pass at a time per device and process: torch already uses every core
    # (or the whole GPU), and concurrent passes would only compete for them.
    with _LOCKS_LOCK:
        return _DEVICE_LOCKS.setdefault(device, threading.RLock())


def worker_device(requested: str) -> str:
    """The device a task runs on: ``"auto"`` is decided where the task runs."""
    return resolve_device(requested) if requested == "auto" else requested


def graph_device(device: str) -> str:
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


def is_cuda(device: str) -> bool:
    """Whether ``device`` (as resolved) is a CUDA GPU."""
    return device.startswith("cuda")


def process_device(device: str, rank: int) -> str:
    """The device of data-parallel process ``rank``: its own GPU (torchrun's LOCAL_RANK) when
    training on CUDA, else ``device``."""
    if not is_cuda(device):
        return device
    import torch

    local = int(os.environ.get("LOCAL_RANK", rank % max(1, torch.cuda.device_count())))
    device = f"cuda:{local}"
    torch.cuda.set_device(device)
    return device
