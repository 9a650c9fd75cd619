"""The README's code runs as written: the fit example on the bundled sample beats bicubic."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def block(marker: str) -> str:
    """The python code block that follows ``<!-- marker -->`` in the README."""
    text = README.read_text()
    found = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert found, f"README has no python block after <!-- {marker} -->"
    return found.group(1)


def run_block(marker: str) -> tuple[dict[str, object], str]:
    """Run a README block in the current folder; its names and what it printed."""
    out = io.StringIO()
    namespace: dict[str, object] = {}
    with contextlib.redirect_stdout(out):
        exec(compile(block(marker), "README.md", "exec"), namespace)
    return namespace, out.getvalue()


@pytest.mark.slow
def test_readme_fit_example_runs_and_beats_bicubic(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace, printed = run_block("readme-fit")
    model = namespace["model"]
    validation = model.validation  # type: ignore[attr-defined]
    assert validation["held_out"]
    assert validation["rmse"] < validation["rmse_bicubic"]
    assert "rmse_bicubic" in printed  # the printed validation
    assert (tmp_path / "sample_x4.safetensors").is_file()


def test_readme_tour_runs_as_written(tmp_path: Path, monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace, printed = run_block("readme-tour")
    scores = namespace["scores"]
    grid = scores[(scores["against"] == "grid") & (scores["period"] == "all")]  # type: ignore[index]
    rmse = dict(zip(grid["source"], grid["rmse"], strict=True))
    assert rmse["downscaled"] < rmse["bicubic"]
    assert (tmp_path / "sample_x4.zarr").is_dir()
    assert "sst-x4" in printed
