"""``FitConfig``: every hyper-parameter of a fit in one validated dataclass.

``fit()``, the accessor and the CLI all build one of these; the loop reads nothing else.
Values left ``None`` are derived from the training data by :func:`resolve` (steps, patch
size, loss scale, validation cadence), so the defaults adapt to the record. The defaults
themselves come from the study in ``benchmarks/training_study.py`` (see
``docs/training_study.md``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import FitConfigError
from ..nn.losses import LossConfig, make_loss_config

#: Learning-rate schedules: a function of the step only, so a resumed run is exact.
LR_SCHEDULES = ("constant", "cosine", "linear")
KEEP = ("best", "last")

#: Default loss scale, as a multiple of the bicubic RMSE on the training patches (kelvin).
#: Chosen by the loss-scale study (docs/training_study.md): Gumbel needs the bulk of the
#: errors near e ~ 1, where it is still steep; Fréchet needs them deep inside its quadratic
#: bowl (|e| << s z0 / a ~ 0.13), or its asymmetry drifts the field warm.
LOSS_SCALE_MULTIPLIER = {"mse": 1.0, "gumbel": 0.5, "frechet": 20.0}

DEFAULT_LR = 2e-3  # from scratch; a fine-tune takes its start's rate, at most this

# Generator steps a default fit aims for: enough passes over the record's area, within
# bounds that keep a CPU fit of a small record to minutes. Early stopping ends it sooner.
DEFAULT_EPOCHS = 40
MIN_STEPS = 600
MAX_STEPS = 3000
MAX_PATCH = 24
MIN_PATCH = 8


@dataclass(frozen=True)
class FitConfig:
    """Hyper-parameters of :func:`xsstsr.fit` (every keyword argument besides the data).

    Parameters
    ----------
    loss : {"mse", "gumbel", "frechet"}
        Point-wise loss of the pixel and station terms.
    r : float, optional
        Gumbel exponent (the method uses 1.0, 1.1, 1.5, 2.0).
    a, s : float, optional
        Fréchet shape and scale (the method uses (10, 1.7), (13, 1.7), (15, 1.7), (15, 2.0)).
    loss_scale : float, optional
        The scale ``delta`` (kelvin) of the point-wise losses, which act on
        ``e = error_K / delta``. Default: a per-loss multiple of the bicubic RMSE on the
        training patches (:data:`LOSS_SCALE_MULTIPLIER`); stored in the model's metadata.
    factor : float, optional
        Downscaling factor: 4 without ``target``, else from the grids (or ``init``).
    window : int, optional
        Consecutive time steps the generator sees; 3, or ``init``'s window.
    steps : int, optional
        Generator steps. Default: about 40 passes over the training record's area,
        between 600 and 3000; early stopping may end the fit sooner.
    epochs, steps_per_epoch : int, optional
        The older way to set the length: ``steps = epochs * steps_per_epoch``, where an
        epoch defaults to one pass over the training record's area.
    batch_size : int
        Patches per generator step (the global batch under torchrun).
    patch_size : int, optional
        Patch side in low-resolution cells; 24, or three quarters of a smaller grid.
    lr : float, optional
        Adam learning rate of the generator and the critic (betas 0.0, 0.9). Default:
        2e-3 from scratch; when fine-tuning, the rate the starting model was trained
        with (at most 2e-3): a wider network trained at a lower rate can diverge at
        2e-3 (see the training study).
    lr_schedule : {"cosine", "constant", "linear"}
        ``"cosine"`` and ``"linear"`` decay the rate to a tenth of ``lr`` by the last step.
    warmup : int
        Steps of linear warm-up from 0 at the start (0 for none).
    n_critic : int
        Critic steps per generator step.
    gp_weight : float
        Lambda of the critic's gradient penalty (WGAN-GP).
    adv_weight : float
        Weight of the adversarial term of the generator loss, relative to an error of one
        ``loss_scale`` (the pixel and station terms are in units of the loss scale).
    pixel_weight : float
        Weight of the point-wise loss on the grid.
    station_weight : float
        Weight of the point-wise loss at the stations.
    augment : bool
        Flip and transpose each training patch at random (eight orientations): on a small
        record the model learns less of one region's geography by heart.
    validation : float
        Fraction of the time steps held out in contiguous blocks for validation; the
        ``window - 1`` steps beside a block (at least one) are not trained on. 0
        validates on training frames (no early stopping then).
    validation_blocks : int, optional
        Number of contiguous blocks the validation steps are split into, spread over
        the record (so every season is seen); default one per 24 steps, 1 to 4.
    validate_every : int, optional
        Steps between validations; default a twentieth of the run (at least 10).
    patience : int, optional
        Validations without improvement before the fit stops early; ``None`` never stops.
    ema : float, optional
        Decay per step of an exponential moving average of the generator's weights
        (Polyak averaging, e.g. ``ema=0.999``): validation, the best checkpoint and the
        returned model are the average, which smooths out the noise of the last steps.
        The decay ramps up as ``min(ema, (1 + step) / (10 + step))`` so that a short fit
        is not dominated by its first weights. ``None`` returns the trained weights.
    keep : {"best", "last"}
        Which generator is returned: the best validation checkpoint (lowest RMSE), or the
        last one, for a realistic model whose adversarial weight trades RMSE for
        small-scale energy (the lowest-RMSE checkpoint would undo the trade; no early
        stopping then).
    seed : int
        Seeds weights, patches and the gradient penalty: same seed, same model.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
    checkpoint_dir : path, optional
        Checkpoints every ``checkpoint_every`` steps; ``resume=True`` continues the last.
    checkpoint_every : int
        Steps between checkpoints in ``checkpoint_dir``.
    resume : bool
        Continue the checkpoint in ``checkpoint_dir`` (the same arguments as its run).
    progress : bool
        A tqdm bar with the losses and the validation RMSE.
    name : str, optional
        The model's name (default ``sst-x<factor>-<loss>``).
    architecture : mapping, optional
        Generator sizes (``features``, ``blocks``, ``up_features``, ``fill_iterations``),
        ``conserve`` (keep each coarse cell's mean) and ``scale_radius`` (divide the inputs
        and multiply the correction by the local RMS of the anomalies over that many coarse
        cells around each one, so quiet and energetic fields get corrections in proportion).
    init : "auto", str, path, Model or None
        Start from these weights (a released name such as ``"sst-x4"``, a file, or a
        :class:`~xsstsr.Model`): fine-tuning. Factor, window, inputs and architecture
        must match; the normalisation is the initial model's. ``"auto"`` (the default)
        starts from the released accurate model of the data's factor (``sst-x2``,
        ``sst-x2.5``, ``sst-x4``, ``sst-x5``) when the fit could take its weights: the
        inputs are the truth's area averages, SST alone, and neither ``architecture=``
        nor another ``window=`` is asked for; otherwise, and with ``None``, from scratch
        (a zero correction to bicubic). The model's ``metadata["training"]["init"]`` says which.
    """

    loss: str = "mse"
    r: float | None = None
    a: float | None = None
    s: float | None = None
    loss_scale: float | None = None
    factor: float | None = None
    window: int | None = None
    steps: int | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int = 16
    patch_size: int | None = None
    lr: float | None = None
    lr_schedule: str = "cosine"
    warmup: int = 20
    n_critic: int = 1
    gp_weight: float = 10.0
    adv_weight: float = 1e-4
    pixel_weight: float = 1.0
    station_weight: float = 1.0
    augment: bool = True
    validation: float = 0.2
    validation_blocks: int | None = None
    validate_every: int | None = None
    patience: int | None = 8
    ema: float | None = None
    keep: str = "best"
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int = 100
    resume: bool = False
    progress: bool = True
    name: str | None = None
    architecture: Mapping[str, Any] | None = None
    init: Any = "auto"
    # derived: set by resolve(), never by the user
    loss_config: LossConfig = field(default=LossConfig("mse"), repr=False, compare=False)

    def __post_init__(self) -> None:
        _validate(self)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_options(cls, options: Mapping[str, Any], base: FitConfig | None = None) -> FitConfig:
        """Build a config from keyword arguments (over ``base`` when given), refusing
        unknown names with a suggestion."""
        names = option_names()
        for key in options:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise FitConfigError(
                    f"fit() got an unknown option {key!r}{hint} See help(xsstsr.fit) for "
                    "the options."
                )
        return cls(**options) if base is None else base.replace(**options)

    def replace(self, **changes: Any) -> FitConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The user-set options as JSON-able values (what the model's metadata records)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("loss_config", "init", "progress", "resume", "checkpoint_dir"):
                continue
            value = getattr(self, f.name)
            if isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out


def option_names() -> list[str]:
    """The names ``fit()`` accepts as options (all fields but the derived ones)."""
    return [f.name for f in fields(FitConfig) if f.name != "loss_config"]


# -- validation --------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _integer(cfg: FitConfig, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        lowest = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise FitConfigError(
            f"{name} must be {lowest}{' or None' if optional else ''}, got {value!r}; "
            f"pass e.g. {name}={max(minimum, 1) if name != 'seed' else 0}."
        )
    object.__setattr__(cfg, name, int(value))


def _real(
    cfg: FitConfig, name: str, *, positive: bool, example: float, optional: bool = False
) -> None:
    value = getattr(cfg, name)
    if value is None and optional:
        return
    ok = _is_number(value) and math.isfinite(float(value))
    ok = ok and (float(value) > 0 if positive else float(value) >= 0)
    if not ok:
        what = "a positive finite number" if positive else "a finite number >= 0"
        raise FitConfigError(f"{name} must be {what}, got {value!r}; pass e.g. {name}={example}.")
    object.__setattr__(cfg, name, float(value))


def _check_init(init: Any) -> None:
    from ..models.container import Model

    if init is None or isinstance(init, (Model, os.PathLike)):
        return
    if isinstance(init, str):
        if init.strip().lower() in ("auto", "none", "scratch", "") and init != "auto":
            raise FitConfigError(
                f"init={init!r} is not an option; pass init='auto' (the released model of "
                "the factor when it fits), init=None (from scratch), a released name such "
                "as 'sst-x4', or a .safetensors path."
            )
        return
    raise FitConfigError(
        f"init must be 'auto', None, a released name, a path or an xsstsr.Model, got "
        f"{type(init).__name__}; pass e.g. init='sst-x4' or init=None."
    )


def _validate(cfg: FitConfig) -> None:
    object.__setattr__(cfg, "loss_config", make_loss_config(cfg.loss, r=cfg.r, a=cfg.a, s=cfg.s))
    _check_init(cfg.init)
    _real(cfg, "loss_scale", positive=True, example=0.1, optional=True)
    if cfg.factor is not None:
        from ..grid.factor import parse_factor

        parse_factor(cfg.factor)  # raises FactorError with the fix
    _integer(cfg, "window", 1, optional=True)
    for name in ("steps", "epochs", "steps_per_epoch", "validate_every", "patch_size"):
        _integer(cfg, name, 1, optional=True)
    if cfg.patch_size is not None and cfg.patch_size < 4:
        raise FitConfigError(
            f"patch_size must be at least 4 low-resolution cells, got {cfg.patch_size}; "
            "pass e.g. patch_size=16 (or leave it None to adapt it to the grid)."
        )
    if cfg.steps is not None and (cfg.epochs is not None or cfg.steps_per_epoch is not None):
        raise FitConfigError(
            "give either steps= or epochs=/steps_per_epoch=, not both; e.g. steps=500."
        )
    for name in ("batch_size", "n_critic", "checkpoint_every"):
        _integer(cfg, name, 1)
    _integer(cfg, "validation_blocks", 1, optional=True)
    _integer(cfg, "warmup", 0)
    _integer(cfg, "patience", 1, optional=True)
    _integer(cfg, "seed", 0)
    _real(cfg, "lr", positive=True, example=5e-4, optional=True)
    if cfg.lr is not None and cfg.lr > 1.0:
        raise FitConfigError(
            f"lr={cfg.lr!r} would blow the weights up; Adam wants about 1e-4 to 1e-3: pass "
            "e.g. lr=5e-4."
        )
    _real(cfg, "gp_weight", positive=False, example=10.0)
    if cfg.ema is not None and not (
        _is_number(cfg.ema) and math.isfinite(float(cfg.ema)) and 0 < float(cfg.ema) < 1
    ):
        raise FitConfigError(
            f"ema must be a decay in (0, 1) or None, got {cfg.ema!r}; pass e.g. ema=0.999."
        )
    if cfg.ema is not None:
        object.__setattr__(cfg, "ema", float(cfg.ema))
    for name in ("adv_weight", "pixel_weight", "station_weight"):
        _real(cfg, name, positive=False, example=1.0 if name != "adv_weight" else 1e-3)
    if cfg.pixel_weight == 0 and cfg.station_weight == 0:
        raise FitConfigError(
            "pixel_weight and station_weight are both 0: nothing would tie the output to the "
            "truth; keep pixel_weight=1."
        )
    if not isinstance(cfg.lr_schedule, str) or cfg.lr_schedule not in LR_SCHEDULES:
        raise FitConfigError(
            f"unknown lr_schedule {cfg.lr_schedule!r}; use one of "
            f"{', '.join(repr(s) for s in LR_SCHEDULES)}."
        )
    if not isinstance(cfg.keep, str) or cfg.keep not in KEEP:
        raise FitConfigError(
            f"unknown keep={cfg.keep!r}; use one of {', '.join(repr(k) for k in KEEP)}."
        )
    v = cfg.validation
    if not _is_number(v) or not 0 <= float(v) < 1:
        raise FitConfigError(
            f"validation must be a fraction in [0, 1), got {v!r}; pass e.g. validation=0.2 "
            "(or 0 to validate on the training steps)."
        )
    object.__setattr__(cfg, "validation", float(v))
    for name in ("resume", "progress", "augment"):
        if not isinstance(getattr(cfg, name), bool):
            raise FitConfigError(f"{name} must be True or False, got {getattr(cfg, name)!r}.")
    if not isinstance(cfg.device, str):
        raise FitConfigError(f"device must be a string such as 'cpu', got {cfg.device!r}.")
    if cfg.name is not None and (not isinstance(cfg.name, str) or not 0 < len(cfg.name) <= 200):
        raise FitConfigError(f"name must be a non-empty string, got {cfg.name!r}.")
    if cfg.architecture is not None and not isinstance(cfg.architecture, Mapping):
        raise FitConfigError(
            f"architecture must be a mapping such as {{'features': 32}}, got {cfg.architecture!r}."
        )
    for key, value in (cfg.architecture or {}).items():
        if key not in ARCHITECTURE_KEYS:
            raise FitConfigError(
                f"architecture has no option {key!r}; use {sorted(ARCHITECTURE_KEYS)}."
            )
        least = 0 if key in ("blocks", "scale_radius") else 1
        most = 16 if key == "scale_radius" else None  # the weights' metadata allows 0..16
        if ARCHITECTURE_KEYS[key] is bool:
            ok, wanted = isinstance(value, bool), "True or False"
        else:  # bool is an int to Python, not a size
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
            ok = ok and (most is None or value <= most)
            wanted = f"an integer >= {least}" if most is None else f"an integer in {least}..{most}"
        if not ok:
            raise FitConfigError(f"architecture[{key!r}] must be {wanted}, got {value!r}.")
    if cfg.resume and cfg.checkpoint_dir is None:
        raise FitConfigError("resume=True needs checkpoint_dir= (where the checkpoint is).")
    if cfg.checkpoint_dir is not None:
        _check_writable(Path(cfg.checkpoint_dir))


def _check_writable(directory: Path) -> None:
    """Refuse a checkpoint_dir that cannot be written before any training step."""
    probe = directory
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise FitConfigError(
            f"checkpoint_dir {str(directory)!r} is inside a file ({str(probe)!r}); pass a "
            "directory path."
        )
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise FitConfigError(
            f"checkpoint_dir {str(directory)!r} is not writable (no write permission on "
            f"{str(probe)!r}); pass a directory you can write to."
        )
    try:  # permissions do not tell everything: root on a read-only or virtual file system
        tempfile.TemporaryDirectory(dir=probe).cleanup()
    except OSError as err:
        raise FitConfigError(
            f"checkpoint_dir {str(directory)!r} cannot be created in {str(probe)!r} "
            f"({err.strerror or err}); pass a directory on a writable disk."
        ) from err


#: The generator options ``architecture=`` may set, and their types.
ARCHITECTURE_KEYS: dict[str, type] = {
    "features": int,
    "blocks": int,
    "up_features": int,
    "fill_iterations": int,
    "conserve": bool,
    "scale_radius": int,
}


# -- defaults derived from the data ------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """The values a fit runs with once the data is known."""

    steps: int
    steps_per_epoch: int
    patch_size: int
    validate_every: int
    window: int


def resolve(cfg: FitConfig, n_train_frames: int, ny: int, nx: int, pool: int) -> Resolved:
    """Steps, patch size and validation cadence from the training record's size."""
    side = min(ny, nx)
    patch = cfg.patch_size or max(MIN_PATCH, min(MAX_PATCH, side * 3 // 4))
    patch = min(patch, side - side % pool)
    patch -= patch % pool
    cells = max(1, n_train_frames) * ny * nx
    per_epoch = cfg.steps_per_epoch or max(1, math.ceil(cells / (cfg.batch_size * patch * patch)))
    if cfg.steps is not None:
        steps = cfg.steps
    elif cfg.epochs is not None:
        steps = cfg.epochs * per_epoch
    else:
        steps = min(MAX_STEPS, max(MIN_STEPS, DEFAULT_EPOCHS * per_epoch))
    every = cfg.validate_every or max(10, steps // 20)
    return Resolved(
        steps=steps,
        steps_per_epoch=per_epoch,
        patch_size=patch,
        validate_every=min(every, steps),
        window=cfg.window or 3,
    )


def ema_decay(cfg: FitConfig, step: int) -> float:
    """Weight of the old average at ``step`` (1-based): ramps up to ``cfg.ema``."""
    if cfg.ema is None:
        return 0.0
    return min(cfg.ema, (1 + step) / (10 + step))


def base_rate(lr: float | None, start_lr: Any = None) -> float:
    """The peak rate of a fit: ``lr`` as given, else its start's training rate (capped at
    :data:`DEFAULT_LR`), else :data:`DEFAULT_LR`."""
    if lr is not None:
        return float(lr)
    if _is_number(start_lr) and math.isfinite(float(start_lr)) and float(start_lr) > 0:
        return min(float(start_lr), DEFAULT_LR)
    return DEFAULT_LR


def learning_rate(cfg: FitConfig, step: int, total: int) -> float:
    """The rate at ``step`` (0-based) of ``total``: warm-up, then the schedule."""
    lr = base_rate(cfg.lr)
    if cfg.warmup and step < cfg.warmup:
        return lr * (step + 1) / (cfg.warmup + 1)
    progress = min(1.0, step / max(1, total - 1))
    if cfg.lr_schedule == "cosine":
        return lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))
    if cfg.lr_schedule == "linear":
        return lr * (1.0 - 0.9 * progress)
    return lr
