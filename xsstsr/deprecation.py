"""Old import paths that keep working for one release, with a DeprecationWarning."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Sequence
from typing import Any

REMOVED_IN = "0.3"


def moved(old: str, homes: Sequence[str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``old`` that finds each name in the first of ``homes``
    (module paths) that has it, and warns where to import it from instead."""

    def __getattr__(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        found = [(home, importlib.import_module(home)) for home in homes]
        # a name defined in a home wins over the same name imported there
        found.sort(key=lambda hm: getattr(getattr(hm[1], name, None), "__module__", hm[0]) != hm[0])
        for home, module in found:
            if hasattr(module, name):
                warnings.warn(
                    f"{old}.{name} moved to {home}.{name}: import it from there "
                    f"(the old path goes in xsstsr {REMOVED_IN}).",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(module, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
