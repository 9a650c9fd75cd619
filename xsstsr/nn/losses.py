"""Pointwise content losses and the WGAN-GP adversarial losses.

The generator is trained with a pointwise *content* loss between its prediction and the
high-resolution truth plus an adversarial term from a Wasserstein critic with gradient penalty
(WGAN-GP, Gulrajani et al. 2017). The content losses act on the **scaled error**
``e = error_K / delta``: the error in kelvin over a scale ``delta`` (kelvin, ``fit``'s
``loss_scale``). The scale matters for the extreme-value losses: on errors of ~0.01 (errors
in normalised units) the Gumbel loss is ~e^(2r+2) and has no gradient, and the Fréchet loss
drifts warm when the bulk of the errors leaves its quadratic bowl. :func:`pointwise_loss`
takes the factor that turns its inputs' difference into ``e`` (``scale=std / delta`` for
normalised fields). Three losses are provided:

``"mse"``
    ``e**2``.
``"gumbel"`` (parameter ``r``)
    ``(1 - exp(-e**2))**r * e**2``: weights large errors more than small ones relative to MSE.
``"frechet"`` (parameters ``a`` (alpha) and ``s``)
    The Fréchet negative log-likelihood of ``z = e / s + z0``, ``z0 = (a / (1 + a))**(1 / a)``,
    ``(1 + a) * log(z) + z**(-a)``, minus its value at ``e = 0``. The shift ``z0`` puts the
    minimum at ``e = 0`` and subtracting the constant makes that minimum 0, so every loss here
    is 0 at a perfect prediction and values are comparable. It is asymmetric: under-prediction
    (``e < 0``) is penalised far more than over-prediction. Below the floor
    ``z_min = z0 / 2`` it is continued linearly with its slope at ``z_min`` (see
    :func:`frechet_floor`).

The method is the nine configurations in :data:`METHOD_CONFIGS`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import InputDataError, LossConfigError

#: Names of the content losses.
LOSS_NAMES: tuple[str, ...] = ("mse", "gumbel", "frechet")


#: Values of ``r`` used by the method for the Gumbel loss.
GUMBEL_R_VALUES: tuple[float, ...] = (1.0, 1.1, 1.5, 2.0)


#: ``(a, s)`` pairs used by the method for the Fréchet loss.
FRECHET_PARAMS: tuple[tuple[float, float], ...] = (
    (10.0, 1.7),
    (13.0, 1.7),
    (15.0, 1.7),
    (15.0, 2.0),
)


_ALIASES = {"fréchet": "frechet"}


# Largest |slope| of the Fréchet continuation we accept: keeps values and gradients finite in
# float32 (max 3.4e38) even after summing over millions of points.
_MAX_SLOPE = 1e30


def _r_hint(got: object) -> str:
    seeds = ", ".join(repr(r) for r in GUMBEL_R_VALUES)
    return (
        f'loss="gumbel" needs r, one of {seeds} (got {got!r}); e.g. fit(..., loss="gumbel", r=1.1)'
    )


def _as_param(value: object, what: str, hint: str) -> float:
    """Return ``value`` as a finite, positive float, or raise :class:`LossConfigError`."""
    # bool is an int subclass; "r=True" is a mistake, never a number
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise LossConfigError(f"{what} must be a positive number. {hint}")
    out = float(value)
    if not math.isfinite(out) or out <= 0.0:
        raise LossConfigError(f"{what} must be a positive number. {hint}")
    return out


def _frechet_hint(a: object, s: object) -> str:
    seeds = ", ".join(f"({a_:g}, {s_!r})" for a_, s_ in FRECHET_PARAMS)
    return (
        f'loss="frechet" needs a and s, (a, s) one of {seeds} (got a={a!r}, s={s!r}); '
        'e.g. fit(..., loss="frechet", a=15, s=1.7)'
    )


def _validate(
    name: object, r: object, a: object, s: object
) -> tuple[str, float | None, float | None, float | None]:
    """Check a loss configuration and return it normalised: ``(name, r, a, s)``."""
    valid = ", ".join(f'"{n}"' for n in LOSS_NAMES)
    if not isinstance(name, str):
        raise LossConfigError(f"loss must be a string, one of {valid} (got {name!r})")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in LOSS_NAMES:
        raise LossConfigError(f"unknown loss {name!r}; use one of {valid}")
    if key == "mse":
        given = [f"{k}={v!r}" for k, v in (("r", r), ("a", a), ("s", s)) if v is not None]
        if given:
            raise LossConfigError(
                f'loss="mse" takes no parameters (got {", ".join(given)}); drop them, or use '
                'loss="gumbel" with r, or loss="frechet" with a and s'
            )
        return key, None, None, None
    if key == "gumbel":
        if a is not None or s is not None:
            raise LossConfigError(
                f'loss="gumbel" takes only r (got a={a!r}, s={s!r}); a and s belong to '
                'loss="frechet". Drop them, e.g. fit(..., loss="gumbel", r=1.1)'
            )
        if r is None:
            raise LossConfigError(_r_hint(r))
        return key, _as_param(r, "r", _r_hint(r)), None, None
    # frechet
    if r is not None:
        raise LossConfigError(
            f'loss="frechet" takes a and s, not r (got r={r!r}); r belongs to loss="gumbel". '
            'Drop r, e.g. fit(..., loss="frechet", a=15, s=1.7)'
        )
    if a is None or s is None:
        raise LossConfigError(_frechet_hint(a, s))
    a_f = _as_param(a, "a", _frechet_hint(a, s))
    s_f = _as_param(s, "s", _frechet_hint(a, s))
    slope = frechet_floor(a_f, s_f)[3]
    if not abs(slope) < _MAX_SLOPE:
        raise LossConfigError(
            f'loss="frechet" with a={a_f!r}, s={s_f!r} is too steep to compute in float32 '
            f"(slope {slope:.3g} at the floor). {_frechet_hint(a, s)}"
        )
    return key, None, a_f, s_f


@dataclass(frozen=True)
class LossConfig:
    """A validated content-loss configuration.

    Parameters
    ----------
    name : str
        ``"mse"``, ``"gumbel"`` or ``"frechet"`` (case-insensitive; stored lower-case).
    r : float, optional
        Gumbel exponent; required for ``"gumbel"`` only.
    a, s : float, optional
        Fréchet shape (alpha) and scale; both required for ``"frechet"`` only.

    Raises
    ------
    LossConfigError
        Unknown name, missing or wrong parameters.
    """

    name: str
    r: float | None = None
    a: float | None = None
    s: float | None = None

    def __post_init__(self) -> None:
        name, r, a, s = _validate(self.name, self.r, self.a, self.s)
        # frozen: normalise through object.__setattr__ so equal configs compare/hash equal
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "r", r)
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "s", s)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict with the name and the parameters that are set."""
        out: dict[str, Any] = {"name": self.name}
        for key in ("r", "a", "s"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossConfig:
        """Build a configuration from :meth:`to_dict` output.

        Raises
        ------
        LossConfigError
            ``data`` is not a mapping, lacks ``"name"``, has unknown keys or bad values.
        """
        if not isinstance(data, Mapping):
            raise LossConfigError(f"loss configuration must be a mapping (got {data!r})")
        unknown = sorted(set(data) - {"name", "r", "a", "s"})
        if unknown:
            raise LossConfigError(
                f"unknown keys {unknown} in loss configuration; allowed: name, r, a, s"
            )
        if "name" not in data:
            raise LossConfigError(f"loss configuration lacks 'name' (got {dict(data)!r})")
        return cls(name=data["name"], r=data.get("r"), a=data.get("a"), s=data.get("s"))

    def describe(self) -> str:
        """Short label, e.g. ``"mse"``, ``"gumbel(r=1.1)"``, ``"frechet(a=15, s=1.7)"``."""
        if self.name == "gumbel":
            return f"gumbel(r={self.r!r})"
        if self.name == "frechet":
            return f"frechet(a={self.a:g}, s={self.s!r})"
        return self.name


def make_loss_config(
    loss: str = "mse",
    r: float | None = None,
    a: float | None = None,
    s: float | None = None,
) -> LossConfig:
    """Validate a loss choice and return its :class:`LossConfig`.

    Parameters
    ----------
    loss : str, default "mse"
        ``"mse"``, ``"gumbel"`` or ``"frechet"``, case-insensitive.
    r : float, optional
        Gumbel exponent (the method uses 1.0, 1.1, 1.5, 2.0; any positive number is accepted).
    a, s : float, optional
        Fréchet shape and scale (the method uses (10, 1.7), (13, 1.7), (15, 1.7), (15, 2.0);
        any positive pair is accepted).

    Returns
    -------
    LossConfig

    Raises
    ------
    LossConfigError
        Unknown name, a parameter missing, a parameter of another loss given, or a value that
        is not a positive number (bools are rejected).
    """
    return LossConfig(name=loss, r=r, a=a, s=s)


def frechet_floor(a: float, s: float) -> tuple[float, float, float, float]:
    """Constants of the Fréchet loss and of its linear continuation.

    The floor is ``z_min = c * z0`` with ``c = 2**-min(1, 100 / a)``, i.e. ``z0 / 2`` for every
    ``a <= 100`` (all the method's values). There ``z**-a`` is only ``2**a`` times its value at
    the minimum (3.3e4 for a = 15), so the loss (<= 3.5e4) and its slope (<= 6.2e5 per unit
    ``d``) stay far inside float32 range and precision, while under-prediction is already
    penalised ~1e4 times more than MSE. For ``a > 100``, ``c`` rises so that ``c**-a`` stays
    ``2**100``.

    Parameters
    ----------
    a, s : float
        Shape and scale, positive.

    Returns
    -------
    z0 : float
        Location of the minimum, ``(a / (1 + a))**(1 / a)``.
    d_min : float
        Error at the floor, ``s * (z_min - z0)``; the loss is linear for ``d < d_min``.
    value_min : float
        Loss at ``d_min``.
    slope : float
        Derivative of the loss with respect to ``d`` at ``d_min`` (negative).
    """
    z0 = math.exp(math.log(a / (1.0 + a)) / a)
    c = 0.5 ** min(1.0, 100.0 / a)
    log_c = math.log(c)
    value_min = (1.0 + a) * (log_c + math.expm1(-a * log_c) / a)
    # d/dz [(1 + a) log z + z**-a] at z = c * z0, times dz/dd = 1 / s; z0 underflows to 0
    # for tiny a, which _validate rejects through the infinite slope
    scale = c * z0 * s
    slope = (1.0 + a) * (1.0 - c ** (-a)) / scale if scale > 0 else -math.inf
    return z0, s * z0 * (c - 1.0), value_min, slope


#: The nine loss configurations of the method.
METHOD_CONFIGS: tuple[LossConfig, ...] = (
    LossConfig("mse"),
    *(LossConfig("gumbel", r=r) for r in GUMBEL_R_VALUES),
    *(LossConfig("frechet", a=a, s=s) for a, s in FRECHET_PARAMS),
)


def elementwise_loss(d: Tensor, config: LossConfig) -> Tensor:
    """Elementwise content loss of the scaled error ``d`` (``e`` in the module's notation).

    Parameters
    ----------
    d : Tensor
        Scaled errors (kelvin over the loss scale); must be finite for finite results and
        gradients.
    config : LossConfig

    Returns
    -------
    Tensor
        Same shape and dtype as ``d``; 0 at ``d = 0``, its minimum.
    """
    if config.name == "mse":
        return d * d
    d2 = d * d
    if config.name == "gumbel":
        assert config.r is not None
        x = -torch.expm1(-d2)  # 1 - exp(-d**2), accurate for small d
        pos = x > 0
        # pow at base 0 has an infinite derivative for r < 1; feed it 1 there, the outer where
        # returns the true value 0 with zero gradient
        base = torch.where(pos, x, torch.ones_like(x))
        return torch.where(pos, base**config.r * d2, torch.zeros_like(d2))
    assert config.a is not None
    assert config.s is not None
    a = config.a
    z0, d_min, value_min, slope = frechet_floor(a, config.s)
    # with w = log(z / z0) = log1p(u) the loss is (1 + a) / a * g(a * w), g(x) = x + expm1(-x):
    # the constant f(z0) cancels exactly instead of being subtracted in floating point
    u = d / (config.s * z0)
    u_min = d_min / (config.s * z0)
    # clamp so the unused branch stays finite (NaN there would poison gradients via where)
    x = a * torch.log1p(torch.clamp(u, min=u_min))
    main = (1.0 + a) / a * _x_plus_expm1_neg(x)
    linear = value_min + slope * (d - d_min)
    return torch.where(u >= u_min, main, linear)


# Taylor coefficients of g(x) = x + expm1(-x) = sum_{k>=2} (-x)**k / k!, k = 2..10
_G_COEFFS = tuple((-1.0) ** k / math.factorial(k) for k in range(2, 11))


_G_SERIES_MAX = 0.1  # truncation error there is < 1e-16 relative


def _x_plus_expm1_neg(x: Tensor) -> Tensor:
    """``x + expm1(-x)`` without cancellation near 0 (where it is ``x**2 / 2``)."""
    # clamp the series input so its unused branch cannot overflow and poison gradients
    xs = torch.clamp(x, -_G_SERIES_MAX, _G_SERIES_MAX)
    poly = torch.full_like(xs, _G_COEFFS[-1])
    for coeff in reversed(_G_COEFFS[:-1]):
        poly = poly * xs + coeff
    series = xs * xs * poly
    return torch.where(x.abs() < _G_SERIES_MAX, series, x + torch.expm1(-x))


def reference_loss(d: np.ndarray, config: LossConfig) -> np.ndarray:
    """Float64 NumPy reference of :func:`elementwise_loss`, written with the plain formulas.

    Parameters
    ----------
    d : numpy.ndarray
        Errors.
    config : LossConfig

    Returns
    -------
    numpy.ndarray
        Float64 losses, same shape as ``d``.
    """
    d = np.asarray(d, dtype=np.float64)
    if config.name == "mse":
        return d**2
    if config.name == "gumbel":
        assert config.r is not None
        return (1.0 - np.exp(-(d**2))) ** config.r * d**2
    assert config.a is not None
    assert config.s is not None
    a, s = config.a, config.s
    z0, d_min, _, _ = frechet_floor(a, s)
    z_min = z0 + d_min / s

    def f(z: np.ndarray | float) -> Any:
        return (1.0 + a) * np.log(z) + z ** (-a)

    def fprime(z: float) -> float:
        return (1.0 + a) / z - a * z ** (-a - 1.0)

    z = d / s + z0
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = f(z)
    linear = f(z_min) + fprime(z_min) * (z - z_min)
    return np.asarray(np.where(z >= z_min, curve, linear) - f(z0), dtype=np.float64)


def pointwise_loss(
    pred: Tensor,
    truth: Tensor,
    config: LossConfig,
    mask: Tensor | None = None,
    *,
    scale: float = 1.0,
) -> Tensor:
    """Content loss of the scaled error ``e = (pred - truth) * scale``, averaged over the
    valid points.

    Parameters
    ----------
    pred : Tensor
        Prediction.
    truth : Tensor
        Truth, same shape as ``pred``; NaN/inf (land, gaps) are ignored and yield no NaN
        gradient.
    config : LossConfig
    mask : Tensor, optional
        Broadcastable to ``pred``. Boolean: points to use. Numeric: per-point weights
        (0/1 is the same as boolean; non-positive or non-finite weights exclude a point).
    scale : float, default 1.0
        Turns the difference into the scaled error: ``std / delta`` for fields in
        normalised units (``std`` the normalisation's standard deviation in kelvin,
        ``delta`` the loss scale in kelvin). Positive and finite.

    Returns
    -------
    Tensor
        Scalar: weighted mean of :func:`elementwise_loss` over points that are in the mask and
        where truth is finite; 0 (still attached to ``pred``'s graph) when there are none.
        Half-precision inputs are computed in float32.

    Raises
    ------
    InputDataError
        ``pred`` and ``truth`` have different shapes or ``mask`` does not broadcast.
    LossConfigError
        ``config`` is not a :class:`LossConfig`.
    """
    if not isinstance(config, LossConfig):
        raise LossConfigError(
            f"config must be a LossConfig (got {type(config).__name__}); "
            'build one with make_loss_config("gumbel", r=1.1)'
        )
    if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
        raise LossConfigError(
            f"scale must be a positive finite number, got {scale!r}; it is std / loss_scale."
        )
    if pred.shape != truth.shape:
        raise InputDataError(
            f"pred and truth must have the same shape (got {tuple(pred.shape)} and "
            f"{tuple(truth.shape)}); crop or pad one to the other's shape."
        )
    if pred.dtype in (torch.float16, torch.bfloat16):
        pred = pred.float()  # Fréchet values and slopes exceed float16 range
    if truth.dtype in (torch.float16, torch.bfloat16):
        truth = truth.float()
    valid = torch.isfinite(truth)
    # replace bad truth *before* subtracting: masking afterwards would leave NaN in the graph
    d = pred - torch.where(valid, truth, torch.zeros_like(truth))
    if mask is None:
        weight = valid.to(d.dtype)
    else:
        try:
            mask = torch.broadcast_to(mask.to(d.device), d.shape)
        except RuntimeError as err:
            raise InputDataError(
                f"mask of shape {tuple(mask.shape)} does not broadcast to {tuple(d.shape)}; "
                "give it pred's shape, or one that broadcasts (e.g. [1, 1, H, W])."
            ) from err
        if mask.dtype == torch.bool:
            weight = (valid & mask).to(d.dtype)
        else:
            m = mask.to(d.dtype)
            keep = valid & torch.isfinite(m) & (m > 0)
            weight = torch.where(keep, m, torch.zeros_like(m))
    d = torch.where(weight > 0, d * scale, torch.zeros_like(d))
    total = (elementwise_loss(d, config) * weight).sum()
    # loss(0) == 0, so with no valid point total is an attached 0; no data-dependent branch
    return total / torch.clamp(weight.sum(), min=torch.finfo(d.dtype).tiny)
