"""Sphinx configuration of the xsstsr documentation.

Build with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``.

reStructuredText with autodoc, napoleon and viewcode; Markdown and notebooks with myst-nb.
The notebooks under ``examples/`` are stored without outputs and executed on every build
(offline, on the bundled sample; an error fails the build), so their figures are the ones
the current code draws. ``model_card.md`` includes ``weights/MODEL_CARD.md``. No network
(intersphinx is off). Pages written in Markdown by other parts of the project
(``training_study.md``, ``reliability.md``) are announced as "not written yet" while they do
not exist.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
# the notebooks' kernels inherit this environment: they import xsstsr from this checkout
# and draw with matplotlib's inline backend (Agg, shown as PNG), whatever MPLBACKEND says
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)
# tqdm.auto warns, where xsstsr first imports it, that ipywidgets is missing: not for the docs
os.environ["PYTHONWARNINGS"] = ",".join(
    filter(None, [os.environ.get("PYTHONWARNINGS"), "ignore:IProgress not found"])
)

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
    "myst_nb",  # also registers .md (MyST) and .ipynb
]

#: Pages owned elsewhere in the project, in Markdown: (docname, title, what they hold).
OPTIONAL_PAGES = [
    ("training_study", "Training study", "fit()'s defaults, the loss scales and the nine losses"),
    ("reliability", "Reliability", "what xsstsr promises under bad inputs and failures"),
]
#: Markdown pages besides the optional ones; every other .md under docs/ is not a page.
MARKDOWN_PAGES = {"model_card", "architecture"}

source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
exclude_patterns += [
    str(p.relative_to(HERE))
    for p in HERE.rglob("*.md")
    if p.parent != HERE or p.stem not in MARKDOWN_PAGES | {name for name, _, _ in OPTIONAL_PAGES}
]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# notebooks: run them all on every build, fail the build on an error or a slow cell
nb_execution_mode = "force"
nb_execution_timeout = 300  # seconds a cell; each notebook takes ~15 s on 2 idle cores
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

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
    """The body of ``studies.rst``: a toctree of the optional pages that exist, a note for each
    of the others."""
    entries: list[str] = []
    blocks: list[str] = []
    for name, title, what in OPTIONAL_PAGES:
        if (HERE / f"{name}.md").is_file() or (HERE / f"{name}.rst").is_file():
            entries.append(name)
        else:
            underline = "-" * len(title)
            blocks.append(
                f"{title}\n{underline}\n\nNot written yet: ``docs/{name}.md`` will hold {what}.\n"
            )
    out = ""
    if entries:
        out += ".. toctree::\n   :maxdepth: 2\n\n" + "".join(f"   {e}\n" for e in entries)
        out += "\n"
    return out + "\n".join(blocks)


_MD_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def _include_read(app, relative_path: Path, parent_docname: str, content: list[str]) -> None:
    """Drop the model card's images that are not there (yet): ``scripts/model_card.py`` writes
    them beside the card, and a missing one would fail the ``-W`` build."""
    if relative_path.name != "MODEL_CARD.md":
        return
    folder = (HERE / relative_path).parent

    def keep(match: re.Match[str]) -> str:
        target = match.group(1)
        if "://" in target or (folder / target).is_file():
            return match.group(0)
        return f"*(figure `{target}` not generated yet)*"

    content[0] = _MD_IMAGE.sub(keep, content[0])


def _source_read(app, docname: str, source: list[str]) -> None:
    if docname == "studies":
        source[0] = source[0].replace(".. xsstsr-optional-pages", _optional_pages_rst())


def setup(app):
    app.connect("source-read", _source_read)
    app.connect("include-read", _include_read)
    return {"parallel_read_safe": True}
