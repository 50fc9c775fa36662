"""The command line: click only, on top of ctrpy.Client."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


def run() -> NoReturn:
    """The ``ctrpy`` program (the console script, ``python -m ctrpy``): imports the command
    line, then :func:`ctrpy.cli.main.run`.  Ctrl-C while Python is still importing (the
    first tenth of a second) is ``ctrpy: interrupted`` and exit 130, as it is later, not a
    traceback from the middle of some import."""
    try:
        from ctrpy.cli.main import run as run_command_line
    except KeyboardInterrupt:
        if sys.stderr is not None:
            print("ctrpy: interrupted", file=sys.stderr, flush=True)
        os._exit(130)
    run_command_line()
