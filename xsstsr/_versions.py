"""``show_versions()``: what a bug report needs about this installation."""

from __future__ import annotations

import importlib
import platform
import sys
from typing import TextIO

MODULES = (
    "xsstsr",
    "numpy",
    "pandas",
    "xarray",
    "dask",
    "distributed",
    "torch",
    "safetensors",
    "pooch",
    "netCDF4",
    "cf_xarray",
    "scipy",
    "zarr",
    "matplotlib",
    "tqdm",
)


def versions() -> dict[str, str]:
    """Versions of Python, the platform, PyTorch's devices and xsstsr's dependencies."""
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
    for name in MODULES:
        try:
            module = importlib.import_module(name)
            info[name] = str(getattr(module, "__version__", "installed"))
        except ImportError:
            info[name] = "not installed"
    try:
        import torch

        info["torch.cuda"] = (
            f"{torch.version.cuda} ({torch.cuda.device_count()} GPU: "
            f"{', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))})"
            if torch.cuda.is_available()
            else "not available"
        )
        info["torch.threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    from .models.weights import cache_dir

    info["xsstsr.cache"] = str(cache_dir())
    return info


def show_versions(file: TextIO | None = None) -> None:
    """Print versions for a bug report.

    Examples
    --------
    >>> xsstsr.show_versions()  # doctest: +SKIP
    """
    out = file or sys.stdout
    info = versions()
    width = max(len(k) for k in info)
    print("INSTALLED VERSIONS\n------------------", file=out)
    for key, value in info.items():
        print(f"{key:<{width}}: {value}", file=out)
