"""Released weights: moved to xsstsr.models.weights.

This old path works, with a DeprecationWarning, until xsstsr 0.3.
"""

from .deprecation import moved

__getattr__ = moved(
    "xsstsr.weights",
    (
        "xsstsr.models.weights",
        "xsstsr.models.download",
        "xsstsr.grid.factor",
    ),
)
