"""Library-wide options: :func:`set_options` (globally or as a context manager) over the
environment variables of the same meaning.

=====================  ===========================  ========================================
option                 environment variable         meaning
=====================  ===========================  ========================================
``cache_dir``          ``XSSTSR_CACHE``             where fetched weights and the models that
                                                    workers load are kept (default: the OS
                                                    cache folder for ``xsstsr``)
``weights_url``        ``XSSTSR_WEIGHTS_URL``       a mirror of the released weights
                                                    (``http(s)://`` or ``file://``; ``{version}``
                                                    stands for the release tag)
``download_timeout``   ``XSSTSR_DOWNLOAD_TIMEOUT``  seconds a download may take: ``TOTAL`` or
                                                    ``CONNECT,READ,TOTAL`` (default 10,30,300)
``ferret_dir``         ``XSSTSR_FERRET_DIR``        the folder of ferret's data sets (COADS,
                                                    the ocean atlas subset)
=====================  ===========================  ========================================

An option set here wins over its environment variable; ``None`` goes back to it::

    with xsstsr.set_options(cache_dir="/scratch/xsstsr"):
        model = xsstsr.load_model("sst-x4")
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import OptionError

#: option -> the environment variable read when the option is not set
ENVIRONMENT: dict[str, str] = {
    "cache_dir": "XSSTSR_CACHE",
    "weights_url": "XSSTSR_WEIGHTS_URL",
    "download_timeout": "XSSTSR_DOWNLOAD_TIMEOUT",
    "ferret_dir": "XSSTSR_FERRET_DIR",
}

OPTIONS: dict[str, Any] = dict.fromkeys(ENVIRONMENT)


def _path(name: str, value: Any) -> None:
    if not isinstance(value, str | os.PathLike):
        raise OptionError(f"{name} must be a folder path (str or Path), got {value!r}.")


def _url(name: str, value: Any) -> None:
    if not isinstance(value, str):
        raise OptionError(
            f"{name} must be a URL string, e.g. 'https://host/weights/', got {value!r}."
        )


def _timeout(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int | float | tuple | list):
        raise OptionError(
            f"{name} must be seconds (600), a 'CONNECT,READ,TOTAL' string or a 3-tuple, "
            f"got {value!r}."
        )


_VALIDATORS: dict[str, Callable[[str, Any], None]] = {
    "cache_dir": _path,
    "weights_url": _url,
    "download_timeout": _timeout,
    "ferret_dir": _path,
}


def _as_text(name: str, value: Any) -> str:
    if name == "download_timeout" and isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(Path(value).expanduser()) if name in ("cache_dir", "ferret_dir") else str(value)


def get_option(name: str) -> str | None:
    """The value of option ``name`` as text: set by :func:`set_options`, else its environment
    variable, else None (the caller's default)."""
    if name not in ENVIRONMENT:
        raise OptionError(f"unknown option {name!r}; options are {', '.join(ENVIRONMENT)}.")
    value = OPTIONS[name]
    if value is not None:
        return _as_text(name, value)
    return os.environ.get(ENVIRONMENT[name]) or None


def describe_option(name: str) -> str:
    """How a user names option ``name`` in a message: the option and its variable."""
    return f"the {name} option (set_options or ${ENVIRONMENT[name]})"


class set_options:
    """Set options globally, or for a ``with`` block.

    Parameters
    ----------
    cache_dir, weights_url, download_timeout, ferret_dir
        See :mod:`xsstsr.options`. ``None`` unsets an option (its environment variable,
        or the default, applies again).

    Examples
    --------
    >>> import xsstsr
    >>> with xsstsr.set_options(download_timeout=60):
    ...     pass
    """

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(ENVIRONMENT))
        if unknown:
            raise OptionError(
                f"unknown option(s) {', '.join(map(repr, unknown))}; options are "
                f"{', '.join(ENVIRONMENT)}."
            )
        for name, value in options.items():
            if value is not None:
                _VALIDATORS[name](name, value)
        self._old = {name: OPTIONS[name] for name in options}
        OPTIONS.update(options)

    def __enter__(self) -> set_options:
        return self

    def __exit__(self, *exc: object) -> None:
        OPTIONS.update(self._old)
