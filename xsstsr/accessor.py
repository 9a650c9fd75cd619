"""The ``.sstsr`` accessor on Dataset and DataArray: a thin front over plain functions.

It keeps the object and nothing else (xarray makes a new accessor for every new
object); each method calls the function that owns the work, which also works
without the accessor. Each method shows that function's signature (less its first
parameter, the object) and docstring, so ``help(ds.sstsr.downscale)`` and Jupyter's
Shift-Tab list every parameter; the function is imported on first access to the
method, so ``import xsstsr`` stays free of torch and matplotlib.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import xarray as xr

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd
    from matplotlib.figure import Figure

    from .models.container import Model

R = TypeVar("R")


class _Front(Generic[R]):
    """A method that calls ``xsstsr.<module>.<name>(self._obj, ...)``.

    Reading the method (on the class or on an accessor) imports the module once and
    builds a real function with the target's ``__doc__`` and a ``__signature__`` that
    is the target's with ``self`` in place of its first parameter; ``inspect`` and
    ``help`` drop ``self`` on the bound method, as for any method.
    """

    def __init__(self, module: str, name: str) -> None:
        self._module = module
        self._name = name
        self._attr = name
        self._method: Callable[..., R] | None = None

    def __set_name__(self, owner: type, attr: str) -> None:
        self._attr = attr

    def target(self) -> Callable[..., R]:
        """The function this method fronts (imported now if it was not yet)."""
        module = importlib.import_module(f".{self._module}", __package__)
        func: Callable[..., R] = getattr(module, self._name)
        return func

    def _build(self, owner: type) -> Callable[..., R]:
        target = self.target()

        def method(self: Any, /, *args: Any, **kwargs: Any) -> R:
            return target(self._obj, *args, **kwargs)

        params = list(inspect.signature(target).parameters.values())
        this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_ONLY)
        signature = inspect.signature(target).replace(parameters=[this, *params[1:]])
        method.__name__ = self._attr
        method.__qualname__ = f"{owner.__qualname__}.{self._attr}"
        method.__module__ = owner.__module__
        method.__doc__ = target.__doc__
        method.__signature__ = signature  # type: ignore[attr-defined]
        return method

    def __get__(self, instance: object, owner: type | None = None) -> Callable[..., R]:
        owner = owner if owner is not None else type(instance)
        if self._method is None:
            self._method = self._build(owner)
        if instance is None:  # SSTSRAccessor.downscale: the plain function, for docs
            return self._method
        bound: Callable[..., R] = self._method.__get__(instance, owner)
        return bound


class SSTSRAccessor:
    """``obj.sstsr``: downscale, fit, evaluate and plot SST with xsstsr.

    Each method is the function of the same name with the object as its first
    argument: ``ds.sstsr.downscale(factor=4)`` is ``xsstsr.downscale(ds, factor=4)``,
    ``ds.sstsr.write(path)`` is ``xsstsr.io.write_dataset(ds, path)``.
    """

    def __init__(self, obj: xr.Dataset | xr.DataArray) -> None:
        self._obj = obj

    downscale: _Front[xr.Dataset | xr.DataArray] = _Front("inference.frontend", "downscale")
    fit: _Front[Model] = _Front("training", "fit")
    evaluate: _Front[pd.DataFrame] = _Front("evaluation", "evaluate")
    write: _Front[Path] = _Front("io", "write_dataset")
    plot_compare: _Front[Figure] = _Front("plotting", "plot_compare")
    plot_spectrum: _Front[Figure] = _Front("plotting", "plot_spectrum")
    plot_stations: _Front[Figure] = _Front("plotting", "plot_stations")


xr.register_dataset_accessor("sstsr")(SSTSRAccessor)
xr.register_dataarray_accessor("sstsr")(SSTSRAccessor)
