"""The ``.sstsr`` accessor: each method shows and calls the function it fronts."""

from __future__ import annotations

import ast
import inspect
import os
import pydoc
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from helpers import make_model, sst_field

import xsstsr
from xsstsr.accessor import SSTSRAccessor

ROOT = Path(__file__).resolve().parent.parent

# accessor method -> (module, function) it fronts
FRONTS = {
    "downscale": ("xsstsr.inference.frontend", "downscale"),
    "fit": ("xsstsr.training", "fit"),
    "evaluate": ("xsstsr.evaluation", "evaluate"),
    "write": ("xsstsr.io", "write_dataset"),
    "plot_compare": ("xsstsr.plotting", "plot_compare"),
    "plot_spectrum": ("xsstsr.plotting", "plot_spectrum"),
    "plot_stations": ("xsstsr.plotting", "plot_stations"),
}


def target(method: str) -> Any:
    import importlib

    module, name = FRONTS[method]
    return getattr(importlib.import_module(module), name)


def test_downscale_signature_lists_every_parameter_but_the_object() -> None:
    ds = sst_field(nt=2, ny=8, nx=8).to_dataset()
    shown = inspect.signature(ds.sstsr.downscale)
    wanted = list(inspect.signature(xsstsr.downscale).parameters.values())[1:]
    assert list(shown.parameters.values()) == wanted
    assert {"precision", "time", "lat", "lon", "variable", "tile_size"} <= set(shown.parameters)
    assert "obj" not in shown.parameters
    assert shown.return_annotation == inspect.signature(xsstsr.downscale).return_annotation


@pytest.mark.parametrize("method", sorted(FRONTS))
@pytest.mark.parametrize("kind", ["dataset", "dataarray"])
def test_each_method_shows_its_function(method: str, kind: str) -> None:
    da = sst_field(nt=2, ny=8, nx=8)
    obj = da.to_dataset() if kind == "dataset" else da
    func = target(method)
    bound = getattr(obj.sstsr, method)
    assert func.__doc__
    assert bound.__doc__ == func.__doc__
    shown = list(inspect.signature(bound).parameters.values())
    assert shown == list(inspect.signature(func).parameters.values())[1:]
    assert "**kwargs" not in str(inspect.signature(bound))
    # on the class (Sphinx, help(SSTSRAccessor)): the same, with self first
    unbound = inspect.signature(getattr(SSTSRAccessor, method))
    assert next(iter(unbound.parameters)) == "self"
    assert list(unbound.parameters.values())[1:] == shown


def test_fit_shows_every_fit_config_option() -> None:
    from xsstsr.training.config import option_names

    shown = inspect.signature(xr.Dataset().sstsr.fit).parameters
    assert set(option_names()) <= set(shown)
    assert not [p for p in shown.values() if p.kind == p.VAR_KEYWORD]


def test_help_shows_the_parameters_and_the_docstring() -> None:
    text = pydoc.render_doc(xr.Dataset().sstsr.downscale, renderer=pydoc.plaintext)
    assert "precision: 'str' = 'auto'" in text
    assert "time: 'Hashable | None' = None" in text
    assert "Downscale SST onto a grid ``factor`` times finer" in text
    assert "obj :" in text  # the function's own parameter list, unchanged


def test_calling_passes_the_object_and_every_argument(tmp_path: Path) -> None:
    coarse = sst_field(nt=3, ny=8, nx=8, step=0.25)
    model = make_model(4, 1)
    via_accessor = coarse.to_dataset().sstsr.downscale(4, model=model, device="cpu")
    direct = xsstsr.downscale(coarse.to_dataset(), 4, model=model, device="cpu")
    np.testing.assert_array_equal(via_accessor["sst"].values, direct["sst"].values)
    out = via_accessor.sstsr.write(tmp_path / "out.nc", overwrite=False)
    assert out == tmp_path / "out.nc"
    assert out.is_file()
    with pytest.raises(TypeError, match="unexpected keyword argument 'precison'"):
        coarse.sstsr.downscale(4, model=model, precison="float32")


def test_import_does_not_import_torch_or_matplotlib() -> None:
    code = (
        "import sys, inspect, xarray as xr, xsstsr\n"
        "inspect.signature(xr.Dataset().sstsr.downscale)\n"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))\n"
    )
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _documented(name: str) -> inspect.Signature:
    """The signature docs/api.rst gives ``Dataset.sstsr.NAME``, parsed as Python."""
    text = (ROOT / "docs" / "api.rst").read_text()
    found = re.findall(rf"^\.\. py:method:: Dataset\.sstsr\.{name}\((.*)\)$", text, re.M)
    assert len(found) == 1, name
    args = ast.parse(f"def f({found[0]}): pass").body[0].args  # type: ignore[attr-defined]
    params = []
    positional = args.posonlyargs + args.args
    pos_defaults = [None] * (len(positional) - len(args.defaults)) + args.defaults
    for arg, default in zip(positional, pos_defaults, strict=True):
        kw: dict[str, Any] = {} if default is None else {"default": ast.literal_eval(default)}
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.POSITIONAL_OR_KEYWORD, **kw))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        kw = {} if default is None else {"default": ast.literal_eval(default)}
        params.append(inspect.Parameter(arg.arg, inspect.Parameter.KEYWORD_ONLY, **kw))
    if args.kwarg is not None:
        params.append(inspect.Parameter(args.kwarg.arg, inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params)


@pytest.mark.parametrize("method", sorted(FRONTS))
def test_api_docs_list_every_parameter(method: str) -> None:
    actual = list(inspect.signature(target(method)).parameters.values())[1:]
    if method == "fit":  # the FitConfig options are documented as **options
        from xsstsr.training.config import option_names

        actual = [p for p in actual if p.name not in option_names()]
        actual.append(inspect.Parameter("options", inspect.Parameter.VAR_KEYWORD))
    bare = [p.replace(annotation=inspect.Parameter.empty) for p in actual]
    assert list(_documented(method).parameters.values()) == bare
