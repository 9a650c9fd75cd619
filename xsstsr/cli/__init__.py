"""The ``xsstsr`` command: quickstart, downscale, fit, evaluate, models, versions.

:func:`main` parses (:mod:`.arguments`), opens what the user named (:mod:`.inputs`) and runs
a command (:mod:`.commands`); errors come back in the command line's words, with an exit
code per kind of failure.
"""

from __future__ import annotations

from .arguments import EXIT_CODES, build_parser
from .commands import COMMANDS
from .inputs import open_input, with_units
from .run import cli_words, main

__all__ = [
    "COMMANDS",
    "EXIT_CODES",
    "build_parser",
    "cli_words",
    "main",
    "open_input",
    "with_units",
]
