"""Evaluation: baselines, what a score covers (periods, regions, weights), streaming
statistics, the scores and the spectra.

:func:`evaluate` returns a tidy :class:`pandas.DataFrame`: one row per source (the
downscaled field and its baselines), reference (gridded truth or stations), period and
region, with RMSE, bias, MAE, Pearson correlation and the RMSE over extremes. Grid scores
are weighted by cell area. Dask-backed inputs are streamed (block-wise partial sums in one
:func:`dask.compute`), so a field larger than memory can be scored.
"""

from __future__ import annotations

from .baselines import (
    BASELINES,
    bicubic_baseline,
    nearest_baseline,
)
from .scores import (
    SCORE_COLUMNS,
    evaluate,
)
from .spectra import (
    check_spectrum_options,
    spectrum_from_parts,
    zonal_spectrum,
)
from .subsets import (
    MONTHS,
    SEASONS,
    WEIGHTS,
)

__all__ = [
    "BASELINES",
    "MONTHS",
    "SCORE_COLUMNS",
    "SEASONS",
    "WEIGHTS",
    "bicubic_baseline",
    "check_spectrum_options",
    "evaluate",
    "nearest_baseline",
    "spectrum_from_parts",
    "zonal_spectrum",
]
