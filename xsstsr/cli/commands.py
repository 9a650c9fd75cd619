"""The commands: quickstart, downscale, fit, evaluate, models, versions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .arguments import EXIT_OK, UsageError, fit_option_names
from .inputs import (
    check_outputs,
    open_input,
    read_stations_csv,
    refuse_an_input_as_output,
    with_units,
)

if TYPE_CHECKING:
    pass


def _quickstart(args: argparse.Namespace) -> int:
    from ..datasets import open_sample
    from ..evaluation import evaluate
    from ..inference import downscale
    from ..io import write_dataset
    from ..plotting import plot_compare

    png = Path(args.png) if args.png else Path(args.out).with_suffix(".png")
    check_outputs(args.out, overwrite=args.overwrite, png=png)  # before any work
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
    from ..inference import downscale
    from ..io import write_dataset

    refuse_an_input_as_output(args.output, IN=args.input)
    check_outputs(args.output, overwrite=args.overwrite)  # a bad OUT fails before any work
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
        self_ensemble=args.self_ensemble,
    )
    write_dataset(high, args.output, progress=not args.no_progress, overwrite=args.overwrite)
    print(f"wrote {args.output}")
    return EXIT_OK


def _fit(args: argparse.Namespace) -> int:
    from ..io import check_file_destination
    from ..training import fit

    if Path(args.output).suffix != ".safetensors":
        from ..errors import InputDataError

        raise InputDataError(f"MODEL must end in .safetensors, got {args.output!r}.")
    refuse_an_input_as_output(args.output, IN=args.input, **{"--target": args.target})
    check_file_destination(args.output, overwrite=args.overwrite, overwrite_hint="use --overwrite")
    ds, renamed = open_input(args.input, chunks={}, what="IN")
    ds = with_units(ds, args.variable, args.units)
    target = open_input(args.target, chunks={}, what="--target")[0] if args.target else None
    stations = read_stations_csv(args.stations) if args.stations else None
    options = {
        name: getattr(args, name)
        for name in fit_option_names()
        if getattr(args, name, None) is not None
    }
    if options.get("init") == "none":  # --init none: from scratch
        options["init"] = None
    if options.get("patience") == "none":  # --patience none: never stop early
        options["patience"] = None
    options["progress"] = not args.no_progress
    model = fit(
        ds,
        stations,
        target=target,
        station_units=args.station_units,
        variable=args.variable,
        lat=renamed.get(args.lat, args.lat),
        lon=renamed.get(args.lon, args.lon),
        time=args.time,
        **options,
    )
    model.save(args.output)
    print(f"saved {model!r} to {args.output}")
    if model.validation:  # the skill a user fits for, whether or not the bar was shown
        v = model.validation
        where = "held-out steps" if v.get("held_out") else "training steps (nothing held out)"
        print(
            f"validation RMSE on {where}: {v['rmse']:.4f} K (bicubic {v['rmse_bicubic']:.4f} K, "
            f"ratio {v['ratio']:.3f}), best at step {v['step']}"
        )
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from ..evaluation import evaluate
    from ..io import check_file_destination

    if not args.truth and not args.stations:
        raise UsageError("evaluate needs --truth and/or --stations")
    if args.out:  # before any work
        given = {"--truth": args.truth, "--coarse": args.coarse, "--stations": args.stations}
        refuse_an_input_as_output(args.out, HIGHRES=args.input, **given)
        check_file_destination(args.out, overwrite=args.overwrite, overwrite_hint="use --overwrite")
    high, renamed = open_input(args.input, chunks="auto", what="HIGHRES")
    high = with_units(high, args.variable, args.units)
    truth = open_input(args.truth, chunks="auto", what="--truth")[0] if args.truth else None
    coarse = open_input(args.coarse, chunks="auto", what="--coarse")[0] if args.coarse else None
    stations = read_stations_csv(args.stations) if args.stations else None
    baselines = [b for b in (args.baseline or ["bicubic"]) if b != "none"]
    regions = dict(args.region) if args.region else None
    table = evaluate(
        high,
        truth=truth,
        stations=stations,
        station_units=args.station_units,
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
    from ..models import available_models

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
    from .._versions import show_versions

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
