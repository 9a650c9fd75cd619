"""Sphinx configuration of the xsstsr documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

Plain reStructuredText with autodoc, napoleon and viewcode; no network (intersphinx is
off). Pages written in Markdown by other parts of the project (``training_study.md``,
``reliability.md``) are rendered with myst-parser when it is installed, shown as their
Markdown source otherwise, and announced as "not written yet" while they do not exist.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import xsstsr  # noqa: E402

project = "xsstsr"
author = "xsstsr developers"
copyright = "xsstsr developers, MIT license"
release = xsstsr.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

#: Pages owned elsewhere in the project, in Markdown: (docname, title, what they hold).
OPTIONAL_PAGES = [
    ("training_study", "Training study", "fit()'s defaults, the loss scales and the nine losses"),
    ("reliability", "Reliability", "what xsstsr promises under bad inputs and failures"),
]
HAVE_MYST = importlib.util.find_spec("myst_parser") is not None

source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "**.ipynb_checkpoints", "examples"]
if HAVE_MYST:
    extensions.append("myst_parser")
    source_suffix[".md"] = "markdown"
    myst_enable_extensions = ["dollarmath", "amsmath"]
    myst_heading_anchors = 3
    optional = {name for name, _, _ in OPTIONAL_PAGES}
    # every other Markdown file under docs/ is not a page
    exclude_patterns += [
        str(p.relative_to(HERE))
        for p in HERE.rglob("*.md")
        if p.stem not in optional or p.parent != HERE
    ]
# Markdown written elsewhere should not fail the -W build over cross-references or
# heading levels it cannot know about
suppress_warnings = ["myst.header", "myst.xref_missing", "myst.strikethrough"]

master_doc = "index"
language = "en"
pygments_style = "sphinx"
templates_path: list[str] = []

autodoc_typehints = "none"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False}
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True

html_theme = "alabaster"
html_title = f"xsstsr {release}"
html_theme_options = {
    "description": "SST super-resolution for xarray and dask",
    "fixed_sidebar": True,
}


def _optional_pages_rst() -> str:
    """The body of ``studies.rst``: a toctree or a literal copy of each optional page."""
    entries: list[str] = []
    blocks: list[str] = []
    for name, title, what in OPTIONAL_PAGES:
        md, rst = HERE / f"{name}.md", HERE / f"{name}.rst"
        if rst.is_file() or (md.is_file() and HAVE_MYST):
            entries.append(name)
            continue
        underline = "-" * len(title)
        if md.is_file():
            blocks.append(
                f"{title}\n{underline}\n\n"
                f"``docs/{name}.md`` ({what}) is shown as Markdown source; install "
                f"``myst-parser`` to render it.\n\n"
                f".. literalinclude:: {name}.md\n   :language: markdown\n"
            )
        else:
            blocks.append(
                f"{title}\n{underline}\n\nNot written yet: ``docs/{name}.md`` will hold {what}.\n"
            )
    out = ""
    if entries:
        out += ".. toctree::\n   :maxdepth: 2\n\n" + "".join(f"   {e}\n" for e in entries)
        out += "\n"
    return out + "\n".join(blocks)


def _source_read(app, docname: str, source: list[str]) -> None:
    if docname == "studies":
        source[0] = source[0].replace(".. xsstsr-optional-pages", _optional_pages_rst())


def setup(app):
    app.connect("source-read", _source_read)
    return {"parallel_read_safe": True}
