"""Typed errors, one base class and one subclass per kind of problem, and user warnings.

Each subclass is also a ``ValueError`` or ``TypeError`` where that is what it
is, so generic handlers keep working. Messages say what was found and how to
fix it.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

__all__ = [
    "AmbiguousVariableError",
    "CoordinateError",
    "DataFileNotFoundError",
    "DeviceError",
    "DomainWarning",
    "DownloadError",
    "FactorError",
    "FitConfigError",
    "GridError",
    "InputDataError",
    "InputTypeError",
    "LossConfigError",
    "MetadataError",
    "MissingDependencyError",
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
    "warn_user",
]


class XsstsrError(Exception):
    """Base class of every error raised by xsstsr."""


class VariableNotFoundError(XsstsrError, KeyError):
    """No SST variable could be found in the dataset."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class AmbiguousVariableError(XsstsrError, ValueError):
    """Several variables could be the SST; the caller must choose."""


class CoordinateError(XsstsrError, ValueError):
    """Latitude/longitude (or time) coordinates are missing or ambiguous."""


class GridError(XsstsrError, ValueError):
    """The grid is not a regular, monotonic, 1-D latitude/longitude grid."""


class UnitsError(XsstsrError, ValueError):
    """Temperature units are missing or not understood."""


class InputDataError(XsstsrError, ValueError):
    """The data values cannot be downscaled (all NaN, wrong dtype, empty)."""


class InputTypeError(InputDataError, TypeError):
    """An argument has the wrong type (also a ``TypeError``), e.g. a numpy array for data."""


class FactorError(XsstsrError, ValueError):
    """The downscaling factor is invalid or no model serves it."""


class ModelNotFoundError(XsstsrError, KeyError):
    """No model of that name in the registry and no file at that path."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WeightsError(XsstsrError, ValueError):
    """A weights file cannot be read (missing, truncated, not safetensors)."""


class WeightsIntegrityError(WeightsError):
    """A weights file does not match its registered sha256."""


class MetadataError(WeightsError):
    """The JSON metadata of a weights file is missing, too large or ill-typed."""


class ModelMismatchError(XsstsrError, ValueError):
    """The model does not fit the call (factor, inputs, window)."""


class StationsError(XsstsrError, ValueError):
    """The station table is malformed or does not fit the data."""


class LossConfigError(XsstsrError, ValueError):
    """Unknown loss or wrong parameters for the chosen loss."""


class DeviceError(XsstsrError, RuntimeError):
    """The requested device is not available, or too small for one tile."""


class TrainingError(XsstsrError, RuntimeError):
    """Training cannot start, resume or go on (bad checkpoint, losses that turned non-finite)."""


class OptionError(XsstsrError, ValueError):
    """An option is not one of its choices or is out of its range (evaluation, plots, losses)."""


class DownloadError(XsstsrError, OSError):
    """Weights could not be downloaded: a bad mirror URL, a timeout, a refused connection."""


class DataFileNotFoundError(XsstsrError, FileNotFoundError):
    """A data file (a bundled sample, a Debian package's file, a path given) is missing."""


class WriteError(XsstsrError, OSError):
    """A result cannot be written: the path, the attributes or the disk (nothing is lost)."""


class FitConfigError(InputDataError):
    """A training hyper-parameter has the wrong type or is out of range."""


class XsstsrWarning(UserWarning):
    """Base class of xsstsr's warnings."""


class SkillWarning(XsstsrWarning):
    """A fitted model's best validation score is no better than interpolation."""


class DivergenceWarning(SkillWarning):
    """A fit's pixel loss grew far above where it began: the fit diverged. The model
    returned is its best validation checkpoint (often the starting point), or with
    ``keep="last"`` the diverged last weights."""


class DomainWarning(XsstsrWarning):
    """The input lies outside what the model was trained on (grid spacing, time step, SST)."""


class PoleWarning(XsstsrWarning):
    """The input's cells reach beyond a pole (centres on +-90), so the outermost fine
    rows have latitudes beyond it."""


class TimeAxisWarning(XsstsrWarning):
    """The time axis has a gap that the model's time window spans."""


class WeightsWarning(XsstsrWarning):
    """Released weights could not be used where they were optional (``fit(init="auto")``
    then trains from scratch)."""


class MissingDependencyError(XsstsrError, ImportError):
    """An optional dependency is not installed."""


_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def warn_user(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn, pointing at the first caller outside xsstsr (however deep the call came from),
    so the warning names the user's line and ``-W error`` filters by module work."""
    level = 2  # stacklevel 2 is the frame that called warn_user
    frame = sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
        _PACKAGE_DIR
    ):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
