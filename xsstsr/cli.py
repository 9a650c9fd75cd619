"""The ``xsstsr`` command line.

Exit codes scripts can trust: 0 success, 2 bad usage (argparse), 3 bad input or
model (any :class:`~xsstsr.errors.XsstsrError`, a missing or unreadable file, an
invalid value), 130 interrupted (Ctrl-C or SIGTERM), 1 anything unexpected.

Outputs are written atomically (see :func:`xsstsr.io.write_dataset`): an interrupted
run leaves no partial OUT. SIGTERM is handled like Ctrl-C so the temporary file is
removed; only SIGKILL can leave a hidden ``.OUT.XXXXXXXX.partial`` beside OUT. An
existing OUT is replaced only with ``--overwrite`` (checked before any work).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import xarray as xr

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES = (
    "Exit codes: 0 ok, 2 usage, 3 bad input or model, 130 interrupted (Ctrl-C or SIGTERM), 1 other."
)


def _chunks(text: str | None) -> dict[str, int] | str | None:
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


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

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
        type=_chunks,
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
    _add_names(fit, time=True)
    fit.add_argument("--no-progress", action="store_true", help="hide the progress bar")
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


def _quickstart(args: argparse.Namespace) -> int:
    from .datasets import open_sample
    from .downscale import downscale
    from .evaluation import evaluate
    from .io import write_dataset
    from .plotting import plot_compare

    png = Path(args.png) if args.png else Path(args.out).with_suffix(".png")
    _check_outputs(args.out, overwrite=args.overwrite, png=png)  # before any work
    coarse = open_sample("coarse")
    truth = open_sample("truth")
    high = downscale(coarse, 4, device=args.device)
    out = write_dataset(high, args.out, overwrite=args.overwrite)
    fig = plot_compare(high, coarse=coarse, truth=truth)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    table = evaluate(high, truth=truth, coarse=coarse, by=None).set_index("source")
    attrs = high["sst"].attrs
    print(f"wrote {out} and {png}")
    print(
        f"model {attrs['xsstsr_model']} (sha256 {attrs['xsstsr_model_sha256'][:12]}), "
        f"device {attrs['xsstsr_device']}"
    )
    print(
        f"RMSE against the sample's truth: {table.loc['downscaled', 'rmse']:.3f} K "
        f"(bicubic {table.loc['bicubic', 'rmse']:.3f} K)"
    )
    return EXIT_OK


def _downscale(args: argparse.Namespace) -> int:
    from .downscale import downscale
    from .io import write_dataset

    _check_outputs(args.output, overwrite=args.overwrite)  # a bad OUT fails before any work
    ds, renamed = open_input(args.input, chunks=args.chunks, what="IN")
    ds = with_units(ds, args.variable, args.units)
    high = downscale(
        ds,
        args.factor,
        model=args.model,
        device=args.device,
        precision=args.precision,
        variable=args.variable,
        lat=renamed.get(args.lat, args.lat),
        lon=renamed.get(args.lon, args.lon),
        time=args.time,
        batch_size=args.batch_size,
    )
    write_dataset(high, args.output, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"wrote {args.output}")
    return EXIT_OK


def with_units(ds: xr.Dataset, variable: Any, units: str | None) -> xr.Dataset:
    """``ds`` with ``--units`` set on the SST variable (a copy; None leaves it as it is)."""
    if units is None:
        return ds
    from .cf import find_sst_variable

    name = find_sst_variable(ds, variable)
    out = ds.copy()
    out[name] = out[name].assign_attrs(units=units)
    return out


def _check_outputs(out: str, *, overwrite: bool, png: Path | None = None) -> None:
    """OUT's extension and folder, and an existing OUT (or PNG) without --overwrite."""
    from .errors import WriteError
    from .io import check_destination

    check_destination(out, overwrite=overwrite, overwrite_hint="use --overwrite")
    if png is not None and png.exists() and not overwrite:
        raise WriteError(
            f"{str(png)!r} exists; use --overwrite to replace it, or choose another --png."
        )


