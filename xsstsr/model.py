"""Model container: moved to xsstsr.models.

This old path works, with a DeprecationWarning, until xsstsr 0.3.
"""

from .deprecation import moved

__getattr__ = moved(
    "xsstsr.model",
    (
        "xsstsr.models.container",
        "xsstsr.models.metadata",
        "xsstsr.inference.cache",
    ),
)
