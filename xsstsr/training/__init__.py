"""Training: ``fit()`` and the pieces it is made of.

* :mod:`~xsstsr.training.config`: :class:`FitConfig`, every hyper-parameter, validated;
* :mod:`~xsstsr.training.data`: the SST on nested grids, stations, patches, time splits;
* :mod:`~xsstsr.training.loop`: WGAN-GP steps, validation, the best checkpoint;
* :mod:`~xsstsr.training.checkpoints`: resumable state as safetensors plus JSON;
* :mod:`~xsstsr.training.parallel`: data-parallel runs under ``torchrun``.

Two ways to train: without ``target`` the data is the high-resolution truth and the
inputs are its area averages by the factor; with ``target=`` the data is the
low-resolution input (a reanalysis, say) and ``target`` the truth on its own grid.
"""

from .api import fit
from .checkpoints import CHECKPOINT_STATE, CHECKPOINT_TENSORS, load_checkpoint, save_checkpoint
from .config import LOSS_SCALE_MULTIPLIER, LR_SCHEDULES, FitConfig
from .data import PatchSampler, TrainingData, prepare_data, split_times

__all__ = [
    "CHECKPOINT_STATE",
    "CHECKPOINT_TENSORS",
    "LOSS_SCALE_MULTIPLIER",
    "LR_SCHEDULES",
    "FitConfig",
    "PatchSampler",
    "TrainingData",
    "fit",
    "load_checkpoint",
    "prepare_data",
    "save_checkpoint",
    "split_times",
]
