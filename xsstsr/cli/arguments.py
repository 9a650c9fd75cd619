"""The command line's parser: commands, their options, and the fit options from FitConfig."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass


EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


EXIT_CODES = (
    "Exit codes: 0 ok, 2 usage, 3 bad input or model, 130 interrupted (Ctrl-C or SIGTERM), 1 other."
)


class UsageError(Exception):
    """A combination of options argparse cannot check."""


def parse_chunks(text: str | None) -> dict[str, int] | str | None:
    """``"time=8,lat=256"`` -> ``{"time": 8, "lat": 256}``; ``"file"`` -> ``{}`` (the file's
    own chunks); ``"auto"`` -> ``"auto"`` (dask's sizes, aligned with the file's chunks);
    ``"none"`` -> None (no dask)."""
    if text is None or text.lower() == "none":
        return None
    if text in ("auto", "file"):
        return "auto" if text == "auto" else {}
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, size = part.partition("=")
        size = size.strip()
        if not name.strip() or not size.lstrip("-").isdigit() or int(size) == 0 or int(size) < -1:
            raise argparse.ArgumentTypeError(
                f"--chunks takes DIM=SIZE pairs such as time=8,lat=256 (SIZE > 0, or -1 for "
                f"the whole dim), 'auto', 'file' or 'none' (got {text!r})"
            )
        out[name.strip()] = int(size)
    return out


def _factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--factor takes a number such as 4 or 2.5, got {text!r}"
        ) from None
    if not value > 1:
        raise argparse.ArgumentTypeError(f"--factor must be greater than 1, got {text!r}")
    return value


def _integer_at_least(minimum: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive_int = _integer_at_least(1, "a positive integer")


_non_negative_int = _integer_at_least(0, "an integer >= 0")


def _patience(text: str) -> int | str:
    """A positive integer, or "none" (never stop early; fit's patience=None)."""
    return "none" if text.strip().lower() == "none" else _positive_int(text)


def _region(text: str) -> tuple[str, tuple[float, float, float, float]]:
    name, _, box = text.partition("=")
    try:
        values = tuple(float(v) for v in box.split(","))
    except ValueError:
        values = ()
    if not name or len(values) != 4:
        raise argparse.ArgumentTypeError(
            f"--region takes NAME=LAT0,LAT1,LON0,LON1, e.g. south=33,37,124,132 (got {text!r})"
        )
    return name, (values[0], values[1], values[2], values[3])


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep descriptions as written; add "(default: X)" where a default is worth saying."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (
            action.default is not None
            and action.default is not False
            and action.default != argparse.SUPPRESS
            and "default" not in text
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    from .._version import __version__

    parser = argparse.ArgumentParser(
        prog="xsstsr",
        description="Downscale sea surface temperature with a GAN generator (xarray + dask).",
        epilog=EXIT_CODES + " Run 'xsstsr COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"xsstsr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help, description=description, epilog=EXIT_CODES, formatter_class=_Formatter
        )

    quick = add(
        "quickstart",
        "downscale the bundled sample with the released sst-x4 model",
        "Downscale the bundled sample by 4 (offline), write a netCDF or zarr file and "
        "a PNG quick-look, and print the skill against the sample's truth.",
    )
    quick.add_argument("--out", default="sample_x4.nc", help="netCDF or zarr output")
    quick.add_argument("--png", default=None, help="quick-look PNG (default: OUT with .png)")
    quick.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    quick.add_argument("--overwrite", action="store_true", help="replace an existing OUT and PNG")

    down = add(
        "downscale",
        "downscale a netCDF file or zarr store",
        "Downscale IN to OUT (netCDF or zarr, by extension). The write is atomic: "
        "an interrupted or failed run leaves no OUT (and keeps an existing one).",
    )
    down.add_argument("input", metavar="IN", help="netCDF file or zarr store (coarse SST)")
    down.add_argument("output", metavar="OUT", help="netCDF (.nc) or zarr (.zarr) output")
    down.add_argument(
        "--factor", type=_factor, default=None, help="2, 2.5, 4 or 5 (default: the model's, or 4)"
    )
    down.add_argument(
        "--model", default=None, help="registry name or .safetensors path (default: sst-xFACTOR)"
    )
    down.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    down.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float32", "float16", "bfloat16"),
        help="arithmetic of the network (default auto: float16 on a GPU, float32 on the CPU)",
    )
    down.add_argument(
        "--chunks",
        type=parse_chunks,
        default="auto",
        help="dask chunks of IN: DIM=SIZE pairs (time=8,lat=256), 'auto' (dask's sizes, "
        "aligned with the file's chunks), 'file' (the file's own chunks) or 'none' (load "
        "into memory)",
    )
    _add_names(down, time=True)
    down.add_argument(
        "--batch-size",
        type=_positive_int,
        default=None,
        help="tiles per forward pass (default: from memory)",
    )
    down.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average over the 8 flips and transposes of each tile (8 x the compute, lower RMSE)",
    )
    down.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    down.add_argument("--overwrite", action="store_true", help="replace an existing OUT")

    fit = add(
        "fit",
        "train a generator",
        "Train a generator on IN: without --target IN is the high-resolution truth "
        "and the inputs are its area averages by --factor; with --target IN is the "
        "low-resolution input and TARGET the truth. Saves a .safetensors model.",
    )
    fit.add_argument("input", metavar="IN", help="netCDF file or zarr store")
    fit.add_argument("output", metavar="MODEL", help="where to save the .safetensors model")
    fit.add_argument("--target", default=None, help="high-resolution truth file")
    fit.add_argument("--stations", default=None, help="CSV: station,time,lat,lon,sst")
    fit.add_argument(
        "--station-units",
        choices=["degC", "K"],
        default="degC",
        help="units of the station CSV's sst column (default degC)",
    )
    _add_names(fit, time=True)
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing MODEL")
    _add_fit_options(fit)

    ev = add(
        "evaluate",
        "skill of a downscaled file against truth and/or stations",
        "Score HIGHRES (a downscaled file) against gridded truth (--truth) and/or "
        "stations (--stations), beside baselines made from the coarse input "
        "(--coarse): RMSE, bias, MAE, correlation and RMSE over the extremes, "
        "overall, per season and per region.",
    )
    ev.add_argument("input", metavar="HIGHRES", help="downscaled netCDF/zarr")
    ev.add_argument("--truth", default=None, help="high-resolution truth file (same grid)")
    ev.add_argument("--stations", default=None, help="CSV: station,time,lat,lon,sst")
    ev.add_argument(
        "--station-units",
        choices=["degC", "K"],
        default="degC",
        help="units of the station CSV's sst column (default degC)",
    )
    ev.add_argument("--coarse", default=None, help="the coarse input (for the baselines)")
    ev.add_argument(
        "--baseline",
        action="append",
        choices=["bicubic", "nearest", "none"],
        default=None,
        help="baseline(s) made from --coarse; repeat for several (default bicubic)",
    )
    ev.add_argument(
        "--by",
        default="season",
        choices=["season", "month", "none"],
        help="periods scored besides the whole record",
    )
    ev.add_argument(
        "--region",
        type=_region,
        action="append",
        default=None,
        metavar="NAME=LAT0,LAT1,LON0,LON1",
        help="a named box; repeat for several",
    )
    _add_names(ev, time=False)
    ev.add_argument("--out", default=None, help="also write the table as CSV")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --out")

    add(
        "models",
        "list the released models",
        "List the released models this installation knows: name, factor, kind (accurate or "
        "realistic), what each is for, the input spacing and time step it was trained on "
        "(its domain) and sha256.",
    )
    add(
        "versions",
        "print versions for bug reports",
        "Print the versions of xsstsr, its dependencies, Python and PyTorch's devices.",
    )
    for command in sub.choices.values():  # to word library messages as flags (cli_words)
        flags = {flag for action in command._actions for flag in action.option_strings}
        command.set_defaults(cli_flags=frozenset(flags))
    return parser