# -- files as they come ----------------------------------------------------------------------

# xarray's notice when it falls back to cftime: expected here, and no use to a CLI user
_CFTIME_NOTICE = "Unable to decode time axis into full numpy.datetime64"
_YEAR_ZERO = re.compile(r"\bsince\s+0+-")
_NO_YEAR_ZERO = (None, "standard", "gregorian")  # CF calendars without a year 0


def open_input(path: str, *, chunks: Any, what: str) -> tuple[xr.Dataset, dict[Any, Any]]:
    """Open a netCDF file or zarr store as it comes, for the commands.

    Times decode to datetime64 where they fit and to cftime dates otherwise (other
    calendars, dates before 1678). A "since 0000-..." reference in the standard calendar
    (ferret's and COARDS climatologies) has no year 0 there, so it is decoded in the
    proleptic_gregorian calendar, which has one; a time that still cannot be decoded is
    kept as numbers. Both warn. ``--chunks`` must name the file's dimensions. Dimensions
    without coordinate values take them from the one 1-D latitude or longitude data
    variable along them (NCL's ``lat(latitude)``).

    Returns
    -------
    xarray.Dataset, dict
        The dataset and the dimensions renamed (old -> new) by the last step, so that
        ``--lat``/``--lon`` may name either.
    """
    import xarray as xr

    from .errors import DataFileNotFoundError
    from .io import output_format

    kind = output_format(path)
    if not Path(path).exists():
        raise DataFileNotFoundError(f"{what} {path!r} does not exist; check the path.")
    opener = xr.open_zarr if kind == "zarr" else xr.open_dataset
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CFTIME_NOTICE)
        try:
            ds = opener(path, chunks=chunks)
        except ValueError as err:
            if "decode time" not in str(err) and "decode_times" not in str(err):
                raise
            ds = _decode_times_as_possible(opener(path, chunks=chunks, decode_times=False), what)
    _check_chunks(ds, chunks, what)
    return _coordinates_from_variables(ds, what)


def _time_like(ds: xr.Dataset) -> list[Any]:
    return [
        name
        for name, var in ds.variables.items()
        if isinstance(var.attrs.get("units"), str) and " since " in var.attrs["units"]
    ]


def _decode_times_as_possible(raw: xr.Dataset, what: str) -> xr.Dataset:
    """``raw`` (opened with decode_times=False) with what can be decoded, decoded."""
    import xarray as xr

    from .errors import XsstsrWarning, warn_user

    names = _time_like(raw)
    fixed = raw.copy()
    year_zero = []
    for name in names:
        attrs = fixed[name].attrs
        if _YEAR_ZERO.search(attrs["units"]) and attrs.get("calendar") in _NO_YEAR_ZERO:
            fixed[name].attrs = {**attrs, "calendar": "proleptic_gregorian"}
            year_zero.append(name)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_CFTIME_NOTICE)
            decoded = xr.decode_cf(fixed, mask_and_scale=False, decode_coords=False)
    except ValueError as err:
        units = {str(n): raw[n].attrs["units"] for n in names}
        reason = str(err).splitlines()[0].split(". Try ")[0]  # not xarray's advice to us
        warn_user(
            f"{what}: cannot decode the time of {units} ({reason}); it is "
            "kept as the numbers in the file, in those units, so the model's time window "
            "and its time-step check read them as numbers. Give the time variable a "
            "'units' and 'calendar' that cftime can decode to have dates.",
            XsstsrWarning,
        )
        return raw
    if year_zero:
        warn_user(
            f"{what}: the time of {[str(n) for n in year_zero]} counts from year 0, which "
            "the standard calendar lacks; decoded in the proleptic_gregorian calendar "
            "(which has it), as the output's calendar attribute says.",
            XsstsrWarning,
        )
    return decoded


