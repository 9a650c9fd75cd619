"""matplotlib, imported on first use, with a backend that works without a display."""

from __future__ import annotations

import os
from typing import Any

from .errors import MissingDependencyError


def pyplot() -> Any:
    """matplotlib.pyplot; Agg where there is no display, so scripts and CI can plot."""
    try:
        import matplotlib

        interactive = matplotlib.get_backend().lower() not in (
            "agg",
            "inline",  # what current matplotlib reports after %matplotlib inline
            "module://matplotlib_inline.backend_inline",
        )
        if interactive and not os.environ.get("DISPLAY"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise MissingDependencyError("plots need matplotlib: pip install 'xsstsr[plot]'") from err
    return plt


def cmocean() -> Any:
    """The cmocean module, or None where it is not installed."""
    import warnings

    try:
        with warnings.catch_warnings():
            # cmocean 4.0 builds its maps with an argument matplotlib 3.11 deprecates
            warnings.simplefilter("ignore", DeprecationWarning)
            import cmocean
    except ImportError:
        return None
    return cmocean
