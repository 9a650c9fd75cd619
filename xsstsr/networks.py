"""Networks: moved to xsstsr.nn.networks.

This old path works, with a DeprecationWarning, until xsstsr 0.3.
"""

from .deprecation import moved

__getattr__ = moved("xsstsr.networks", ("xsstsr.nn.networks",))
