"""Build the Sphinx documentation with warnings as errors (needs sphinx)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def build(source: Path, out: Path) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-E",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            str(source),
            str(out / "html"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    done = build(DOCS, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    html = tmp_path / "html"
    for page in (
        "index",
        "install",
        "quickstart",
        "api",
        "studies",
        "guide/data",
        "guide/training",
        "guide/parallel",
        "guide/weights",
        "guide/cli",
    ):
        assert (html / f"{page}.html").is_file(), page
    api = (html / "api.html").read_text()
    for name in (
        "Dataset.sstsr.downscale",
        "xsstsr.evaluate",
        "xsstsr.fit",
        "xsstsr.Model",
        "xsstsr.load_model",
        "xsstsr.available_models",
        "open_sample",
        "GridError",
    ):
        assert name in api, name
    assert (html / "_downloads").is_dir()  # the example notebook


def test_optional_markdown_pages(tmp_path: Path) -> None:
    """docs/training_study.md (written by a benchmark) is picked up once it exists."""
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build"))
    (source / "training_study.md").unlink(missing_ok=True)
    (source / "training_study.md").write_text(
        "# Training study\n\nRMSE of the nine losses.\n\n| loss | rmse |\n| --- | --- |\n"
        "| mse | 0.1 |\n\n$$\\ell(d) = d^2$$\n"
    )
    done = build(source, tmp_path / "out")
    assert done.returncode == 0, done.stdout + done.stderr
    studies = (tmp_path / "out" / "html" / "studies.html").read_text()
    assert "Training study" in studies
    assert "Not written yet" not in studies.split("Reliability")[0]
