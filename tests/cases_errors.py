"""Bad-input rows for evaluation, plots, losses and the bundled samples.

Each row is an option outside its choices or a missing argument of :func:`xsstsr.evaluate`,
:func:`xsstsr.zonal_spectrum`, the baselines, the plots, the losses or
:func:`xsstsr.datasets.open_sample`. The input is what the caller holds (checked unchanged
after the call); ``None`` where the call takes no data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xarray as xr
from catalogue import Case, field, stations

import xsstsr
from xsstsr import datasets, evaluation, nn, plotting
from xsstsr import errors as E


def _pair() -> tuple[xr.DataArray, xr.DataArray]:
    """A 'downscaled' field and its truth on the same grid."""
    return field(), field(seed=1)


def _evaluate(**kwargs: Any):
    def make(env):
        return _pair(), lambda obj: xsstsr.evaluate(obj[0], obj[1], **kwargs)

    return make


def _region_mask_with_extra_dim(env):
    hi, truth = _pair()
    mask = (truth.isel(time=0, drop=True) > 20).rename("warm").expand_dims(member=2)
    return (hi, truth, mask), lambda obj: xsstsr.evaluate(obj[0], obj[1], regions=obj[2])


def _agg() -> None:
    import matplotlib

    matplotlib.use("Agg")


def _plot(call):
    def make(env):
        _agg()
        return field(), call

    return make


def _all_nan(env):
    _agg()
    da = field()
    return da.copy(data=np.full(da.shape, np.nan, da.dtype)), xsstsr.plot_compare


def _coarse_and_result(env):
    hi, coarse = field(), field(ny=2, nx=2)
    return (hi, coarse), lambda obj: xsstsr.plot_compare(obj[1], obj[1], result=obj[0])


def _stations_n_zero(env):
    _agg()
    return (field(), stations()), lambda obj: xsstsr.plot_stations(obj[0], obj[1], n=0)


def _history(env):
    _agg()
    return None, lambda _: plotting.plot_history(env.m4)  # made by hand, never fitted


def _loss_shapes(env):
    pred, truth = np.zeros((2, 3), "float32"), np.zeros((3, 2), "float32")
    config = nn.make_loss_config("gumbel", r=1.1)
    return (pred, truth), lambda obj: nn.pointwise_loss(
        torch.from_numpy(obj[0]), torch.from_numpy(obj[1]), config
    )


def _critic_shape(env):
    real, fake = torch.zeros(4, 1, 3, 5), torch.ones(4, 1, 3, 5)
    return None, lambda _: nn.critic_loss(lambda x, c: x.flatten(1), real, fake, None)


CASES: list[Case] = [
    # -- evaluate
    Case(
        "evaluate-without-truth-or-stations",
        lambda env: (field(), xsstsr.evaluate),
        E.InputDataError,
        ValueError,
        r"pass truth= \(a gridded field\), stations=",
    ),
    Case(
        "evaluate-by-unknown",
        _evaluate(by="week"),
        E.OptionError,
        ValueError,
        "by must be 'season', 'month' or None",
    ),
    Case(
        "evaluate-extremes-outside-0-1",
        _evaluate(extremes=99),
        E.OptionError,
        ValueError,
        r"extremes=0\.99 scores the top 1 %",
    ),
    Case(
        "evaluate-baseline-unknown",
        _evaluate(baseline="cubic", coarse=field(ny=2, nx=2)),
        E.OptionError,
        ValueError,
        r"baseline must be one of \('bicubic', 'nearest'\)",
    ),
    Case(
        "evaluate-region-given-by-name",
        _evaluate(regions={"atlantic": "Atlantic"}),
        E.InputTypeError,
        TypeError,
        "give the box itself",
    ),
    Case(
        "evaluate-region-named-all",
        _evaluate(regions={"all": (30, 31, 120, 121)}),
        E.OptionError,
        ValueError,
        "rename that region",
    ),
    Case(
        "evaluate-regions-a-list",
        _evaluate(regions=[(30, 31, 120, 121)]),
        E.InputTypeError,
        TypeError,
        r"regions=\{\"north\": \(40, 50, 130, 150\)\}",
    ),
    Case(
        "evaluate-region-mask-extra-dim",
        _region_mask_with_extra_dim,
        E.InputDataError,
        ValueError,
        r"give one \(lat, lon\) mask per region",
    ),
    Case(
        "evaluate-truth-not-xarray",
        lambda env: (
            (field(), field().values),
            lambda obj: xsstsr.evaluate(obj[0], obj[1]),
        ),
        E.InputTypeError,
        TypeError,
        r"xr\.open_dataset\(path\)",
    ),
    Case(
        "spectrum-units-unknown",
        lambda env: (field(), lambda obj: evaluation.zonal_spectrum(obj, units="m")),
        E.OptionError,
        ValueError,
        "units must be 'degree' or 'km'",
    ),
    Case(
        "baseline-without-factor-or-like",
        lambda env: (field(), evaluation.nearest_baseline),
        E.FactorError,
        ValueError,
        r"pass factor= \(e\.g\. factor=4\) or like=",
    ),
    # -- plots
    Case(
        "plot-baseline-unknown",
        _plot(lambda obj: xsstsr.plot_compare(obj, obj, baseline="cubic")),
        E.OptionError,
        ValueError,
        "baseline must be one of",
    ),
    Case(
        "plot-baseline-without-coarse",
        _plot(lambda obj: xsstsr.plot_compare(obj, baseline="bicubic")),
        E.OptionError,
        ValueError,
        "pass coarse=, or drop baseline=",
    ),
    Case(
        "plot-coarse-and-result",
        _coarse_and_result,
        E.InputTypeError,
        TypeError,
        r"plot_compare\(coarse, result=hi\), not both",
    ),
    Case(
        "plot-every-panel-nan",
        _all_nan,
        E.InputDataError,
        ValueError,
        "pick another one with time=",
    ),
    Case(
        "plot-stations-n-not-positive",
        _stations_n_zero,
        E.OptionError,
        ValueError,
        "e.g. n=4, or pick them with station_ids=",
    ),
    Case(
        "plot-history-of-unfitted-model",
        _history,
        E.ModelMismatchError,
        ValueError,
        "Plot the model that xsstsr.fit returned",
    ),
    # -- losses
    Case(
        "loss-pred-truth-shapes-differ",
        _loss_shapes,
        E.InputDataError,
        ValueError,
        "crop or pad one to the other's shape",
    ),
    Case(
        "critic-not-one-score-per-sample",
        _critic_shape,
        E.ModelMismatchError,
        ValueError,
        "end it with a layer giving one output per sample",
    ),
    # -- bundled samples
    Case(
        "sample-kind-unknown",
        lambda env: (None, lambda _: datasets.open_sample("fine")),  # type: ignore[arg-type]
        E.OptionError,
        ValueError,
        r'open_sample\("truth"\) for the fine field',
    ),
]
