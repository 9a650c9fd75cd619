"""The ``xsstsr`` command line: help, exit codes, commands, atomic writes under signals.

Most tests run ``python -m xsstsr`` in a subprocess (PYTHONPATH = the repository,
XSSTSR_CACHE = a temporary folder); option parsing is also checked in-process.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from helpers import make_model, sst_field

import xsstsr
from xsstsr import cli
from xsstsr.cli.arguments import parse_chunks
from xsstsr.cli.run import interrupt_handler
from xsstsr.datasets.files import find_ferret_file
from xsstsr.grid import coarsen_truth

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = ["quickstart", "downscale", "fit", "evaluate", "models", "versions"]


def env(tmp_path: Path) -> dict[str, str]:
    out = dict(os.environ)
    out["PYTHONPATH"] = os.pathsep.join([str(ROOT), out.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out["XSSTSR_CACHE"] = str(tmp_path / "cache")
    out.pop("XSSTSR_WEIGHTS_URL", None)
    return out


def run(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xsstsr", *args],
        env=env(tmp_path),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A coarse input, its truth, stations and a tiny model, on disk."""
    folder = tmp_path_factory.mktemp("cli")
    truth = sst_field(nt=4, ny=32, nx=32, step=0.0625, lat0=33.0, lon0=124.0)
    coarse = coarsen_truth(truth, 4)
    paths = {
        "truth": folder / "truth.nc",
        "coarse": folder / "coarse.nc",
        "model": folder / "tiny-x4.safetensors",
        "stations": folder / "stations.csv",
    }
    truth.to_dataset().to_netcdf(paths["truth"])
    coarse.to_dataset().to_netcdf(paths["coarse"])
    make_model(4, 1).save(paths["model"])
    times = truth.time.values
    pd.DataFrame(
        {
            "station": np.repeat(["A", "B"], times.size),
            "time": np.tile(times, 2),
            "lat": np.repeat(truth.lat.values[[20, 28]], times.size),
            "lon": np.repeat(truth.lon.values[[12, 25]], times.size),
            "sst": np.linspace(18, 22, 2 * times.size),
        }
    ).to_csv(paths["stations"], index=False)
    return paths


# -- help, version, usage ------------------------------------------------------------------


def test_help_and_version(tmp_path: Path) -> None:
    done = run(tmp_path, "--help")
    assert done.returncode == 0
    for command in COMMANDS:
        assert command in done.stdout
    assert "Exit codes" in done.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"xsstsr {xsstsr.__version__}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: xsstsr {command}")
    assert "130 interrupted" in out


def test_usage_errors_exit_2(tmp_path: Path, files: dict[str, Path]) -> None:
    done = run(tmp_path, "downscale")
    assert done.returncode == 2
    assert "required: IN, OUT" in done.stderr
    for argv in ([], ["frobnicate"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["downscale", "a.nc", "b.nc", "--factor", "x"],
        ["downscale", "a.nc", "b.nc", "--factor", "1"],
        ["downscale", "a.nc", "b.nc", "--chunks", "time"],
        ["downscale", "a.nc", "b.nc", "--batch-size", "0"],
        ["fit", "a.nc", "m.safetensors", "--loss", "huber"],
        ["evaluate", "a.nc", "--region", "box=1,2,3"],
        ["evaluate", "a.nc"],
    ],
)
def test_bad_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    assert "error" in capsys.readouterr().err


def test_chunks_option() -> None:
    assert parse_chunks("time=8, lat=256".replace(" ", "")) == {"time": 8, "lat": 256}
    assert parse_chunks("auto") == "auto"
    assert parse_chunks("file") == {}
    assert parse_chunks("none") is None
    assert parse_chunks("time=-1") == {"time": -1}


# -- bad input: exit 3 --------------------------------------------------------------------


