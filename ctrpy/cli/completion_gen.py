"""Generate the shell completion scripts into ``completions/`` (``make completions``).

    python -m ctrpy.cli.completion_gen completions          # write them
    python -m ctrpy.cli.completion_gen --check completions  # exit 1 if they are stale

They are what ``ctrpy completion SHELL`` prints, written for packagers; being generated from
the commands, they are not committed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ctrpy.cli import generated
from ctrpy.cli.completion import PROG_NAME, SHELLS, completion_source


def scripts() -> dict[str, str]:
    """File name -> contents: ``ctrpy.bash``, ``ctrpy.zsh``, ``ctrpy.fish``."""
    from ctrpy.cli.main import cli

    return {f"{PROG_NAME}.{shell}": completion_source(shell, cli) for shell in SHELLS}


def stale(directory: Path) -> list[str]:
    """The names of the scripts in ``directory`` that are missing or differ."""
    return generated.stale(scripts(), directory)


def main(argv: Sequence[str] | None = None) -> int:
    return generated.main(argv, scripts, prog="python -m ctrpy.cli.completion_gen",
                          description=__doc__.split("\n")[0], target="make completions")


if __name__ == "__main__":
    sys.exit(main())
