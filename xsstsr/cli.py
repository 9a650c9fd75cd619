"""The ``xsstsr`` command line.

Exit codes scripts can trust: 0 success, 2 bad usage (argparse), 3 bad input or
model (any :class:`~xsstsr.errors.XsstsrError`, missing file), 130 interrupted,
1 anything unexpected.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _chunks(text: str | None) -> dict[str, int] | None:
    """``"time=8,lat=256"`` -> ``{"time": 8, "lat": 256}``; ``"auto"`` -> {}."""
    if text is None:
        return None
    if text == "auto":
        return {}
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, size = part.partition("=")
        if not name or not size.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(
                f"--chunks takes DIM=SIZE pairs such as time=8,lat=256 (got {text!r})"
            )
        out[name.strip()] = int(size)
    return out


def _factor(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--factor takes a number such as 4 or 2.5, got {text!r}")


def _parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="xsstsr",
        description="Downscale sea surface temperature with a GAN generator (xarray + dask).",
        epilog="Exit codes: 0 ok, 2 usage, 3 bad input or model, 130 interrupted, 1 other.",
    )
    parser.add_argument("--version", action="version", version=f"xsstsr {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    quick = sub.add_parser(
        "quickstart",
        help="downscale the bundled sample with the bundled sst-x4 model (offline)",
        description="Downscale the bundled sample by 4, write a netCDF file and a PNG "
        "quick-look, and print the skill against the sample's truth.",
    )
    quick.add_argument("--out", default="sample_x4.nc", help="netCDF or zarr output")
    quick.add_argument("--png", default=None, help="quick-look PNG (default: OUT with .png)")
    quick.add_argument("--device", default="auto")

    down = sub.add_parser(
        "downscale",
        help="downscale a netCDF file or zarr store",
        description="Downscale IN to OUT (netCDF or zarr by extension). "
        "The write is atomic: an interrupted run leaves no OUT.",
    )
    down.add_argument("input", metavar="IN")
    down.add_argument("output", metavar="OUT")
    down.add_argument("--factor", type=_factor, default=None, help="2, 2.5, 4 or 5 (default 4)")
    down.add_argument("--model", default=None, help="registry name or .safetensors path")
    down.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    down.add_argument(
        "--chunks",
        type=_chunks,
        default="auto",
        help="dask chunks of IN, e.g. time=8,lat=256 (default: the file's)",
    )
    down.add_argument("--variable", default=None, help="SST variable name")
    down.add_argument("--batch-size", type=int, default=None)
    down.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    fit = sub.add_parser(
        "fit",
        help="train a generator",
        description="Train a generator on "
        "IN (the high-resolution truth, or the input with --target).",
    )
    fit.add_argument("input", metavar="IN")
    fit.add_argument("output", metavar="MODEL", help="where to save the .safetensors model")
    fit.add_argument("--target", default=None, help="high-resolution truth file")
    fit.add_argument("--stations", default=None, help="CSV: station,time,lat,lon,sst")
    fit.add_argument("--loss", default="mse", choices=["mse", "gumbel", "frechet"])
    fit.add_argument("--r", type=float, default=None, help="Gumbel r")
    fit.add_argument("--a", type=float, default=None, help="Fréchet alpha")
    fit.add_argument("--s", type=float, default=None, help="Fréchet s")
    fit.add_argument("--factor", type=_factor, default=None)
    fit.add_argument("--window", type=int, default=3)
    fit.add_argument("--epochs", type=int, default=10)
    fit.add_argument("--steps-per-epoch", type=int, default=None)
    fit.add_argument("--batch-size", type=int, default=16)
    fit.add_argument("--patch-size", type=int, default=24)
    fit.add_argument("--lr", type=float, default=1e-4)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--variable", default=None)
    fit.add_argument("--device", default="auto")
    fit.add_argument("--checkpoint-dir", default=None)
    fit.add_argument("--resume", action="store_true")
    fit.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("evaluate", help="skill of a downscaled file against truth/stations")
    ev.add_argument("input", metavar="HIGHRES", help="downscaled netCDF/zarr")
    ev.add_argument("--truth", default=None, help="high-resolution truth file")
    ev.add_argument("--stations", default=None, help="CSV: station,time,lat,lon,sst")
    ev.add_argument("--coarse", default=None, help="the coarse input (for the baseline)")
    ev.add_argument("--variable", default=None)
    ev.add_argument("--out", default=None, help="write the table as CSV")

    sub.add_parser("models", help="list the released models")
    sub.add_parser("versions", help="print versions for bug reports")
    return parser


def _quickstart(args: argparse.Namespace) -> int:
    import numpy as np

    from .datasets import open_sample
    from .downscale import downscale
    from .io import write_dataset

    coarse = open_sample("coarse")
    truth = open_sample("truth")
    high = downscale(coarse, 4, device=args.device)
    out = write_dataset(high, args.out)
    png = Path(args.png) if args.png else Path(args.out).with_suffix(".png")
    from .plotting import plot_compare

    fig = plot_compare(coarse, result=high, truth=truth)
    fig.savefig(png, dpi=110, bbox_inches="tight")
    err = high["sst"] - truth["sst"].values
    base = downscale_bicubic(coarse, truth)
    rmse = float(np.sqrt(np.nanmean(err.values**2)))
    rmse_base = float(np.sqrt(np.nanmean((base - truth["sst"].values) ** 2)))
    print(f"wrote {out} and {png}")
    print(
        f"model {high['sst'].attrs['xsstsr_model']} (sha256 "
        f"{high['sst'].attrs['xsstsr_model_sha256'][:12]}), device "
        f"{high['sst'].attrs['xsstsr_device']}"
    )
    print(f"RMSE against the sample's truth: {rmse:.3f} K (bicubic {rmse_base:.3f} K)")
    return EXIT_OK


def downscale_bicubic(coarse: Any, truth: Any) -> Any:
    """Bicubic interpolation of the coarse sample onto the truth's grid (the baseline)."""
    from .evaluation import bicubic_baseline

    return bicubic_baseline(coarse["sst"], truth["sst"]).values