def test_bad_input_exits_3(tmp_path: Path, files: dict[str, Path]) -> None:
    done = run(tmp_path, "downscale", "missing.nc", "out.nc", "--model", str(files["model"]))
    assert done.returncode == 3
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.nc").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["downscale", "{coarse}", "out.txt", "--model", "{model}"], "extension"),
        (["downscale", "{coarse}", "out.nc", "--model", "nope.safetensors"], "does not exist"),
        (["downscale", "{coarse}", "out.nc", "--model", "{model}", "--factor", "2"], "downscales"),
        (["downscale", "{coarse}", "out.nc", "--model", "{model}", "--variable", "t"], "t"),
        (["downscale", "{stations}", "out.nc"], "extension"),
        (["evaluate", "{coarse}", "--truth", "{truth}"], "grid"),
        (["fit", "{truth}", "model.pt"], "safetensors"),
        (["fit", "{truth}", "m.safetensors", "--loss", "gumbel"], "r"),
    ],
)
def test_bad_input_in_process_exits_3(
    argv: list[str],
    message: str,
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert cli.main(args) == 3
    err = capsys.readouterr().err
    assert err.startswith("xsstsr: error:")
    assert message in err
    assert not (tmp_path / "out.nc").exists()


def test_unexpected_errors_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise ZeroDivisionError("bug")

    monkeypatch.setitem(cli.COMMANDS, "models", broken)
    assert cli.main(["models"]) == 1
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err
    assert "xsstsr versions" in err


def test_sigterm_handler_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def look(args: object) -> int:
        seen.append(signal.getsignal(signal.SIGTERM))
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "models", look)
    assert cli.main(["models"]) == 130
    assert seen == [interrupt_handler]
    assert signal.getsignal(signal.SIGTERM) is before


# -- commands -------------------------------------------------------------------------------


