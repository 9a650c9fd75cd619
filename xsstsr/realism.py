"""Realistic synthetic SST helpers: moved to xsstsr.datasets.realism and xsstsr.grid.land.

This old path works, with a DeprecationWarning, until xsstsr 0.3.
"""

from .deprecation import moved

__getattr__ = moved(
    "xsstsr.realism",
    (
        "xsstsr.datasets.realism",
        "xsstsr.grid.land",
    ),
)