def _add_names(parser: argparse.ArgumentParser, *, time: bool) -> None:
    """--variable, --lat, --lon (and --time): names for files whose SST or axes cannot be
    found from CF attributes or common names."""
    parser.add_argument("--variable", default=None, help="SST variable name")
    parser.add_argument(
        "--units", default=None, help="units of the SST (degC or K) when the file does not say"
    )
    parser.add_argument("--lat", default=None, help="name of the latitude dimension")
    parser.add_argument("--lon", default=None, help="name of the longitude dimension")
    if time:
        parser.add_argument("--time", default=None, help="name of the time dimension")


# fit's options that the CLI does not offer: objects, or set by other flags
_FIT_OPTIONS_NOT_IN_CLI = {"architecture", "progress"}


def fit_option_names() -> list[str]:
    from ..training.config import option_names

    return [n for n in option_names() if n not in _FIT_OPTIONS_NOT_IN_CLI]


def _option_help() -> dict[str, str]:
    """First line of each option's description in FitConfig's docstring."""
    import inspect

    from ..training.config import FitConfig

    text = inspect.getdoc(FitConfig) or ""
    body = text.split("----------\n", 1)[1]
    paragraphs: dict[str, list[str]] = {}
    names: list[str] = []
    for line in body.splitlines():
        if line and not line.startswith(" "):
            names = [n.strip() for n in line.split(":")[0].split(",")]
            for name in names:
                paragraphs[name] = []
        elif line.strip():
            for name in names:
                paragraphs[name].append(line.strip())
    out: dict[str, str] = {}
    role = re.compile(r":[a-z]+:`~?([^`]+)`")  # :class:`~xsstsr.Model` -> xsstsr.Model
    sentence_end = re.compile(r"(?<!e\.g)(?<!i\.e)\. ")
    for name, lines in paragraphs.items():
        text = role.sub(r"\1", " ".join(lines).replace("``", ""))
        out[name] = sentence_end.split(text)[0].rstrip(".")
    return out


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    """One --flag per FitConfig option, typed from its default: the CLI and fit() share them."""
    from dataclasses import fields

    from ..nn.losses import LOSS_NAMES
    from ..training.config import DEFAULT_LR, KEEP, LR_SCHEDULES, FitConfig

    helps = _option_help()
    defaults = {f.name: f.default for f in fields(FitConfig)}
    integers = {
        "window", "steps", "epochs", "steps_per_epoch", "batch_size", "patch_size",
        "warmup", "n_critic", "validation_blocks", "validate_every", "patience", "seed",
        "checkpoint_every",
    }  # fmt: skip
    for name in fit_option_names():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        text = helps.get(name, "")
        if default is not None:
            text += f" (default {default})"
        elif name == "lr":
            text += (
                f" (default {DEFAULT_LR:g} from scratch; a fine-tune takes the rate its start "
                f"was trained with, at most {DEFAULT_LR:g})"
            )
        if name == "resume":
            parser.add_argument(flag, action="store_true", default=None, help=text)
        elif name == "augment":
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        elif name == "loss":
            parser.add_argument(flag, choices=list(LOSS_NAMES), default=None, help=text)
        elif name == "lr_schedule":
            parser.add_argument(flag, choices=list(LR_SCHEDULES), default=None, help=text)
        elif name == "keep":
            parser.add_argument(flag, choices=list(KEEP), default=None, help=text)
        elif name == "factor":
            parser.add_argument(flag, type=_factor, default=None, help=text)
        elif name == "patience":
            parser.add_argument(flag, type=_patience, default=None, help=text + "; none: never")
        elif name in integers:
            kind = _non_negative_int if name in ("warmup", "seed") else _positive_int
            parser.add_argument(flag, type=kind, default=None, help=text)
        elif name == "init":
            parser.add_argument(flag, default=None, help=text + "; --init none: from scratch")
        elif name in ("device", "name", "checkpoint_dir") or isinstance(default, str):
            parser.add_argument(flag, default=None, help=text)  # text: the config checks it
        else:
            parser.add_argument(flag, type=float, default=None, help=text)
