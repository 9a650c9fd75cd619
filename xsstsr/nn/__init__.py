"""Networks and losses: the generator and critic, the point-wise losses, WGAN-GP.

Importing this package imports torch.
"""

from __future__ import annotations

from .adversarial import (
    critic_loss,
    generator_adversarial_loss,
    gradient_penalty,
)
from .losses import (
    FRECHET_PARAMS,
    GUMBEL_R_VALUES,
    LOSS_NAMES,
    METHOD_CONFIGS,
    LossConfig,
    elementwise_loss,
    frechet_floor,
    make_loss_config,
    pointwise_loss,
    reference_loss,
)
from .networks import (
    Critic,
    Generator,
    build_generator,
)

__all__ = [
    "FRECHET_PARAMS",
    "GUMBEL_R_VALUES",
    "LOSS_NAMES",
    "METHOD_CONFIGS",
    "Critic",
    "Generator",
    "LossConfig",
    "build_generator",
    "critic_loss",
    "elementwise_loss",
    "frechet_floor",
    "generator_adversarial_loss",
    "gradient_penalty",
    "make_loss_config",
    "pointwise_loss",
    "reference_loss",
]
