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
from conftest import make_model, sst_field

import xsstsr
from xsstsr import cli
from xsstsr.datasets import coarsen_truth

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
    assert cli._chunks("time=8, lat=256".replace(" ", "")) == {"time": 8, "lat": 256}
    assert cli._chunks("auto") == "auto"
    assert cli._chunks("file") == {}
    assert cli._chunks("none") is None
    assert cli._chunks("time=-1") == {"time": -1}


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
    assert seen == [cli._interrupt]
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
            assert xsstsr.weights.registry()[f"{name}.safetensors"][:12] in row
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