def _check_chunks(ds: xr.Dataset, chunks: Any, what: str) -> None:
    """xarray ignores chunks for dimensions a file has not: a typo would go unnoticed."""
    from .errors import OptionError

    if not isinstance(chunks, dict):
        return
    unknown = [name for name in chunks if name not in ds.dims]
    if unknown:
        raise OptionError(
            f"--chunks names {unknown}, which {what} has not; its dimensions are "
            f"{[str(d) for d in ds.dims]}: use those (e.g. --chunks {next(iter(ds.dims))}=8)."
        )


def _axis_of(name: Any, var: xr.DataArray) -> str | None:
    """The axis ("latitude" or "longitude") ``var`` looks like by its CF attributes, or by
    a common name without length units; None when neither."""
    from .cf import COORD_CRITERIA, LENGTH_UNITS

    units = var.attrs.get("units")
    for axis, criteria in COORD_CRITERIA.items():
        for key in ("standard_name", "units", "axis"):
            if var.attrs.get(key) in criteria[key]:
                return axis
        if (
            len(str(name)) > 1
            and name in criteria["names"]
            and not (isinstance(units, str) and units.strip().lower() in LENGTH_UNITS)
        ):
            return axis
    return None


def _coordinates_from_variables(ds: xr.Dataset, what: str) -> tuple[xr.Dataset, dict[Any, Any]]:
    """Make latitude/longitude data variables coordinates: the one 1-D variable along a
    dimension without coordinate values becomes that dimension (``lat(latitude)`` ->
    ``lat(lat)``); 2-D ones become coordinates, so the grid check names them."""
    from .errors import CoordinateError

    looks = {name: _axis_of(name, var) for name, var in ds.data_vars.items()}
    looks = {name: axis for name, axis in looks.items() if axis is not None}
    renamed: dict[Any, Any] = {}
    for dim in list(ds.dims):
        if dim in ds.coords:
            continue
        along = [name for name in looks if ds[name].dims == (dim,) and name not in ds.dims]
        if len(along) > 1:
            fix = (
                f"ds.set_coords([{str(along[0])!r}]).swap_dims({{{str(dim)!r}: {str(along[0])!r}}})"
            )
            raise CoordinateError(
                f"{what} has no coordinate values on dimension {str(dim)!r} and several 1-D "
                f"variables along it that could hold them: {[str(n) for n in along]}. Make "
                f"one the coordinate and write the file again, e.g. in Python ds = {fix}, "
                "then ds.to_netcdf(...)."
            )
        if along:
            ds = ds.set_coords(along).swap_dims({dim: along[0]})
            renamed[dim] = along[0]
    grids = [name for name in looks if name in ds.data_vars and ds[name].ndim > 1]
    return (ds.set_coords(grids) if grids else ds), renamed


def cli_words(message: str, flags: frozenset[str] | set[str]) -> str:
    """A library message in the command's words: ``variable=...`` -> ``--variable ...``,
    ``model='sst-x4'`` -> ``--model sst-x4``, ``overwrite=True`` -> ``--overwrite``, for
    the options in ``flags``. Text inside brackets is code (``ds.isel(lat=slice(0, 30))``)
    and stays as it is."""
    if not flags:
        return message

    def flag(match: re.Match[str]) -> str:
        name = "--" + match.group(1).replace("_", "-")
        value, space = match.group(2), match.group(3)
        if name not in flags:
            return match.group(0)
        if value == "True":
            return name + space
        if value == "False":
            negative = f"--no-{name[2:]}"
            return negative + space if negative in flags else match.group(0)
        if value:
            return f"{name} {value[1:-1]}{space}"
        return f"{name} "  # "lat= and" -> "--lat and", "factor=4" -> "--factor 4"

    keyword = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|True\b|False\b)?(\s?)")
    out, depth, start = [], 0, 0
    for i, char in enumerate(message):
        if char in "([{":
            if depth == 0:
                out.append(keyword.sub(flag, message[start:i]))
                start = i
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
            if depth == 0:
                out.append(message[start : i + 1])
                start = i + 1
    rest = message[start:]
    out.append(keyword.sub(flag, rest) if depth == 0 else rest)
    text = "".join(out)
    return text if message[-1:].isspace() else text.rstrip()


