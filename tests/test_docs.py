"""Build the Sphinx documentation with warnings as errors (needs the ``docs`` extra).

One full build (the example notebooks executed) serves every check of the real docs; the
checks on pages the build must cope with build a copy with notebook execution off.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
CARD = ROOT / "weights" / "MODEL_CARD.md"


def build(source: Path, out: Path, *options: str) -> subprocess.CompletedProcess[str]:
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
            *options,
            str(source),
            str(out / "html"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=420,
    )


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("docs")
    done = build(DOCS, out)
    assert done.returncode == 0, done.stdout + done.stderr
    return out / "html"


def test_docs_build_without_warnings(html: Path) -> None:
    for page in (
        "index",
        "install",
        "quickstart",
        "api",
        "studies",
        "model_card",
        "architecture",
        "examples/quickstart",
        "examples/gallery",
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
    assert list((html / "_downloads").rglob("quickstart.ipynb"))  # the notebook to download
    index = (html / "index.html").read_text()
    for page in ("examples/quickstart.html", "examples/gallery.html", "model_card.html"):
        assert f'href="{page}"' in index, page


@pytest.mark.parametrize(("page", "figures"), [("quickstart", 4), ("gallery", 4)])
def test_notebooks_executed_with_figures(html: Path, page: str, figures: int) -> None:
    """The build ran the notebook: its plots are PNGs in the page, and no cell failed."""
    text = (html / "examples" / f"{page}.html").read_text()
    images = set(re.findall(r'<img[^>]+src="(\.\./_images/[^"]+\.png)"', text))
    assert len(images) >= figures, images
    for src in images:
        assert (html / "examples" / src).resolve().is_file(), src
    assert "Traceback" not in text
    assert "TqdmWarning" not in text  # filtered in conf.py


def test_model_card_page(html: Path) -> None:
    """weights/MODEL_CARD.md is a page, with its images where scripts/model_card.py drew them."""
    text = (html / "model_card.html").read_text()
    assert "<title>Model card" in text
    models = re.findall(r"^#+ (sst-x[\d.]+(?:-gan)?)\s*$", CARD.read_text(), flags=re.M)
    assert models  # one section a model
    for model in models:
        assert f">{model}<" in text, model
    for image in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", CARD.read_text()):
        if (CARD.parent / image).is_file():
            assert re.search(rf'<img[^>]+src="_images/{re.escape(image)}"', text), image
        else:
            assert "not generated yet" in text, image


def test_optional_pages_and_missing_card_images(tmp_path: Path) -> None:
    """docs/training_study.md (written by a benchmark) is picked up once it exists, and the
    model card's images that scripts/model_card.py has not drawn yet do not break -W."""
    source = tmp_path / "docs"
    shutil.copytree(DOCS, source, ignore=shutil.ignore_patterns("_build", "jupyter_execute"))
    (source / "training_study.md").unlink(missing_ok=True)
    (source / "training_study.md").write_text(
        "# Training study\n\nRMSE of the nine losses.\n\n| loss | rmse |\n| --- | --- |\n"
        "| mse | 0.1 |\n\n$$\\ell(d) = d^2$$\n"
    )
    weights = tmp_path / "weights"  # what ../weights/MODEL_CARD.md points at from the copy
    weights.mkdir()
    shutil.copy(CARD, weights)
    with (weights / "MODEL_CARD.md").open("a") as card:
        card.write("\n![drawn](drawn.png)\n\n![not drawn](absent-spectrum.png)\n")
    (weights / "drawn.png").write_bytes(_png())
    out = tmp_path / "out"
    done = build(source, out, "-D", "nb_execution_mode=off")
    assert done.returncode == 0, done.stdout + done.stderr
    studies = (out / "html" / "studies.html").read_text()
    assert "Training study" in studies
    assert "Not written yet" not in studies.split("Reliability")[0]
    card = (out / "html" / "model_card.html").read_text()
    assert re.search(r'<img[^>]+src="_images/drawn.png"', card)
    assert "absent-spectrum.png" in card
    assert "not generated yet" in card
    assert (out / "html" / "_images" / "drawn.png").is_file()


def _png() -> bytes:
    """A 1 x 1 PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )
