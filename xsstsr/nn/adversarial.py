"""WGAN-GP (Gulrajani et al. 2017): the critic's loss with its gradient penalty, the generator's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ..errors import InputDataError, ModelMismatchError

CriticFn = Callable[[Tensor, Any], Tensor]


def _scores(critic: CriticFn, field: Tensor, cond: Any) -> Tensor:
    """Critic scores as a ``[batch]`` tensor."""
    out = critic(field, cond)
    batch = field.shape[0]
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if tuple(out.shape) != (batch,):
        raise ModelMismatchError(
            f"critic must return one score per sample, shape ({batch},) or ({batch}, 1); "
            f"got {tuple(out.shape)}; end it with a layer giving one output per sample."
        )
    return out


def gradient_penalty(
    critic: CriticFn,
    real: Tensor,
    fake: Tensor,
    cond: Any,
    generator: torch.Generator | None = None,
    eps: Tensor | None = None,
) -> Tensor:
    """WGAN-GP gradient penalty ``E[(||grad_yhat D(yhat, cond)||_2 - 1)**2]``.

    ``yhat = eps * real + (1 - eps) * fake`` with ``eps ~ U(0, 1)`` drawn once per sample.

    Parameters
    ----------
    critic : callable
        ``critic(field, cond) -> Tensor`` of shape ``[batch]`` or ``[batch, 1]``. Each score
        must depend on its own sample only (no batch norm), as WGAN-GP requires.
    real, fake : Tensor
        ``[batch, ...]`` fields, NaN-free (the caller fills land before). ``fake`` is detached.
    cond : Tensor or None
        Conditioning input passed unchanged to the critic.
    generator : torch.Generator, optional
        Source of ``eps`` for reproducibility. ``eps`` is drawn on the generator's device (the
        CPU for the default) in float32, then moved to ``real``'s device and dtype, so a seeded
        CPU generator gives the same ``eps`` on every device.
    eps : Tensor, optional
        The interpolation weights themselves, one per sample (overrides ``generator``):
        data-parallel training draws them for the global batch and gives each process its
        share, so the result matches one process.

    Returns
    -------
    Tensor
        Scalar penalty, differentiable with respect to the critic's parameters.
    """
    if real.shape != fake.shape:
        raise InputDataError(
            f"real and fake must have the same shape (got {tuple(real.shape)} and "
            f"{tuple(fake.shape)}); crop or pad one to the other's shape."
        )
    batch = real.shape[0]
    shape = (batch,) + (1,) * (real.ndim - 1)
    if eps is None:
        device = generator.device if generator is not None else torch.device("cpu")
        eps = torch.rand(shape, generator=generator, device=device, dtype=torch.float32)
    eps = eps.reshape(shape).to(device=real.device, dtype=real.dtype)
    yhat = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    scores = _scores(critic, yhat, cond)
    # samples are independent, so the gradient of the sum is each score's own gradient
    (grad,) = torch.autograd.grad(scores.sum(), yhat, create_graph=True)
    norm = torch.linalg.vector_norm(grad.reshape(batch, -1), ord=2, dim=1)
    return ((norm - 1.0) ** 2).mean()


def critic_loss(
    critic: CriticFn,
    real: Tensor,
    fake: Tensor,
    cond: Any,
    gp_weight: float = 10.0,
    generator: torch.Generator | None = None,
    eps: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """WGAN-GP critic loss ``E[D(fake)] - E[D(real)] + gp_weight * GP``.

    Parameters
    ----------
    critic : callable
        ``critic(field, cond) -> Tensor`` of shape ``[batch]`` or ``[batch, 1]``.
    real : Tensor
        High-resolution truth ``[batch, ...]``, NaN-free: the caller replaces land/missing
        values before (the critic never sees NaN).
    fake : Tensor
        Generator output, same shape; detached here so only the critic is trained.
    cond : Tensor or None
        Conditioning input (e.g. the low-resolution field).
    gp_weight : float, default 10.0
        Weight of the gradient penalty (lambda in Gulrajani et al. 2017).
    generator : torch.Generator, optional
        Random source of the interpolation weights, see :func:`gradient_penalty`.
    eps : Tensor, optional
        The interpolation weights, see :func:`gradient_penalty`.

    Returns
    -------
    loss : Tensor
        Scalar to minimise with respect to the critic's parameters.
    stats : dict of str to float
        ``"critic"`` (the loss), ``"wasserstein"`` (``E[D(real)] - E[D(fake)]``, the critic's
        estimate of the distance, larger is a better critic) and ``"gp"`` (unweighted penalty).
    """
    fake = fake.detach()
    real_score = _scores(critic, real, cond).mean()
    fake_score = _scores(critic, fake, cond).mean()
    gp = gradient_penalty(critic, real, fake, cond, generator=generator, eps=eps)
    loss = fake_score - real_score + gp_weight * gp
    stats = {
        "critic": float(loss.detach()),
        "wasserstein": float((real_score - fake_score).detach()),
        "gp": float(gp.detach()),
    }
    return loss, stats


def generator_adversarial_loss(critic: CriticFn, fake: Tensor, cond: Any) -> Tensor:
    """Adversarial loss of the generator, ``-E[D(fake, cond)]``.

    Parameters
    ----------
    critic : callable
        ``critic(field, cond) -> Tensor`` of shape ``[batch]`` or ``[batch, 1]``.
    fake : Tensor
        Generator output, NaN-free, attached to the generator's graph.
    cond : Tensor or None
        Conditioning input.

    Returns
    -------
    Tensor
        Scalar to minimise with respect to the generator's parameters.
    """
    return -_scores(critic, fake, cond).mean()