def _downscale(args: argparse.Namespace) -> int:
    from .downscale import downscale
    from .io import open_any, write_dataset

    ds = open_any(args.input, chunks=args.chunks)
    high = downscale(
        ds,
        args.factor,
        model=args.model,
        device=args.device,
        variable=args.variable,
        batch_size=args.batch_size,
    )
    write_dataset(high, args.output, progress=not args.no_progress)
    print(f"wrote {args.output}")
    return EXIT_OK


def _fit(args: argparse.Namespace) -> int:
    import pandas as pd

    from .io import open_any
    from .training import fit

    ds = open_any(args.input, chunks={})
    target = open_any(args.target, chunks={}) if args.target else None
    stations = pd.read_csv(args.stations, parse_dates=["time"]) if args.stations else None
    model = fit(
        ds,
        stations,
        target=target,
        loss=args.loss,
        r=args.r,
        a=args.a,
        s=args.s,
        factor=args.factor,
        window=args.window,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        patch_size=args.patch_size,
        lr=args.lr,
        seed=args.seed,
        variable=args.variable,
        device=args.device,
        checkpoint_dir=args.checkpoint_dir,
        resume=args.resume,
        progress=not args.no_progress,
    )
    model.save(args.output)
    print(f"saved {model!r} to {args.output}")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from .evaluation import evaluate
    from .io import open_any

    high = open_any(args.input)
    truth = open_any(args.truth) if args.truth else None
    coarse = open_any(args.coarse) if args.coarse else None
    stations = pd.read_csv(args.stations, parse_dates=["time"]) if args.stations else None
    table = evaluate(high, truth=truth, stations=stations, coarse=coarse, variable=args.variable)
    if args.out:
        table.to_csv(args.out, index=False)
    with pd.option_context("display.width", 120, "display.max_columns", 20):
        print(table.to_string(index=False))
    return EXIT_OK


def _models(args: argparse.Namespace) -> int:
    from .weights import available_models, registry

    known = registry()
    for name in available_models():
        print(f"{name}\t{known[name + '.safetensors']}")
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xsstsr`` command."""
    from .errors import XsstsrError

    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("xsstsr: interrupted; no partial output was left.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (XsstsrError, FileNotFoundError, FileExistsError) as err:
        print(f"xsstsr: error: {err}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
