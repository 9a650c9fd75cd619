"""Refinement factors: parsing and validating the factor a user asks for."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..errors import (
    FactorError,
)


def parse_factor(factor: Any) -> Fraction:
    """Validate a downscaling factor and return it as an exact fraction ``p/q``."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float, Fraction)):
        try:
            import numpy as np

            if isinstance(factor, np.number) and not isinstance(factor, np.bool_):
                factor = float(factor)
            else:
                raise TypeError
        except TypeError:
            raise FactorError(
                f"factor must be a number such as 4 or 2.5, got {factor!r} "
                f"({type(factor).__name__})."
            ) from None
    if not factor == factor or factor in (float("inf"), float("-inf")):
        raise FactorError(f"factor must be a finite number, got {factor!r}.")
    if factor <= 1:
        raise FactorError(
            f"factor must be greater than 1 (the fine grid is factor times finer), got {factor!r}."
        )
    frac = Fraction(factor).limit_denominator(8)
    if abs(float(frac) - float(factor)) > 1e-9 or frac.numerator > 16:
        raise FactorError(
            f"factor {factor!r} is not a ratio p/q with p <= 16 and q <= 8 (such as 2.5 = 5/2); "
            "choose a factor like 2, 2.5, 4 or 5."
        )
    return frac
