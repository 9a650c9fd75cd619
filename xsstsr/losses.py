"""Losses: moved to xsstsr.nn.

This old path works, with a DeprecationWarning, until xsstsr 0.3.
"""

from .deprecation import moved

__getattr__ = moved(
    "xsstsr.losses",
    (
        "xsstsr.nn.losses",
        "xsstsr.nn.adversarial",
    ),
)
