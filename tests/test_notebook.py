"""Execute docs/examples/quickstart.ipynb and check its outputs (needs nbclient + ipykernel).

It uses the released sst-x4 when installed, otherwise fits a tiny model itself, so it
runs either way.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "docs" / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel inherits the environment: an absolute PYTHONPATH and a private cache
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        "store the notebook without outputs"
    )
    client = nbclient.NotebookClient(
        nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    errors = [out for out in outputs if out.output_type == "error"]
    assert not errors, errors[0].get("traceback")
    text = "".join(out.get("text", "") for out in outputs if out.output_type == "stream")
    assert "rmse" in text
    assert "rmse_extremes" in text
    assert "downscaled" in text
    assert "bicubic" in text
    assert "stations" in text
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert len(images) >= 4  # compare, spectrum, stations, history
    assert not list(tmp_path.glob("*.partial"))
