"""Models: the weights' metadata schema, the :class:`Model` container (safetensors), the
released weights' registry and their download.
"""

from __future__ import annotations

from .container import (
    Model,
    init_model,
)
from .download import (
    Timeouts,
    download_timeouts,
)
from .metadata import (
    DOMAIN_KEYS,
    new_metadata,
    validate_metadata,
)
from .weights import (
    MODEL_KINDS,
    available_models,
    bundled_dir,
    cache_dir,
    factor_of_name,
    fetch,
    fetch_all,
    load_model,
    model_for,
    registry,
)

__all__ = [
    "DOMAIN_KEYS",
    "MODEL_KINDS",
    "Model",
    "Timeouts",
    "available_models",
    "bundled_dir",
    "cache_dir",
    "download_timeouts",
    "factor_of_name",
    "fetch",
    "fetch_all",
    "init_model",
    "load_model",
    "model_for",
    "new_metadata",
    "registry",
    "validate_metadata",
]
