"""A fitted model's training history, as curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
import pandas as pd

from ..errors import InputTypeError, ModelMismatchError
from ..mpl import pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure


class HasHistory(Protocol):
    """What a training-history plot needs: a name and the history table (a Model has both)."""

    @property
    def name(self) -> str: ...

    @property
    def history(self) -> pd.DataFrame: ...


def plot_history(model: HasHistory, *, figsize: tuple[float, float] = (10, 3.6)) -> Figure:
    """Training curves of a fitted model: losses per step and validation RMSE per epoch."""
    history = getattr(model, "history", None)
    if not isinstance(history, pd.DataFrame):
        raise InputTypeError(
            f"plot_history needs an xsstsr Model (as returned by xsstsr.fit), got "
            f"{type(model).__name__}."
        )
    if history.empty:
        raise ModelMismatchError(
            f"model {model.name!r} has no training history: only a model "
            "made by xsstsr.fit (or saved from one) has it, bundled and converted weights do "
            "not. Plot the model that xsstsr.fit returned."
        )
    plt = pyplot()
    fig, (ax_loss, ax_critic, ax_val) = plt.subplots(1, 3, figsize=figsize, constrained_layout=True)
    for column in ("pixel", "station"):
        if column in history and np.isfinite(history[column]).any() and history[column].any():
            ax_loss.plot(history["step"], history[column], label=column)
    ax_loss.set_yscale("log")
    ax_loss.set_title("point-wise losses")
    ax_loss.set_xlabel("step")
    ax_loss.legend()
    if "wasserstein" in history:
        ax_critic.plot(history["step"], history["wasserstein"], label="Wasserstein estimate")
        ax_critic.plot(history["step"], history["adversarial"], label="generator adversarial")
    ax_critic.set_title("WGAN-GP")
    ax_critic.set_xlabel("step")
    ax_critic.legend()
    val = history.dropna(subset=["val_rmse"]) if "val_rmse" in history else history.iloc[:0]
    if not val.empty:
        ax_val.plot(val["step"], val["val_rmse"], "o-", label="generator")
        ax_val.plot(val["step"], val["val_rmse_bicubic"], "--", label="bicubic")
    ax_val.set_title("validation RMSE (degC)")
    ax_val.set_xlabel("step")
    ax_val.legend()
    return fig
