"""The package's layout: no import circle, no import of another module's private names, no
source file over 600 lines, and the old import paths working with a DeprecationWarning."""

from __future__ import annotations

import ast
import importlib
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "xsstsr"
MAX_LINES = 600


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(module, imported name or None) for every import in ``path``, functions included."""
    is_package = path.name == "__init__.py"
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                child = f"{module}.{alias.name}"
                out.append((child, None) if child in MODULES else (module, alias.name))
    return out


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str, str]]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    private = []
    for name, path in MODULES.items():
        for module, imported in _imports(name, path):
            while module and module not in MODULES:
                module = module.rpartition(".")[0]
            if not module or module == name or module == "xsstsr":
                continue
            edges[name].add(module)
            # importing xsstsr.a.b runs xsstsr.a's __init__ too (unless we are inside xsstsr.a)
            parts = module.split(".")
            for k in range(2, len(parts)):
                parent = ".".join(parts[:k])
                if not name.startswith(parent + ".") and parent != name:
                    edges[name].add(parent)
            if imported and imported.startswith("_") and not imported.startswith("__"):
                private.append((name, module, imported))
    return edges, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_lazy_imports() -> None:
    edges, _ = _graph()
    # Model.plot_history imports the history plot inside the method
    assert "xsstsr.models.history" in edges["xsstsr.models.container"]
    assert "xsstsr.inference" in edges["xsstsr.cli.commands"]


def test_no_import_circle() -> None:
    edges, _ = _graph()
    assert _cycles(edges) == []


def test_a_circle_would_be_found() -> None:
    edges, _ = _graph()
    edges["xsstsr.cf.units"].add("xsstsr.inference.frontend")
    assert _cycles(edges)


def test_no_module_imports_another_modules_private_names() -> None:
    _, private = _graph()
    assert private == []


#: packages from the bottom of the pipeline up (docs/architecture.md): each imports only
#: packages before it; the fronts and the moved paths sit on top
LAYERS = [
    {"errors", "_version"},
    {"options", "mpl", "deprecation"},
    {"cf"},
    {"io"},
    {"nn"},
    {"grid"},
    {"stations"},
    {"models"},
    {"inference"},
    {"datasets"},
    {"evaluation"},
    {"training"},
    {"plotting", "_versions"},
    {"accessor", "cli", "model", "weights", "losses", "networks", "realism"},
    {"__main__", "xsstsr"},
]


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "xsstsr"


def test_imports_go_down_the_pipeline() -> None:
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    edges, _ = _graph()
    upward = []
    for module, targets in edges.items():
        for target in targets:
            a, b = _package(module), _package(target)
            if a != b and rank[b] >= rank[a]:
                upward.append((module, target))
    assert upward == []
    assert set(rank) >= {_package(m) for m in MODULES}  # every package has its layer


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_source_file_over_600_lines(name: str) -> None:
    assert len(MODULES[name].read_text().splitlines()) <= MAX_LINES


MOVED = [
    ("xsstsr.model", "Model", "xsstsr.models.container"),
    ("xsstsr.model", "new_metadata", "xsstsr.models.metadata"),
    ("xsstsr.weights", "load_model", "xsstsr.models.weights"),
    ("xsstsr.weights", "parse_factor", "xsstsr.grid.factor"),
    ("xsstsr.losses", "make_loss_config", "xsstsr.nn.losses"),
    ("xsstsr.networks", "Generator", "xsstsr.nn.networks"),
    ("xsstsr.realism", "background_field", "xsstsr.datasets.realism"),
    ("xsstsr.datasets", "coarsen_truth", "xsstsr.grid.coarsen"),
]


@pytest.mark.parametrize(("old", "name", "new"), MOVED)
def test_old_import_paths_work_with_a_deprecation_warning(old: str, name: str, new: str) -> None:
    module = importlib.import_module(old)
    with pytest.warns(DeprecationWarning, match=rf"{old}\.{name} moved to {new}\.{name}"):
        value = getattr(module, name)
    assert value is getattr(importlib.import_module(new), name)


def test_public_api_needs_no_deprecated_path() -> None:
    import xsstsr

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for name in xsstsr.__all__:
            getattr(xsstsr, name)
        for name in xsstsr.datasets.__all__:
            getattr(xsstsr.datasets, name)


def test_an_unknown_old_name_is_an_attribute_error() -> None:
    import xsstsr.weights

    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = xsstsr.weights.nothing


def test_import_xsstsr_imports_neither_torch_nor_matplotlib() -> None:
    import subprocess

    code = "import sys, xsstsr; print('torch' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