@contextmanager
def _warnings_in_cli_words(flags: frozenset[str]) -> Iterator[None]:
    """Show xsstsr's warnings as ``xsstsr: warning: ...`` in the command's words (they
    suggest keywords too), not with the line of Python that raised them."""
    from .errors import XsstsrWarning

    show = warnings.showwarning

    def shown(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, XsstsrWarning) or category is UserWarning:
            text = cli_words(str(message), flags)
            print(f"xsstsr: warning: {text}", file=file if file is not None else sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = shown
    try:
        yield
    finally:
        warnings.showwarning = show


def _read_stations_csv(path: str) -> Any:
    import pandas as pd

    if not Path(path).is_file():
        from .errors import DataFileNotFoundError

        raise DataFileNotFoundError(
            f"station file {path!r} does not exist; check the --stations path."
        )
    return pd.read_csv(path, dtype={"station": str})


# fit's options that the CLI does not offer: objects, or set by other flags
_FIT_OPTIONS_NOT_IN_CLI = {"architecture", "progress"}


def _fit_option_names() -> list[str]:
    from .training.config import option_names

    return [n for n in option_names() if n not in _FIT_OPTIONS_NOT_IN_CLI]


def _option_help() -> dict[str, str]:
    """First line of each option's description in FitConfig's docstring."""
    import inspect

    from .training.config import FitConfig

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
    for name, lines in paragraphs.items():
        text = " ".join(lines).replace("``", "")
        out[name] = text.split(". ")[0].rstrip(".")
    return out


def _add_fit_options(parser: argparse.ArgumentParser) -> None:
    """One --flag per FitConfig option, typed from its default: the CLI and fit() share them."""
    from dataclasses import fields

    from .losses import LOSS_NAMES
    from .training.config import LR_SCHEDULES, FitConfig

    helps = _option_help()
    defaults = {f.name: f.default for f in fields(FitConfig)}
    integers = {
        "window", "steps", "epochs", "steps_per_epoch", "batch_size", "patch_size",
        "warmup", "n_critic", "validation_blocks", "validate_every", "patience", "seed",
        "checkpoint_every",
    }  # fmt: skip
    for name in _fit_option_names():
        flag = "--" + name.replace("_", "-")
        default = defaults[name]
        text = helps.get(name, "")
        if default is not None:
            text += f" (default {default})"
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
        elif name == "factor":
            parser.add_argument(flag, type=_factor, default=None, help=text)
        elif name in integers:
            kind = _non_negative_int if name in ("warmup", "seed") else _positive_int
            parser.add_argument(flag, type=kind, default=None, help=text)
        elif name in ("device", "name", "init", "checkpoint_dir"):
            parser.add_argument(flag, default=None, help=text)
        else:
            parser.add_argument(flag, type=float, default=None, help=text)


def _fit(args: argparse.Namespace) -> int:
    from .training import fit

    if Path(args.output).suffix != ".safetensors":
        from .errors import InputDataError

        raise InputDataError(f"MODEL must end in .safetensors, got {args.output!r}.")
    ds, renamed = open_input(args.input, chunks={}, what="IN")
    ds = with_units(ds, args.variable, args.units)
    target = open_input(args.target, chunks={}, what="--target")[0] if args.target else None
    stations = _read_stations_csv(args.stations) if args.stations else None
    options = {
        name: getattr(args, name)
        for name in _fit_option_names()
        if getattr(args, name, None) is not None
    }
    options["progress"] = not args.no_progress
    model = fit(
        ds,
        stations,
        target=target,
        variable=args.variable,
        lat=renamed.get(args.lat, args.lat),
        lon=renamed.get(args.lon, args.lon),
        time=args.time,
        **options,
    )
    model.save(args.output)
    print(f"saved {model!r} to {args.output}")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .evaluation import evaluate

    if not args.truth and not args.stations:
        raise _UsageError("evaluate needs --truth and/or --stations")
    high, renamed = open_input(args.input, chunks="auto", what="HIGHRES")
    high = with_units(high, args.variable, args.units)
    truth = open_input(args.truth, chunks="auto", what="--truth")[0] if args.truth else None
    coarse = open_input(args.coarse, chunks="auto", what="--coarse")[0] if args.coarse else None
    stations = _read_stations_csv(args.stations) if args.stations else None
    baselines = [b for b in (args.baseline or ["bicubic"]) if b != "none"]
    regions = dict(args.region) if args.region else None
    table = evaluate(
        high,
        truth=truth,
        stations=stations,
        coarse=coarse,
        baseline=baselines,
        regions=regions,
        by=None if args.by == "none" else args.by,
        variable=args.variable,
        lat=renamed.get(args.lat, args.lat),
        lon=renamed.get(args.lon, args.lon),
    )
    if args.out:
        table.to_csv(args.out, index=False)
    with pd.option_context(
        "display.width",
        160,
        "display.max_columns",
        20,
        "display.max_rows",
        10_000,
        "display.float_format",
        "{:.4f}".format,
    ):
        print(table.to_string(index=False))
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from .weights import available_models

    names = available_models()
    if not names:
        print(
            "no released models in this installation (weights/registry.txt is empty); "
            "pass a .safetensors path with --model.",
            file=sys.stderr,
        )
    if names:
        table = available_models(details=True)
        table["sha256"] = table["sha256"].str[:12]
        print(table.to_string(index=False))
    return EXIT_OK


def _versions(args: argparse.Namespace) -> int:
    from ._versions import show_versions

    show_versions()
    return EXIT_OK


COMMANDS = {
    "quickstart": _quickstart,
    "downscale": _downscale,
    "fit": _fit,
    "evaluate": _evaluate,
    "models": _models,
    "versions": _versions,
}


class _UsageError(Exception):
    """A combination of options argparse cannot check."""


_INTERRUPTED = threading.Event()


def _interrupt(signum: int, frame: Any) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into KeyboardInterrupt (main thread only), so cleanup code
    runs, and remember that it happened: an interrupt raised inside threading internals can
    surface as another exception, which must still end as "interrupted" (exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xsstsr`` command; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)  # exits with 2 on bad usage
    with _sigterm_as_interrupt(), _warnings_in_cli_words(getattr(args, "cli_flags", frozenset())):
        try:
            return _run(args)
        except _UsageError as err:
            parser.print_usage(sys.stderr)
            print(f"xsstsr {args.command}: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("xsstsr: interrupted; no partial output was left.", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BaseException:
            if _INTERRUPTED.is_set():
                print("xsstsr: interrupted; no partial output was left.", file=sys.stderr)
                return EXIT_INTERRUPTED
            raise


def _run(args: argparse.Namespace) -> int:
    from .errors import XsstsrError

    try:
        return COMMANDS[args.command](args)
    except (KeyboardInterrupt, _UsageError):
        raise
    except Exception as err:
        if _INTERRUPTED.is_set():  # the interrupt surfaced as another error: still 130
            raise KeyboardInterrupt from err
        if isinstance(err, (XsstsrError, OSError, ValueError)):
            # bad input or model: a typed error, a missing/unreadable file, an invalid value
            message = str(err)
            if isinstance(err, XsstsrError):
                message = cli_words(message, getattr(args, "cli_flags", frozenset()))
            print(f"xsstsr: error: {message}", file=sys.stderr)
            return EXIT_INPUT
        traceback.print_exc()
        print(
            "xsstsr: unexpected error (please report it with the output of 'xsstsr versions').",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
