"""Tests of xsstsr.nn: content losses, their configuration, and WGAN-GP."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xsstsr.errors import InputDataError, LossConfigError, ModelMismatchError
from xsstsr.nn import (
    METHOD_CONFIGS,
    LossConfig,
    critic_loss,
    elementwise_loss,
    frechet_floor,
    generator_adversarial_loss,
    gradient_penalty,
    make_loss_config,
    pointwise_loss,
    reference_loss,
)

CONFIG_IDS = [c.describe() for c in METHOD_CONFIGS]
FRECHET = [c for c in METHOD_CONFIGS if c.name == "frechet"]
GUMBEL = [c for c in METHOD_CONFIGS if c.name == "gumbel"]


def _grid(config: LossConfig) -> np.ndarray:
    """-5..5 plus points on both sides of the Fréchet floor and very close to 0."""
    d = [np.linspace(-5.0, 5.0, 2001), np.array([-1e-6, -1e-9, 0.0, 1e-9, 1e-6])]
    if config.name == "frechet":
        assert config.a is not None
        assert config.s is not None
        d_min = frechet_floor(config.a, config.s)[1]
        d.append(d_min + np.array([-1.0, -1e-3, -1e-7, 0.0, 1e-7, 1e-3]))
    return np.sort(np.concatenate(d))


def _loss(d: np.ndarray, config: LossConfig, dtype: torch.dtype) -> np.ndarray:
    return elementwise_loss(torch.tensor(d, dtype=dtype), config).double().numpy()


# ------------------------------------------------------------------ configurations


def test_method_configs_are_the_nine_of_the_method() -> None:
    assert CONFIG_IDS == [
        "mse",
        "gumbel(r=1.0)",
        "gumbel(r=1.1)",
        "gumbel(r=1.5)",
        "gumbel(r=2.0)",
        "frechet(a=10, s=1.7)",
        "frechet(a=13, s=1.7)",
        "frechet(a=15, s=1.7)",
        "frechet(a=15, s=2.0)",
    ]
    assert len(set(METHOD_CONFIGS)) == 9  # frozen and hashable


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=CONFIG_IDS)
def test_to_dict_from_dict_round_trip_through_json(config: LossConfig) -> None:
    data = json.loads(json.dumps(config.to_dict()))
    assert LossConfig.from_dict(data) == config
    assert make_loss_config(data.pop("name"), **data) == config


def test_make_loss_config_normalises() -> None:
    assert make_loss_config() == LossConfig("mse")
    assert make_loss_config("GUMBEL", r=1.1) == LossConfig("gumbel", r=1.1)
    cfg = make_loss_config(" Frechet ", a=15, s=2)
    assert cfg == METHOD_CONFIGS[-1]
    assert isinstance(cfg.a, float)
    assert isinstance(cfg.s, float)
    numpy_params = {"a": np.int64(10), "s": np.float32(1.7)}  # NumPy scalars are numbers too
    assert make_loss_config("fréchet", **numpy_params).name == "frechet"  # type: ignore[arg-type]
    # any positive values are accepted, not only the method's
    assert make_loss_config("gumbel", r=0.5).describe() == "gumbel(r=0.5)"
    assert make_loss_config("frechet", a=3, s=0.5).describe() == "frechet(a=3, s=0.5)"


@pytest.mark.parametrize(
    ("kwargs", "fragments"),
    [
        ({"loss": "l1"}, ['"mse"', '"gumbel"', '"frechet"']),
        ({"loss": 3}, ['"mse"']),
        ({"loss": "gumbel"}, ["needs r", "1.0, 1.1, 1.5, 2.0", "got None", "r=1.1"]),
        ({"loss": "gumbel", "r": True}, ["positive number", "r=1.1"]),
        ({"loss": "gumbel", "r": -1.0}, ["positive number", "r=1.1"]),
        ({"loss": "gumbel", "r": 0}, ["positive number", "r=1.1"]),
        ({"loss": "gumbel", "r": float("nan")}, ["positive number"]),
        ({"loss": "gumbel", "r": "1.1"}, ["positive number"]),
        ({"loss": "gumbel", "r": 1.1, "a": 15.0}, ["only r", 'loss="frechet"']),
        ({"loss": "frechet", "a": 15, "s": 1.7, "r": 1.1}, ["not r", "a=15, s=1.7"]),
        ({"loss": "frechet", "a": 15}, ["needs a and s", "s=None", "a=15, s=1.7"]),
        ({"loss": "frechet", "s": 1.7}, ["needs a and s", "a=None"]),
        ({"loss": "frechet", "a": -15, "s": 1.7}, ["positive number"]),
        ({"loss": "frechet", "a": 15, "s": False}, ["positive number"]),
        ({"loss": "frechet", "a": 0.01, "s": 1.0}, ["float32"]),
        ({"loss": "mse", "r": 1.1}, ["no parameters", 'loss="gumbel"']),
    ],
)
def test_invalid_configs_raise_loss_config_error(
    kwargs: dict[str, object], fragments: list[str]
) -> None:
    with pytest.raises(LossConfigError) as info:
        make_loss_config(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_gumbel_missing_r_message_is_exact() -> None:
    with pytest.raises(ValueError, match=r"e\.g\.") as info:
        make_loss_config("gumbel")
    assert str(info.value) == (
        'loss="gumbel" needs r, one of 1.0, 1.1, 1.5, 2.0 (got None); '
        'e.g. fit(..., loss="gumbel", r=1.1)'
    )


def test_direct_construction_is_validated() -> None:
    with pytest.raises(LossConfigError):
        LossConfig("frechet", a=15.0)


@pytest.mark.parametrize(
    "data",
    [{"name": "gumbel", "r": 1.1, "alpha": 3}, {"r": 1.1}, ["gumbel"]],
)
def test_from_dict_rejects_bad_input(data: object) -> None:
    with pytest.raises(LossConfigError):
        LossConfig.from_dict(data)  # type: ignore[arg-type]


# ------------------------------------------------------------------ elementwise losses


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=CONFIG_IDS)
def test_matches_reference_float64(config: LossConfig) -> None:
    d = _grid(config)
    np.testing.assert_allclose(
        _loss(d, config, torch.float64), reference_loss(d, config), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=CONFIG_IDS)
def test_matches_reference_float32(config: LossConfig) -> None:
    d = _grid(config).astype(np.float32)
    ref = reference_loss(d.astype(np.float64), config)
    np.testing.assert_allclose(_loss(d, config, torch.float32), ref, rtol=1e-5, atol=1e-6)


def test_frechet_grid_reaches_the_continuation() -> None:
    for config in FRECHET:
        assert config.a is not None
        assert config.s is not None
        assert _grid(config).min() < frechet_floor(config.a, config.s)[1] - 3.0


def test_reference_formulas() -> None:
    d = np.array([-2.0, 0.5, 1.0])
    np.testing.assert_allclose(reference_loss(d, METHOD_CONFIGS[0]), d**2)
    np.testing.assert_allclose(
        reference_loss(d, LossConfig("gumbel", r=1.5)), (1 - np.exp(-(d**2))) ** 1.5 * d**2
    )
    a, s = 15.0, 1.7
    z0 = (a / (1 + a)) ** (1 / a)
    z = d[1:] / s + z0  # above the floor
    expected = (1 + a) * np.log(z) + z**-a - ((1 + a) * np.log(z0) + z0**-a)
    np.testing.assert_allclose(reference_loss(d[1:], LossConfig("frechet", a=a, s=s)), expected)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=CONFIG_IDS)
def test_minimum_is_zero_at_zero(config: LossConfig, dtype: torch.dtype) -> None:
    assert _loss(np.zeros(1), config, dtype)[0] == 0.0
    dense = np.concatenate([np.linspace(-5, 5, 100001), np.geomspace(1e-30, 1e-2, 500)])
    dense = np.concatenate([dense, -dense])
    assert np.all(_loss(dense, config, dtype) >= 0.0)
    # a grid without 0: the argmin is the point nearest 0
    fine = np.linspace(-1.0, 1.0, 20000)
    step = fine[1] - fine[0]
    for values in (_loss(fine, config, dtype), reference_loss(fine, config)):
        assert abs(fine[np.argmin(values)]) <= step


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=CONFIG_IDS)
def test_gradients_finite_everywhere(config: LossConfig, dtype: torch.dtype) -> None:
    values = np.concatenate(
        [_grid(config), [-1e3, -50.0, -20.0, 20.0, 50.0, 1e3, 1e-30, -1e-30, 1e-3, -1e-3]]
    )
    d = torch.tensor(values, dtype=dtype, requires_grad=True)
    (grad,) = torch.autograd.grad(elementwise_loss(d, config).sum(), d)
    assert torch.isfinite(grad).all()
    assert grad[values == 0.0].abs().max() == 0.0  # minimum: zero slope
    # descent direction points towards 0 on both sides
    assert torch.all(grad[d.detach() < -1e-3] < 0)
    assert torch.all(grad[d.detach() > 1e-3] > 0)


@pytest.mark.parametrize("config", FRECHET, ids=[c.describe() for c in FRECHET])
def test_frechet_continuation_is_linear_not_clamped(config: LossConfig) -> None:
    assert config.a is not None
    assert config.s is not None
    z0, d_min, value_min, slope = frechet_floor(config.a, config.s)
    assert math.isclose(d_min, -0.5 * z0 * config.s)  # z_min = z0 / 2
    assert slope < 0
    # values and slopes the floor keeps small enough for float32 sums
    assert value_min < 1e5
    assert abs(slope) < 1e6
    deep = torch.tensor([d_min - 0.1, d_min - 1.0, d_min - 10.0, -1e3], dtype=torch.float64)
    deep.requires_grad_(True)
    loss = elementwise_loss(deep, config)
    (grad,) = torch.autograd.grad(loss.sum(), deep)
    np.testing.assert_allclose(grad.numpy(), slope, rtol=1e-12)
    expected = value_min + slope * (deep.detach() - d_min)
    np.testing.assert_allclose(loss.detach().numpy(), expected.numpy(), rtol=1e-12)
    # continuous with a continuous slope at the floor
    edge = torch.tensor([d_min - 1e-7, d_min + 1e-7], dtype=torch.float64, requires_grad=True)
    edge_loss = elementwise_loss(edge, config)
    (edge_grad,) = torch.autograd.grad(edge_loss.sum(), edge)
    np.testing.assert_allclose(edge_loss.detach().numpy(), value_min, rtol=1e-5)
    np.testing.assert_allclose(edge_grad.numpy(), slope, rtol=1e-5)


@pytest.mark.parametrize("config", FRECHET, ids=[c.describe() for c in FRECHET])
def test_frechet_penalises_under_prediction_more(config: LossConfig) -> None:
    x = torch.linspace(0.1, 3.0, 59, dtype=torch.float64)
    under, over = elementwise_loss(-x, config), elementwise_loss(x, config)
    assert torch.all(under > over)
    assert torch.all(under[x >= 1.0] > 100 * over[x >= 1.0])


@pytest.mark.parametrize("config", GUMBEL, ids=[c.describe() for c in GUMBEL])
def test_gumbel_weights_large_errors_more_than_mse(config: LossConfig) -> None:
    d = torch.linspace(0.05, 5.0, 200, dtype=torch.float64)
    for sign in (1.0, -1.0):
        ratio = elementwise_loss(sign * d, config) / elementwise_loss(sign * d, METHOD_CONFIGS[0])
        assert torch.all(torch.diff(ratio) > 0)
        assert torch.all((ratio > 0) & (ratio < 1))


def test_gumbel_small_r_has_finite_gradient_at_zero() -> None:
    d = torch.tensor([0.0, 1e-20, 0.5], dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(elementwise_loss(d, LossConfig("gumbel", r=0.3)).sum(), d)
    assert torch.isfinite(grad).all()
    assert grad[0] == 0.0


@settings(max_examples=60, deadline=None)
@given(
    d=st.floats(min_value=-100.0, max_value=100.0, allow_nan=False),
    index=st.integers(min_value=0, max_value=len(METHOD_CONFIGS) - 1),
)
def test_property_nonnegative_and_matches_reference(d: float, index: int) -> None:
    config = METHOD_CONFIGS[index]
    value = _loss(np.array([d]), config, torch.float64)
    assert value[0] >= 0.0
    np.testing.assert_allclose(value, reference_loss(np.array([d]), config), rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------ pointwise_loss

GUMBEL_11 = LossConfig("gumbel", r=1.1)
FRECHET_15 = LossConfig("frechet", a=15.0, s=1.7)


def _pair(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    truth = torch.randn(2, 1, 4, 5, generator=gen, dtype=torch.float64)
    pred = truth + 0.5 * torch.randn(2, 1, 4, 5, generator=gen, dtype=torch.float64)
    return pred, truth


@pytest.mark.parametrize("config", METHOD_CONFIGS, ids=CONFIG_IDS)
def test_pointwise_loss_is_the_mean(config: LossConfig) -> None:
    pred, truth = _pair()
    expected = reference_loss((pred - truth).numpy(), config).mean()
    assert math.isclose(pointwise_loss(pred, truth, config).item(), expected, rel_tol=1e-10)


def test_pointwise_loss_masks() -> None:
    pred, truth = _pair()
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1:3, 2:] = True  # broadcast over batch and channel
    d = (pred - truth).numpy()
    expected = reference_loss(d, GUMBEL_11)[..., mask.numpy()].mean()
    got_bool = pointwise_loss(pred, truth, GUMBEL_11, mask=mask).item()
    got_float = pointwise_loss(pred, truth, GUMBEL_11, mask=mask.to(torch.float32)).item()
    assert math.isclose(got_bool, expected, rel_tol=1e-10)
    assert math.isclose(got_float, expected, rel_tol=1e-10)
    # numeric masks are weights
    weights = torch.rand(2, 1, 4, 5, generator=torch.Generator().manual_seed(1))
    w = weights.double().numpy()
    weighted = (reference_loss(d, GUMBEL_11) * w).sum() / w.sum()
    got = pointwise_loss(pred, truth, GUMBEL_11, mask=weights).item()
    assert math.isclose(got, weighted, rel_tol=1e-6)


@pytest.mark.parametrize(
    "config", [METHOD_CONFIGS[0], GUMBEL_11, FRECHET_15], ids=lambda c: c.describe()
)
def test_pointwise_loss_ignores_nan_truth(config: LossConfig) -> None:
    pred, truth = _pair()
    land = torch.zeros_like(truth, dtype=torch.bool)
    land[:, :, :2, :2] = True
    truth = truth.masked_fill(land, float("nan"))
    truth[0, 0, 3, 4] = float("inf")
    land[0, 0, 3, 4] = True
    pred = pred.clone().requires_grad_(True)
    loss = pointwise_loss(pred, truth, config)
    sea = ~land
    expected = reference_loss((pred.detach() - truth)[sea].numpy(), config).mean()
    assert math.isclose(loss.item(), expected, rel_tol=1e-10)
    (grad,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(grad).all()
    assert torch.all(grad[land] == 0)
    # a far-off prediction on land changes nothing
    pred2 = pred.detach().clone()
    pred2[land] = -1e3
    assert math.isclose(pointwise_loss(pred2, truth, config).item(), loss.item(), rel_tol=1e-12)


def test_pointwise_loss_without_valid_points_is_attached_zero() -> None:
    pred = torch.randn(2, 3, requires_grad=True)
    truth = torch.full((2, 3), float("nan"))
    loss = pointwise_loss(pred, truth, FRECHET_15)
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert pred.grad is not None
    assert torch.all(pred.grad == 0)
    empty = pointwise_loss(
        pred, torch.zeros(2, 3), GUMBEL_11, mask=torch.zeros(3, dtype=torch.bool)
    )
    assert empty.item() == 0.0


def test_pointwise_loss_half_precision_uses_float32() -> None:
    pred = torch.full((4,), -1.5, dtype=torch.float16)
    loss = pointwise_loss(pred, torch.zeros(4, dtype=torch.float16), FRECHET_15)
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss)


def test_pointwise_loss_rejects_bad_input() -> None:
    with pytest.raises(InputDataError, match="same shape"):
        pointwise_loss(torch.zeros(2, 3), torch.zeros(3, 2), GUMBEL_11)
    with pytest.raises(InputDataError, match="broadcast"):
        pointwise_loss(torch.zeros(2, 3), torch.zeros(2, 3), GUMBEL_11, mask=torch.ones(2))
    with pytest.raises(LossConfigError, match="make_loss_config"):
        pointwise_loss(torch.zeros(2), torch.zeros(2), "mse")  # type: ignore[arg-type]


# ------------------------------------------------------------------ WGAN-GP


class LinearCritic(torch.nn.Module):
    """``D(x, cond) = <w, x> + <v, cond>``: its input gradient is ``w`` for every sample."""

    def __init__(self, shape: tuple[int, ...], seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=torch.float64))
        self.v = torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=torch.float64))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return (x * self.w).flatten(1).sum(1) + (cond * self.v).flatten(1).sum(1)


def _fields(batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, 1, 3, 5)
    real = torch.randn(shape, generator=gen, dtype=torch.float64)
    fake = torch.randn(shape, generator=gen, dtype=torch.float64)
    cond = torch.randn(shape, generator=gen, dtype=torch.float64)
    return real, fake, cond


def test_gradient_penalty_of_linear_critic_is_analytic() -> None:
    real, fake, cond = _fields()
    critic = LinearCritic((1, 3, 5))
    norm = critic.w.detach().norm()
    gp = gradient_penalty(critic, real, fake, cond)
    assert math.isclose(gp.item(), (norm.item() - 1.0) ** 2, rel_tol=1e-12)
    # and its gradient with respect to the critic's weights: 2 (|w| - 1) w / |w|
    (grad,) = torch.autograd.grad(gp, critic.w)
    np.testing.assert_allclose(
        grad.numpy(), (2 * (norm - 1) * critic.w.detach() / norm).numpy(), rtol=1e-10
    )
    with torch.no_grad():
        critic.w.div_(critic.w.norm())
    assert gradient_penalty(critic, real, fake, cond).item() < 1e-20


def test_gradient_penalty_interpolates_per_sample() -> None:
    real, fake, cond = _fields(batch=5)

    def critic(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x**2).flatten(1).sum(1)  # input gradient is x itself

    gp = gradient_penalty(critic, real, fake, cond, generator=torch.Generator().manual_seed(3))
    eps = torch.rand((5, 1, 1, 1), generator=torch.Generator().manual_seed(3)).double()
    yhat = eps * real + (1 - eps) * fake
    expected = ((yhat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    assert math.isclose(gp.item(), expected.item(), rel_tol=1e-12)


def test_critic_loss_sign_conventions_and_stats() -> None:
    real, fake, cond = _fields()
    critic = LinearCritic((1, 3, 5))
    loss, stats = critic_loss(critic, real, fake, cond, gp_weight=10.0)
    with torch.no_grad():
        d_real, d_fake = critic(real, cond).mean(), critic(fake, cond).mean()
        gp = (critic.w.norm() - 1) ** 2
    assert math.isclose(loss.item(), (d_fake - d_real + 10 * gp).item(), rel_tol=1e-12)
    assert set(stats) == {"critic", "wasserstein", "gp"}
    assert all(isinstance(v, float) for v in stats.values())
    assert math.isclose(stats["critic"], loss.item(), rel_tol=1e-12)
    assert math.isclose(stats["wasserstein"], (d_real - d_fake).item(), rel_tol=1e-12)
    assert math.isclose(stats["gp"], gp.item(), rel_tol=1e-12)
    # gp_weight=0: the loss is minus the Wasserstein estimate
    loss0, stats0 = critic_loss(critic, real, fake, cond, gp_weight=0.0)
    assert math.isclose(loss0.item(), -stats0["wasserstein"], rel_tol=1e-12)


def test_critic_that_prefers_real_has_positive_wasserstein() -> None:
    real = torch.ones(3, 1, 2, 2)
    fake = torch.zeros(3, 1, 2, 2)

    def critic(x: torch.Tensor, cond: None) -> torch.Tensor:
        return 0.5 * x.flatten(1).sum(1, keepdim=True)  # [batch, 1], unit gradient norm

    loss, stats = critic_loss(critic, real, fake, None)
    assert stats["wasserstein"] == pytest.approx(2.0)
    assert stats["gp"] == pytest.approx(0.0)
    assert loss.item() == pytest.approx(-2.0)
    # the generator wants the critic to score its output high
    assert generator_adversarial_loss(critic, fake, None).item() == pytest.approx(0.0)
    assert generator_adversarial_loss(critic, real, None).item() == pytest.approx(-2.0)


def test_critic_loss_trains_critic_only() -> None:
    real, _, cond = _fields()
    gen_param = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))
    fake = gen_param * real.flip(0)
    critic = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(15, 8), torch.nn.Tanh())
    critic = critic.double()
    head = torch.nn.Linear(8, 1).double()

    def score(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return head(critic(x + c))

    loss, _ = critic_loss(score, real, fake, cond)
    loss.backward()
    assert gen_param.grad is None  # fake is detached
    grads = [p.grad for p in [*critic.parameters(), *head.parameters()]]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # the generator's adversarial loss does reach the generator
    generator_adversarial_loss(score, fake, cond).backward()
    assert gen_param.grad is not None
    assert torch.isfinite(gen_param.grad)


def test_wgan_gp_is_reproducible_with_a_seeded_generator() -> None:
    real, fake, cond = _fields(batch=6)
    torch.manual_seed(123)
    critic = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(15, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).double()

    def score(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return critic(x * c)

    def run(seed: int) -> tuple[float, dict[str, float]]:
        loss, stats = critic_loss(
            score, real, fake, cond, generator=torch.Generator().manual_seed(seed)
        )
        return loss.item(), stats

    first, second, other = run(7), run(7), run(8)
    assert first == second
    assert other[1]["gp"] != first[1]["gp"]
    torch.manual_seed(0)  # the global RNG is not used when a generator is given
    assert run(7) == first


def test_critic_with_wrong_output_shape_is_rejected() -> None:
    real, fake, cond = _fields()
    with pytest.raises(ModelMismatchError, match="one score per sample"):
        critic_loss(lambda x, c: x.flatten(1), real, fake, cond)
    with pytest.raises(InputDataError, match="same shape"):
        gradient_penalty(lambda x, c: x.flatten(1).sum(1), real, fake[:2], cond)
