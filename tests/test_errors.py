"""A static guard: no module of xsstsr raises a builtin exception class at a user.

Every error that reaches a user is an :class:`xsstsr.XsstsrError` subclass (which is also
the builtin it is). Each module is parsed with :mod:`ast`; a ``raise`` of a builtin class
(``ValueError``, ``OSError``, ``FileNotFoundError``, ``NotImplementedError``, ...) fails the
test unless it sits in the body of a ``try`` in the same function whose handler catches it
and raises an XsstsrError (internal control flow, e.g. ``raise TypeError`` to reach the
handler that says the fix), or is in the small allow-list below.
"""

from __future__ import annotations

import ast
import builtins
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest

import xsstsr
import xsstsr.errors

PACKAGE = Path(xsstsr.__file__).resolve().parent
MODULES = sorted(PACKAGE.rglob("*.py"))

# Exception (not BaseException) subclasses: KeyboardInterrupt and SystemExit are signals
# (the CLI's handlers raise KeyboardInterrupt on purpose), not errors.
BUILTIN_ERRORS = {
    name
    for name, obj in vars(builtins).items()
    if isinstance(obj, type) and issubclass(obj, Exception)
}
TYPED_ERRORS = {
    name
    for name, obj in vars(xsstsr.errors).items()
    if inspect.isclass(obj) and issubclass(obj, xsstsr.errors.XsstsrError)
}

# (module path relative to the package, function, class) -> why it may raise a builtin
ALLOWED: dict[tuple[str, str, str], str] = {
    ("__init__.py", "__getattr__", "AttributeError"): (
        "a module __getattr__ must raise AttributeError (PEP 562): hasattr() and "
        "`from xsstsr import name` rely on it"
    ),
    ("datasets/__init__.py", "__getattr__", "AttributeError"): "the same, for xsstsr.datasets",
    ("deprecation.py", "__getattr__", "AttributeError"): "the same, for the moved modules",
}


@dataclass(frozen=True)
class Offence:
    path: str
    line: int
    function: str
    error: str

    def __str__(self) -> str:
        return f"xsstsr/{self.path}:{self.line}: raise {self.error} in {self.function}()"


def _name(node: ast.expr | None) -> str | None:
    """``ValueError`` for ``ValueError``, ``ValueError(...)`` and ``builtins.ValueError``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _shadowed(tree: ast.Module) -> set[str]:
    """Names the module binds itself (an import or a class), which are not the builtins."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom | ast.Import):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
    return names


def _catches(handler: ast.ExceptHandler, error: str) -> bool:
    if handler.type is None:
        return True
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    raised = getattr(builtins, error)
    for node in types:
        name = _name(node)
        caught = getattr(builtins, name, None) if name is not None else None
        if isinstance(caught, type) and issubclass(raised, caught):
            return True
    return False


def _converts(handler: ast.ExceptHandler) -> bool:
    """The handler raises a typed error (``raise GridError(...) from err``)."""
    return any(
        isinstance(node, ast.Raise) and _name(node.exc) in TYPED_ERRORS
        for stmt in handler.body
        for node in ast.walk(stmt)
    )


def offences(source: str, path: str = "<string>") -> list[Offence]:
    """The raises of builtin error classes in ``source`` that are not converted nearby."""
    tree = ast.parse(source)
    builtin_here = BUILTIN_ERRORS - _shadowed(tree)
    found: list[Offence] = []

    def visit(node: ast.AST, function: str, trys: tuple[ast.Try, ...]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            function, trys = getattr(node, "name", "<lambda>"), ()  # a new scope
        elif isinstance(node, ast.ClassDef):
            trys = ()
        if isinstance(node, ast.Try | ast.TryStar):
            for stmt in node.body:
                visit(stmt, function, (*trys, node))
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, function, trys)
            return
        if isinstance(node, ast.Raise):
            error = _builtin_raised(node, builtin_here)
            if error is not None and not any(
                _catches(h, error) and _converts(h) for t in trys for h in t.handlers
            ):
                found.append(Offence(path, node.lineno, function, error))
        for child in ast.iter_child_nodes(node):
            visit(child, function, trys)

    visit(tree, "<module>", ())
    return found


def _builtin_raised(node: ast.Raise, builtin_here: set[str]) -> str | None:
    """The builtin class ``node`` raises (``X``, ``X(...)``, ``builtins.X(...)``), or None."""
    callee = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    if isinstance(callee, ast.Name) and callee.id in builtin_here:
        return callee.id
    if (
        isinstance(callee, ast.Attribute)
        and isinstance(callee.value, ast.Name)
        and callee.value.id == "builtins"
        and callee.attr in BUILTIN_ERRORS
    ):
        return callee.attr
    return None


def _module_offences(path: Path) -> list[Offence]:
    rel = path.relative_to(PACKAGE).as_posix()
    return [
        o
        for o in offences(path.read_text(encoding="utf-8"), rel)
        if (o.path, o.function, o.error) not in ALLOWED
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_builtin_error_reaches_a_user(path: Path) -> None:
    found = _module_offences(path)
    assert not found, (
        "raise the fitting XsstsrError subclass from xsstsr/errors.py (it is also the "
        "builtin), with a message that says the fix:\n" + "\n".join(map(str, found))
    )


def test_allow_list_is_current() -> None:
    """Each allowed raise still exists, so the list cannot hide a new one under an old entry."""
    for rel, function, error in ALLOWED:
        path = PACKAGE / rel
        raw = offences(path.read_text(encoding="utf-8"), rel)
        assert any((o.function, o.error) == (function, error) for o in raw), (rel, function)


# -- the checker itself -----------------------------------------------------------------


def test_checker_flags_bare_raises() -> None:
    source = """
import builtins

def f(x):
    if x:
        raise ValueError("bad")
    raise KeyError

def g():
    try:
        pass
    except ValueError:
        raise RuntimeError("still builtin")

def h():
    raise builtins.OSError("by attribute")

def i():
    raise FileNotFoundError("a subclass of OSError")
"""
    assert [(o.function, o.error) for o in offences(source)] == [
        ("f", "ValueError"),
        ("f", "KeyError"),
        ("g", "RuntimeError"),
        ("h", "OSError"),
        ("i", "FileNotFoundError"),
    ]


def test_checker_accepts_converted_and_typed_raises() -> None:
    source = """
from .errors import GridError, OptionError

def f(values):
    try:
        if values is None:
            raise TypeError
        return float(values)
    except (TypeError, ValueError):
        raise GridError("give numbers") from None

def g(x):
    raise OptionError(f"x must be 1, got {x!r}")

def h(err):
    try:
        pass
    except ValueError as e:
        raise e
    raise KeyboardInterrupt
"""
    assert offences(source) == []


def test_checker_needs_a_handler_that_converts() -> None:
    source = """
from .errors import GridError

def caught_but_not_converted():
    try:
        raise TypeError
    except TypeError:
        return None

def converted_in_an_outer_function():
    try:
        def inner():
            raise TypeError
    except TypeError:
        raise GridError("x")

def handler_for_another_class():
    try:
        raise KeyError("k")
    except ValueError:
        raise GridError("x")
"""
    assert [o.function for o in offences(source)] == [
        "caught_but_not_converted",
        "inner",
        "handler_for_another_class",
    ]


def test_a_shadowing_import_is_not_a_builtin() -> None:
    assert offences("from .errors import TimeoutError\nraise TimeoutError('x')\n") == []
