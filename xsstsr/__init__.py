"""xsstsr: GAN-based super-resolution of sea surface temperature for xarray and dask.

``import xsstsr`` registers the ``.sstsr`` accessor on Dataset and DataArray.
PyTorch is imported only when a model runs.
"""

from __future__ import annotations

from typing import Any

from . import accessor as _accessor  # noqa: F401  (registers .sstsr)
from ._version import __version__
from .errors import (
    AmbiguousVariableError,
    CoordinateError,
    DataFileNotFoundError,
    DeviceError,
    DivergenceWarning,
    DomainWarning,
    DownloadError,
    FactorError,
    FitConfigError,
    GridError,
    InputDataError,
    InputTypeError,
    LossConfigError,
    MetadataError,
    MissingDependencyError,
    ModelMismatchError,
    ModelNotFoundError,
    OptionError,
    PoleWarning,
    SkillWarning,
    StationsError,
    TimeAxisWarning,
    TrainingError,
    UnitsError,
    VariableNotFoundError,
    WeightsError,
    WeightsIntegrityError,
    WeightsWarning,
    WriteError,
    XsstsrError,
    XsstsrWarning,
)
from .inference.frontend import downscale
from .models.container import Model
from .models.weights import available_models, fetch_all, load_model
from .options import get_option, set_options

__all__ = [
    "AmbiguousVariableError",
    "CoordinateError",
    "DataFileNotFoundError",
    "DeviceError",
    "DivergenceWarning",
    "DomainWarning",
    "DownloadError",
    "FactorError",
    "FitConfig",
    "FitConfigError",
    "GridError",
    "InputDataError",
    "InputTypeError",
    "LossConfigError",
    "MetadataError",
    "MissingDependencyError",
    "Model",
    "ModelMismatchError",
    "ModelNotFoundError",
    "OptionError",
    "PoleWarning",
    "SkillWarning",
    "StationsError",
    "TimeAxisWarning",
    "TrainingError",
    "UnitsError",
    "VariableNotFoundError",
    "WeightsError",
    "WeightsIntegrityError",
    "WeightsWarning",
    "WriteError",
    "XsstsrError",
    "XsstsrWarning",
    "__version__",
    "available_models",
    "datasets",
    "downscale",
    "evaluate",
    "fetch_all",
    "fit",
    "get_option",
    "load_model",
    "plot_compare",
    "plot_spectrum",
    "plot_stations",
    "set_options",
    "show_versions",
]

_LAZY = {
    "fit": ("training", "fit"),
    "FitConfig": ("training", "FitConfig"),
    "evaluate": ("evaluation", "evaluate"),
    "plot_compare": ("plotting", "plot_compare"),
    "plot_spectrum": ("plotting", "plot_spectrum"),
    "plot_stations": ("plotting", "plot_stations"),
    "show_versions": ("_versions", "show_versions"),
}


def __getattr__(name: str) -> Any:
    # fit/evaluate/plots pull in torch or matplotlib: import them on first use
    if name == "datasets":
        import importlib

        return importlib.import_module(".datasets", __name__)
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'xsstsr' has no attribute {name!r}")
