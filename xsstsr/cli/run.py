"""The ``xsstsr`` command line.

Exit codes scripts can trust: 0 success, 2 bad usage (argparse), 3 bad input or
model (any :class:`~xsstsr.errors.XsstsrError`, a missing or unreadable file, an
invalid value), 130 interrupted (Ctrl-C or SIGTERM), 1 anything unexpected.

Outputs are written atomically (see :func:`xsstsr.io.write_dataset`): an interrupted
run leaves no partial OUT. SIGTERM is handled like Ctrl-C so the temporary file is
removed; only SIGKILL can leave a hidden ``.OUT.XXXXXXXX.partial`` beside OUT. An
existing OUT is replaced only with ``--overwrite`` (checked before any work).
"""

from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .arguments import (
    EXIT_FAILURE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    UsageError,
    build_parser,
)
from .commands import COMMANDS

if TYPE_CHECKING:
    pass


def cli_words(message: str, flags: frozenset[str] | set[str]) -> str:
    """A library message in the command's words: ``variable=...`` -> ``--variable ...``,
    ``model='sst-x4'`` -> ``--model sst-x4``, ``overwrite=True`` -> ``--overwrite``, for
    the options in ``flags``. Text inside brackets is code (``ds.isel(lat=slice(0, 30))``)
    and stays as it is."""
    if not flags:
        return message

    def flag(match: re.Match[str]) -> str:
        name = "--" + match.group(1).replace("_", "-")
        value, space = match.group(2), match.group(3)
        if name not in flags:
            return match.group(0)
        if value == "True":
            return name + space
        if value == "False":
            negative = f"--no-{name[2:]}"
            return negative + space if negative in flags else match.group(0)
        if value:
            return f"{name} {value[1:-1]}{space}"
        return f"{name} "  # "lat= and" -> "--lat and", "factor=4" -> "--factor 4"

    keyword = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*)=('[^']*'|\"[^\"]*\"|True\b|False\b)?(\s?)")
    out, depth, start = [], 0, 0
    for i, char in enumerate(message):
        if char in "([{":
            if depth == 0:
                out.append(keyword.sub(flag, message[start:i]))
                start = i
            depth += 1
        elif char in ")]}" and depth:
            depth -= 1
            if depth == 0:
                out.append(message[start : i + 1])
                start = i + 1
    rest = message[start:]
    out.append(keyword.sub(flag, rest) if depth == 0 else rest)
    text = "".join(out)
    return text if message[-1:].isspace() else text.rstrip()


@contextmanager
def _warnings_in_cli_words(flags: frozenset[str]) -> Iterator[None]:
    """Show xsstsr's warnings as ``xsstsr: warning: ...`` in the command's words (they
    suggest keywords too), not with the line of Python that raised them."""
    from ..errors import XsstsrWarning

    show = warnings.showwarning

    def shown(
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: Any = None,
        line: str | None = None,
    ) -> None:
        if issubclass(category, XsstsrWarning) or category is UserWarning:
            text = cli_words(str(message), flags)
            print(f"xsstsr: warning: {text}", file=file if file is not None else sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = shown
    try:
        yield
    finally:
        warnings.showwarning = show


_INTERRUPTED = threading.Event()


def interrupt_handler(signum: int, frame: Any) -> None:
    _INTERRUPTED.set()
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (and SIGINT) into KeyboardInterrupt (main thread only), so cleanup code
    runs, and remember that it happened: an interrupt raised inside threading internals can
    surface as another exception, which must still end as "interrupted" (exit 130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {
        sig: signal.signal(sig, interrupt_handler) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``xsstsr`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with 2 on bad usage
    with _sigterm_as_interrupt(), _warnings_in_cli_words(getattr(args, "cli_flags", frozenset())):
        try:
            return _run(args)
        except UsageError as err:
            parser.print_usage(sys.stderr)
            print(f"xsstsr {args.command}: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("xsstsr: interrupted; no partial output was left.", file=sys.stderr)
            return EXIT_INTERRUPTED
        except BaseException:
            if _INTERRUPTED.is_set():
                print("xsstsr: interrupted; no partial output was left.", file=sys.stderr)
                return EXIT_INTERRUPTED
            raise


#: (words of a library message, the flag that does its Python fix on the command line)
FLAGS_FOR_FIXES = (("has no units attribute", "--units degC (or --units K)"),)


def _flag_for(message: str, flags: frozenset[str]) -> str:
    """The command's own way to do a fix the message words in Python, if it has one."""
    for words, fix in FLAGS_FOR_FIXES:
        if words in message and fix.split()[0] in flags:
            return f" On the command line: {fix}."
    return ""


def _run(args: argparse.Namespace) -> int:
    from ..errors import XsstsrError

    try:
        return COMMANDS[args.command](args)
    except (KeyboardInterrupt, UsageError):
        raise
    except Exception as err:
        if _INTERRUPTED.is_set():  # the interrupt surfaced as another error: still 130
            raise KeyboardInterrupt from err
        if isinstance(err, (XsstsrError, OSError, ValueError)):
            # bad input or model: a typed error, a missing/unreadable file, an invalid value
            message = str(err)
            if isinstance(err, XsstsrError):
                flags: frozenset[str] = getattr(args, "cli_flags", frozenset())
                message = cli_words(message, flags) + _flag_for(message, flags)
            print(f"xsstsr: error: {message}", file=sys.stderr)
            return EXIT_INPUT
        traceback.print_exc()
        print(
            "xsstsr: unexpected error (please report it with the output of 'xsstsr versions').",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