def test_downscale_netcdf(tmp_path: Path, files: dict[str, Path]) -> None:
    done = run(
        tmp_path,
        "downscale",
        str(files["coarse"]),
        "out.nc",
        "--model",
        str(files["model"]),
        "--chunks",
        "time=2",
    )
    assert done.returncode == 0, done.stderr
    assert "wrote out.nc" in done.stdout
    assert "100% Completed" in done.stdout  # the progress bar
    with xr.open_dataset(tmp_path / "out.nc") as out:
        assert out["sst"].shape == (4, 32, 32)
        assert out["sst"].attrs["xsstsr_model"] == "test-x4"
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_downscale_zarr_in_process(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.zarr"
    assert (
        cli.main(
            [
                "downscale",
                str(files["coarse"]),
                str(out),
                "--model",
                str(files["model"]),
                "--chunks",
                "none",
                "--no-progress",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert "Completed" not in capsys.readouterr().out
    expected = xsstsr.downscale(xr.open_dataset(files["coarse"]), model=str(files["model"]))
    with xr.open_zarr(out) as back:
        np.testing.assert_allclose(back["sst"].values, expected["sst"].values, atol=1e-5)


def test_downscale_self_ensemble_flag(tmp_path: Path, files: dict[str, Path]) -> None:
    out = tmp_path / "out.zarr"
    argv = ["downscale", str(files["coarse"]), str(out), "--model", str(files["model"])]
    assert cli.main([*argv, "--no-progress", "--device", "cpu", "--self-ensemble"]) == 0
    expected = xsstsr.downscale(
        xr.open_dataset(files["coarse"]), model=str(files["model"]), self_ensemble=True
    )
    with xr.open_zarr(out) as back:
        np.testing.assert_allclose(back["sst"].values, expected["sst"].values, atol=1e-5)
        assert "self_ensemble=True" in back.attrs["history"]


def test_downscale_replaces_an_existing_output_only_with_overwrite(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.nc"
    out.write_bytes(b"the previous result")
    # checked before any work: the missing input is not even opened
    assert cli.main(["downscale", str(tmp_path / "missing.nc"), str(out)]) == 3
    err = capsys.readouterr().err
    assert "exists; use --overwrite to replace it" in err
    assert "overwrite=True" not in err
    assert out.read_bytes() == b"the previous result"

    args = ["downscale", str(files["coarse"]), str(out), "--model", str(files["model"])]
    args += ["--device", "cpu", "--no-progress", "--chunks", "none"]
    assert cli.main([*args, "--overwrite"]) == 0
    with xr.open_dataset(out) as back:
        assert back["sst"].shape == (4, 32, 32)
    written = out.read_bytes()
    assert cli.main(args) == 3
    assert "use --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nc"]


def test_no_command_writes_over_its_input_or_an_existing_file_unasked(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    inp = tmp_path / "in.nc"
    inp.write_bytes(files["coarse"].read_bytes())
    kept = inp.read_bytes()
    # downscale IN IN: refused even with --overwrite
    assert cli.main(["downscale", str(inp), str(inp), "--overwrite", "--no-progress"]) == 3
    assert "would destroy the input" in capsys.readouterr().err
    assert inp.read_bytes() == kept
    # evaluate --out over its input, and over an existing file without --overwrite
    base = ["evaluate", str(files["coarse"]), "--truth", str(files["coarse"]), "--by", "none"]
    table = tmp_path / "table.csv"
    assert cli.main([*base[:2], "--truth", str(inp), "--out", str(inp), "--overwrite"]) == 3
    assert "would destroy the input" in capsys.readouterr().err
    assert inp.read_bytes() == kept
    table.write_text("the previous table")
    assert cli.main([*base, "--out", str(table)]) == 3
    assert "exists; use --overwrite" in capsys.readouterr().err
    assert table.read_text() == "the previous table"
    assert cli.main([*base, "--out", str(table), "--overwrite"]) == 0
    assert table.read_text().startswith("source,")
    # fit over an existing model
    model = tmp_path / "m.safetensors"
    model.write_bytes(b"a previous model")
    fit = ["fit", str(files["truth"]), str(model), "--steps", "2", "--init", "none"]
    fit += ["--validation", "0"]
    assert cli.main([*fit, "--no-progress"]) == 3
    assert "exists; use --overwrite" in capsys.readouterr().err
    assert model.read_bytes() == b"a previous model"
    assert cli.main([*fit, "--no-progress", "--overwrite"]) == 0
    assert xsstsr.load_model(model).factor == 4
    printed = capsys.readouterr().out
    assert "validation RMSE on training steps (nothing held out):" in printed  # validation 0
    assert "(bicubic " in printed


def test_quickstart_refuses_a_png_in_a_missing_folder_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "q.zarr"
    argv = ["quickstart", "--out", str(out), "--png", str(tmp_path / "nodir" / "q.png")]
    assert cli.main(argv) == 3
    assert "does not exist; create it" in capsys.readouterr().err
    assert not out.exists()


def test_downscale_refuses_an_output_inside_a_file(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes").write_text("a file")
    argv = ["downscale", str(tmp_path / "missing.nc"), str(tmp_path / "notes" / "out.zarr")]
    assert cli.main([*argv, "--overwrite"]) == 3
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "notes").read_text() == "a file"


def test_downscale_precision(tmp_path: Path, files: dict[str, Path]) -> None:
    args = ["downscale", str(files["coarse"]), "", "--model", str(files["model"])]
    args += ["--device", "cpu", "--no-progress", "--chunks", "none"]
    for precision in ("float32", "bfloat16"):
        args[2] = str(tmp_path / f"{precision}.nc")
        assert cli.main([*args, "--precision", precision]) == 0
    with (
        xr.open_dataset(tmp_path / "float32.nc") as exact,
        xr.open_dataset(tmp_path / "bfloat16.nc") as low,
    ):
        assert exact["sst"].attrs["xsstsr_precision"] == "float32"
        assert low["sst"].attrs["xsstsr_precision"] == "bfloat16"
        assert "precision='bfloat16'" in low.attrs["history"]
        diff = np.abs(low["sst"].values - exact["sst"].values)
        assert 0 < np.nanmax(diff) < 0.05
    with pytest.raises(SystemExit) as info:
        cli.main([*args, "--precision", "half"])
    assert info.value.code == 2


def test_evaluate(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    high = tmp_path / "high.nc"
    xsstsr.downscale(xr.open_dataset(files["coarse"]), model=str(files["model"])).to_netcdf(high)
    table_csv = tmp_path / "scores.csv"
    code = cli.main(
        [
            "evaluate",
            str(high),
            "--truth",
            str(files["truth"]),
            "--stations",
            str(files["stations"]),
            "--coarse",
            str(files["coarse"]),
            "--baseline",
            "bicubic",
            "--baseline",
            "nearest",
            "--region",
            "north=35,36,124,126",
            "--by",
            "none",
            "--out",
            str(table_csv),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "rmse" in printed
    assert "rmse_extremes" in printed
    table = pd.read_csv(table_csv)
    assert set(table["source"]) == {"downscaled", "bicubic", "nearest"}
    assert set(table["against"]) == {"grid", "stations"}
    assert set(table["region"]) == {"all", "north"}
    assert set(table["period"]) == {"all"}
    assert (
        cli.main(
            [
                "evaluate",
                str(high),
                "--truth",
                str(files["truth"]),
                "--baseline",
                "none",
                "--coarse",
                str(files["coarse"]),
            ]
        )
        == 0
    )
    assert "bicubic" not in capsys.readouterr().out


def test_every_fit_flag_takes_its_own_default() -> None:
    """Each fit flag parses the FitConfig default it stands for (--keep best once failed
    as 'invalid float value')."""
    from dataclasses import fields

    from xsstsr.cli.arguments import build_parser, fit_option_names
    from xsstsr.training import FitConfig

    defaults = {f.name: f.default for f in fields(FitConfig)}
    parser = build_parser()
    for name in fit_option_names():
        value = defaults[name]
        if value is None or isinstance(value, bool):
            continue
        flag = "--" + name.replace("_", "-")
        args = parser.parse_args(["fit", "in.nc", "out.safetensors", flag, str(value)])
        assert getattr(args, name) == value, name
    assert parser.parse_args(["fit", "i.nc", "o.safetensors", "--keep", "last"]).keep == "last"
    assert parser.parse_args(["fit", "i.nc", "o.safetensors", "--patience", "none"]).patience == (
        "none"
    )


def test_station_units_read_a_kelvin_csv(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    high = tmp_path / "high.nc"
    xsstsr.downscale(xr.open_dataset(files["coarse"]), model=str(files["model"])).to_netcdf(high)
    kelvin = pd.read_csv(files["stations"], dtype={"station": str})
    kelvin["sst"] = kelvin["sst"] + 273.15
    kelvin_csv = tmp_path / "stations_k.csv"
    kelvin.to_csv(kelvin_csv, index=False)
    tables = {}
    for name, csv, extra in (
        ("degC", files["stations"], []),
        ("K", kelvin_csv, ["--station-units", "K"]),
    ):
        out = tmp_path / f"scores_{name}.csv"
        args = ["evaluate", str(high), "--stations", str(csv), "--out", str(out), *extra]
        assert cli.main([*args, "--by", "none"]) == 0, capsys.readouterr().err
        tables[name] = pd.read_csv(out)
    np.testing.assert_allclose(tables["K"]["rmse"], tables["degC"]["rmse"], atol=1e-4)
    # without the option the CLI names it
    assert cli.main(["evaluate", str(high), "--stations", str(kelvin_csv)]) != 0
    err = capsys.readouterr().err
    assert "--station-units K" in err
    assert " --units K" not in err  # the field's option: following it would fail again


def test_fit(tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fitted.safetensors"
    code = cli.main(
        [
            "fit",
            str(files["truth"]),
            str(out),
            "--loss",
            "gumbel",
            "--r",
            "1.1",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "1",
            "--batch-size",
            "1",
            "--patch-size",
            "6",
            "--window",
            "1",
            "--device",
            "cpu",
            "--patience",
            "none",
            "--no-progress",
            "--stations",
            str(files["stations"]),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "saved" in capsys.readouterr().out
    model = xsstsr.load_model(out)
    assert model.factor == 4.0
    assert model.history["step"].tolist() == [0, 1]  # the start, then one step


def test_models(tmp_path: Path) -> None:
    done = run(tmp_path, "models")
    assert done.returncode == 0
    names = xsstsr.available_models()
    if names:
        header, *rows = done.stdout.splitlines()
        assert header.split()[:3] == ["name", "factor", "kind"]
        assert [row.split()[0] for row in rows] == names
        for row, name in zip(rows, names, strict=True):
            assert ("realistic" if name.endswith("-gan") else "accurate") in row
            assert xsstsr.models.registry()[f"{name}.safetensors"][:12] in row
    else:
        assert done.stdout == ""
        assert "no released models" in done.stderr


def test_versions_command_and_show_versions(tmp_path: Path) -> None:
    done = run(tmp_path, "versions")
    assert done.returncode == 0
    assert done.stdout.startswith("INSTALLED VERSIONS")
    buffer = io.StringIO()
    xsstsr.show_versions(file=buffer)
    text = buffer.getvalue()
    for key in ("python", "xsstsr", "numpy", "xarray", "dask", "torch", "xsstsr.cache"):
        assert any(line.split(":")[0].strip() == key for line in text.splitlines()), key
    assert f"{xsstsr.__version__}" in text
    info = xsstsr._versions.versions()
    assert info["xsstsr"] == xsstsr.__version__
    assert info["numpy"] == np.__version__


def test_show_versions_prints_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    xsstsr.show_versions()
    out = capsys.readouterr().out
    assert "INSTALLED VERSIONS" in out
    assert "pandas" in out


@pytest.mark.skipif(
    "sst-x4" not in xsstsr.available_models(),
    reason="the released sst-x4 weights are not in weights/ yet",
)
def test_quickstart(tmp_path: Path) -> None:
    done = run(tmp_path, "quickstart", "--out", "sample_x4.nc", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "sample_x4.nc").is_file()
    assert (tmp_path / "sample_x4.png").is_file()
    assert "RMSE against the sample's truth" in done.stdout


# -- atomic output under signals ------------------------------------------------------------


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A coarse file the tiny model takes a few seconds to downscale."""
    path = tmp_path_factory.mktemp("big") / "in.nc"
    sst_field(nt=96, ny=48, nx=48).to_dataset().to_netcdf(path)
    return path


def _reset_sigint() -> None:  # a background shell may start us with SIGINT ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("sig", "name", "delay"),
    [
        (signal.SIGINT, "out.nc", 0.2),
        (signal.SIGTERM, "out.nc", 0.2),
        (signal.SIGTERM, "out.zarr", 0.2),
        (signal.SIGINT, "out.zarr", 0.0),  # while the store's metadata is being written
        (signal.SIGKILL, "out.nc", 0.2),
    ],
)
def test_interrupted_downscale_leaves_no_output(
    tmp_path: Path,
    big_input: Path,
    files: dict[str, Path],
    sig: signal.Signals,
    name: str,
    delay: float,
) -> None:
    folder = tmp_path / "work"
    folder.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xsstsr",
            "downscale",
            str(big_input),
            str(folder / name),
            "--model",
            str(files["model"]),
            "--chunks",
            "time=2",
            "--no-progress",
        ],
        env=env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_reset_sigint,
    )
    try:
        deadline = time.monotonic() + 90
        while not any(p.name.endswith(".partial") for p in folder.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the write never started"
            time.sleep(0.02)
        time.sleep(delay)  # inside the write, which takes seconds
        assert proc.poll() is None, "the write finished before the signal: use a bigger input"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    left = sorted(p.name for p in folder.iterdir())
    assert not (folder / name).exists()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        # nothing can clean up after SIGKILL: only the hidden temporary may remain
        assert all(n.startswith(f".{name}.") and n.endswith(".partial") for n in left), left
    else:
        assert proc.returncode == 130, err
        assert "interrupted" in err
        assert left == []


def test_fit_starts_from_the_released_model_unless_init_none(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--steps", "1", "--batch-size", "1", "--patch-size", "6", "--validation", "0"]
    base += ["--device", "cpu", "--no-progress"]
    starts = {}
    for extra in ([], ["--init", "none"]):
        out = tmp_path / f"m{len(extra)}.safetensors"
        assert cli.main(["fit", str(files["truth"]), str(out), *base, *extra]) == 0, (
            capsys.readouterr().err
        )
        starts[len(extra)] = xsstsr.load_model(out).metadata["training"]["init"]
    assert starts[0]["name"] == "sst-x4"
    assert starts[0]["auto"] is True
    assert starts[2] is None


def test_fit_options_come_from_fit_config(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from xsstsr.training.config import option_names

    out = tmp_path / "named.safetensors"
    argv = [
        "fit", str(files["truth"]), str(out),
        "--steps", "1", "--batch-size", "1", "--patch-size", "6", "--window", "1",
        "--loss-scale", "0.25", "--no-augment", "--name", "my-model", "--validation", "0",
        "--lr-schedule", "linear", "--adv-weight", "0", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    model = xsstsr.load_model(out)
    assert model.name == "my-model"
    info = model.metadata["training"]
    assert info["loss_scale"] == 0.25
    assert info["augment"] is False
    assert info["lr_schedule"] == "linear"
    assert info["adv_weight"] == 0.0
    # every option of FitConfig but the two set otherwise is a flag of `xsstsr fit`
    with pytest.raises(SystemExit):
        cli.main(["fit", "--help"])
    text = capsys.readouterr().out
    for name in option_names():
        if name not in ("architecture", "progress"):
            assert "--" + name.replace("_", "-") in text, name


@pytest.mark.parametrize(
    ("flag", "value"), [("--lr-schedule", "step"), ("--patience", "0"), ("--warmup", "-1")]
)
def test_fit_bad_option_values_exit_2(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["fit", "a.nc", "m.safetensors", flag, value])
    assert exit_.value.code == 2
    assert flag in capsys.readouterr().err


# -- files as they come ---------------------------------------------------------------------


def _ferret_file(name: str) -> Path:

    try:
        return find_ferret_file(name, None)
    except xsstsr.DataFileNotFoundError:
        pytest.skip(f"{name} not installed (apt-get install ferret-datasets)")


def _year_zero_file(folder: Path, coarse: Path, units: str, step: float) -> Path:
    """The coarse input with a climatological time axis counted from year 0."""
    with xr.open_dataset(coarse) as ds:
        ds = ds.load()
    numbers = 0.5 * step + step * np.arange(ds.sizes["time"])
    ds = ds.assign_coords(time=("time", numbers, {"units": units, "axis": "T"}))
    path = folder / f"year0-{units.split()[0]}.nc"
    ds.to_netcdf(path)
    return path


def test_downscale_decodes_a_year_zero_time_axis(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """ferret's "hour since 0000-01-01" (no year 0 in the standard calendar): decoded in
    proleptic_gregorian, with a warning, and written back as the same numbers."""
    src = _year_zero_file(tmp_path, files["coarse"], "hours since 0000-01-01 00:00:00", 730.5)
    with pytest.raises(ValueError, match="decode"):  # what the CLI used to stop at
        xr.open_dataset(src)
    out = tmp_path / "out.nc"
    argv = ["downscale", str(src), str(out), "--model", str(files["model"]), "--device", "cpu"]
    assert cli.main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "xsstsr: warning: IN: the time of ['time'] counts from year 0" in err
    assert "proleptic_gregorian" in err
    with (
        xr.open_dataset(out, decode_times=False) as raw,
        xr.open_dataset(src, decode_times=False) as s,
    ):
        assert raw["time"].attrs["calendar"] == "proleptic_gregorian"
        np.testing.assert_allclose(raw["time"].values, s["time"].values)
    with xr.open_dataset(out, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as back:
        assert back["time"].values[0].year == 0
        assert back["sst"].shape == (4, 32, 32)


def test_downscale_keeps_an_undecodable_time_as_numbers(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """ "months since 0000-01-01" cannot be decoded by cftime: kept as numbers, with a
    warning saying so, rather than refusing the file."""
    src = _year_zero_file(tmp_path, files["coarse"], "months since 0000-01-01", 1.0)
    out = tmp_path / "out.nc"
    argv = ["downscale", str(src), str(out), "--model", str(files["model"]), "--device", "cpu"]
    assert cli.main([*argv, "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert (
        "xsstsr: warning: IN: cannot decode the time of {'time': 'months since 0000-01-01'}" in err
    )
    assert "kept as the numbers in the file" in err
    with xr.open_dataset(out, decode_times=False) as back:
        np.testing.assert_array_equal(back["time"].values, [0.5, 1.5, 2.5, 3.5])
        assert back["time"].attrs["units"] == "months since 0000-01-01"


def test_downscale_ferret_coads_climatology(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _ferret_file("coads_climatology.cdf")
    out = tmp_path / "coads_x4.nc"
    argv = ["downscale", str(src), str(out), "--device", "cpu", "--no-progress"]
    assert cli.main(argv) == 3  # seven variables: which is the SST?
    err = capsys.readouterr().err
    assert "Pass --variable ... or set standard_name=" in err
    assert "variable=" not in err.replace("standard_name=", "")
    assert cli.main([*argv, "--variable", "SST", "--chunks", "TIME=4"]) == 0
    with xr.open_dataset(out, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as back:
        assert back["SST"].shape == (12, 360, 720)
        assert back.attrs["source"].startswith("downscaled x4 by xsstsr")


def test_open_ferret_ocean_atlas() -> None:
    src = _ferret_file("ocean_atlas_subset.nc")
    with pytest.warns(xsstsr.XsstsrWarning, match="counts from year 0"):
        ds, renamed = cli.open_input(str(src), chunks={}, what="IN")
    assert ds["TIME"].values[0].month == 1
    assert renamed == {}


def _ncl_file(folder: Path, coarse: Path, extra: bool = False) -> Path:
    """NCL's STR climatology layout: plain dims, lat/lon as 1-D data variables."""
    with xr.open_dataset(coarse) as ds:
        ds = ds.load()
    lat, lon = ds["lat"].values, ds["lon"].values
    ds = ds.drop_vars(["lat", "lon"]).rename_dims({"lat": "latitude", "lon": "longitude"})
    ds["lat"] = ("latitude", lat, {"units": "degrees_north"})
    ds["lon"] = ("longitude", lon, {"units": "degrees_east"})
    if extra:
        ds["grid_lat"] = ("latitude", lat, {"units": "degrees_north"})
    assert "latitude" not in ds.coords
    path = folder / ("ncl-extra.nc" if extra else "ncl.nc")
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize("lat_flag", [None, "lat", "latitude"])
def test_downscale_takes_coordinates_from_data_variables(
    tmp_path: Path, files: dict[str, Path], lat_flag: str | None
) -> None:
    src = _ncl_file(tmp_path, files["coarse"])
    out = tmp_path / "out.nc"
    argv = ["downscale", str(src), str(out), "--model", str(files["model"])]
    argv += ["--device", "cpu", "--no-progress", "--chunks", "latitude=4"]
    if lat_flag:
        argv += ["--lat", lat_flag]
    assert cli.main(argv) == 0
    with xr.open_dataset(out) as back, xr.open_dataset(files["coarse"]) as coarse:
        assert back["sst"].dims == ("time", "lat", "lon")
        assert back["sst"].shape == (4, 32, 32)
        assert float(back["lat"].mean()) == pytest.approx(float(coarse["lat"].mean()))


def test_downscale_drops_a_cyclic_point_that_copies_the_first_meridian(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """NCL's files repeat 0 E at 360 E; the library refuses that with an isel() fix, which a
    command line cannot run, so the CLI drops the copy itself (and says so)."""
    plain = sst_field(nt=2, ny=8, nx=18, step=20.0, lat0=-80.0, lon0=0.0)
    cyclic = xr.concat([plain, plain.isel(lon=[0]).assign_coords(lon=[370.0])], dim="lon")
    cyclic.to_dataset().to_netcdf(tmp_path / "cyclic.nc")
    plain.to_dataset().to_netcdf(tmp_path / "plain.nc")
    outs = {}
    for name in ("cyclic", "plain"):
        outs[name] = tmp_path / f"{name}_x4.nc"
        argv = ["downscale", str(tmp_path / f"{name}.nc"), str(outs[name]), "--no-progress"]
        assert cli.main([*argv, "--model", str(files["model"]), "--device", "cpu"]) == 0
    assert "a copy of the first (10) (a cyclic point)" in capsys.readouterr().err
    with xr.open_dataset(outs["cyclic"]) as a, xr.open_dataset(outs["plain"]) as b:
        np.testing.assert_array_equal(a["sst"].values, b["sst"].values)
    # a last meridian whose values differ from the first's is not a copy: still refused
    differs = cyclic.copy(data=cyclic.values.copy())
    differs[..., -1] += 1.0
    differs.to_dataset().to_netcdf(tmp_path / "differs.nc")
    argv = ["downscale", str(tmp_path / "differs.nc"), str(tmp_path / "d.nc"), "--no-progress"]
    assert cli.main([*argv, "--model", str(files["model"])]) == 3
    assert "cyclic point" in capsys.readouterr().err


def test_a_file_without_units_is_told_the_units_flag(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    field = sst_field(nt=2, ny=8, nx=8)
    field.attrs.pop("units")
    field.to_dataset().to_netcdf(tmp_path / "nounits.nc")
    argv = ["downscale", str(tmp_path / "nounits.nc"), str(tmp_path / "o.nc"), "--no-progress"]
    argv += ["--model", str(files["model"])]
    assert cli.main(argv) == 3
    assert "On the command line: --units degC (or --units K)." in capsys.readouterr().err
    assert cli.main([*argv, "--units", "degC"]) == 0


def test_several_coordinate_candidates_are_a_typed_error(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src = _ncl_file(tmp_path, files["coarse"], extra=True)
    argv = ["downscale", str(src), str(tmp_path / "out.nc"), "--model", str(files["model"])]
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    assert "no coordinate values on dimension 'latitude'" in err
    assert "['lat', 'grid_lat']" in err
    assert "ds.set_coords(['lat']).swap_dims({'latitude': 'lat'})" in err
    with pytest.raises(xsstsr.CoordinateError, match="set_coords"):
        cli.open_input(str(src), chunks=None, what="IN")


def test_chunks_of_an_unknown_dimension_are_an_error(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["downscale", str(files["coarse"]), str(tmp_path / "out.nc")]
    assert cli.main([*argv, "--model", str(files["model"]), "--chunks", "tiem=2,lat=8"]) == 3
    err = capsys.readouterr().err
    assert "--chunks names ['tiem'], which IN has not; its dimensions are" in err
    assert "'time'" in err
    assert not (tmp_path / "out.nc").exists()
    with pytest.raises(xsstsr.OptionError):
        cli.open_input(str(files["coarse"]), chunks={"depth": 1}, what="IN")


def _anonymous_axes(folder: Path, coarse: Path) -> Path:
    """Axes that cannot be found: odd names, no CF attributes."""
    with xr.open_dataset(coarse) as ds:
        ds = ds.load()
    ds = ds.rename({"lat": "row", "lon": "col", "time": "step"})
    for name in ("row", "col", "step"):
        ds[name].attrs = {}
    path = folder / "anonymous.nc"
    ds.to_netcdf(path)
    return path


def test_downscale_lat_lon_time_flags(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src = _anonymous_axes(tmp_path, files["coarse"])
    out = tmp_path / "out.nc"
    argv = ["downscale", str(src), str(out), "--model", str(files["model"])]
    argv += ["--device", "cpu", "--no-progress", "--chunks", "none"]
    assert cli.main(argv) == 3
    err = capsys.readouterr().err
    assert "--lat" in err
    assert "lat=" not in err
    argv += ["--lat", "row", "--lon", "col"]
    assert cli.main([*argv, "--time", "nope"]) == 3  # passed through, in the CLI's words
    assert "--time nope is not a dimension of the data" in capsys.readouterr().err
    assert cli.main([*argv, "--time", "step"]) == 0
    with xr.open_dataset(out) as back:
        assert back["sst"].dims == ("step", "row", "col")
        assert back["sst"].shape == (4, 32, 32)


def test_fit_and_evaluate_pass_the_names_through(
    tmp_path: Path, files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import xsstsr.evaluation
    import xsstsr.training

    seen: dict[str, dict[str, object]] = {}

    def fake_fit(obj: object, stations: object, **kwargs: object) -> object:
        seen["fit"] = kwargs
        raise xsstsr.InputDataError("stop here")

    def fake_evaluate(obj: object, **kwargs: object) -> pd.DataFrame:
        seen["evaluate"] = kwargs
        return pd.DataFrame({"source": ["downscaled"]})

    monkeypatch.setattr(xsstsr.training, "fit", fake_fit)
    monkeypatch.setattr(xsstsr.evaluation, "evaluate", fake_evaluate)
    names = ["--variable", "sst", "--lat", "lat", "--lon", "lon"]
    fit_argv = ["fit", str(files["truth"]), str(tmp_path / "m.safetensors"), *names]
    assert cli.main([*fit_argv, "--time", "time"]) == 3
    assert {k: seen["fit"][k] for k in ("variable", "lat", "lon", "time")} == {
        "variable": "sst", "lat": "lat", "lon": "lon", "time": "time"
    }  # fmt: skip
    assert cli.main(["evaluate", str(files["truth"]), "--truth", str(files["truth"]), *names]) == 0
    assert {k: seen["evaluate"][k] for k in ("variable", "lat", "lon")} == {
        "variable": "sst", "lat": "lat", "lon": "lon"
    }  # fmt: skip
    with pytest.raises(SystemExit):  # evaluate() has no time=
        cli.main(["evaluate", str(files["truth"]), "--truth", str(files["truth"]), "--time", "t"])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            "Pass variable=... or set standard_name='sea_surface_temperature' on it.",
            "Pass --variable ... or set standard_name='sea_surface_temperature' on it.",
        ),
        ("pass lat= and lon= explicitly.", "pass --lat and --lon explicitly."),
        (
            "pass lat='<dim name>' or add standard_name",
            "pass --lat <dim name> or add standard_name",
        ),
        (
            "no model for factor=3; pass model='sst-x4'.",
            "no model for --factor 3; pass --model sst-x4.",
        ),
        ("use overwrite=True", "use --overwrite"),
        ("pass batch_size=4, or fewer", "pass --batch-size 4, or fewer"),
        # code stays code, and keywords the command has not stay as they are
        ("drop one with .isel(lat=slice(0, 30)).", "drop one with .isel(lat=slice(0, 30))."),
        (
            "fine-tune with fit(init='sst-x4') or tile_size=64",
            "fine-tune with fit(init='sst-x4') or tile_size=64",
        ),
    ],
)
def test_library_messages_in_cli_words(message: str, expected: str) -> None:
    flags = cli.build_parser().parse_args(["downscale", "a.nc", "b.nc"]).cli_flags
    assert "--tile-size" not in flags
    assert cli.cli_words(message, flags) == expected


def test_units_flag_for_a_file_that_does_not_say(files: dict[str, Path], tmp_path: Path) -> None:
    """WOA's TEMP has no units attribute: --units gives them (the file is not changed)."""
    with xr.open_dataset(files["coarse"]) as ds:
        bare = ds.load()
    bare["sst"].attrs.pop("units")
    src = tmp_path / "bare.nc"
    bare.to_netcdf(src)
    before = src.read_bytes()
    refused = run(tmp_path, "downscale", str(src), "a.nc", "--model", str(files["model"]))
    assert refused.returncode == 3
    assert "no units attribute" in refused.stderr
    done = run(
        tmp_path, "downscale", str(src), "b.nc", "--model", str(files["model"]), "--units", "degC"
    )
    assert done.returncode == 0, done.stderr
    with xr.open_dataset(tmp_path / "b.nc") as out:
        assert out["sst"].attrs["units"] == "degC"
    assert src.read_bytes() == before
