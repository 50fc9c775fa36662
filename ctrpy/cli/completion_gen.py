"""Generate the shell completion scripts kept in ``completions/`` (``make completions``).

    python -m ctrpy.cli.completion_gen completions          # write them
    python -m ctrpy.cli.completion_gen --check completions  # exit 1 if they are stale

They are what ``ctrpy completion SHELL`` prints; a test fails when the committed files
differ from a fresh generation.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ctrpy.cli.completion import PROG_NAME, SHELLS, completion_source


def scripts() -> dict[str, str]:
    """File name -> contents: ``ctrpy.bash``, ``ctrpy.zsh``, ``ctrpy.fish``."""
    from ctrpy.cli.main import cli

    return {f"{PROG_NAME}.{shell}": completion_source(shell, cli) for shell in SHELLS}


def stale(directory: Path) -> list[str]:
    """The names of the scripts in ``directory`` that are missing or differ."""
    out = []
    for name, text in scripts().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            out.append(name)
    return out


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in scripts().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ctrpy.cli.completion_gen", description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path, help="where the scripts go, e.g. completions")
    parser.add_argument("--check", action="store_true", help="only check that they are up to date")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(args.directory)
        for name in names:
            print(f"{args.directory / name} is out of date; run `make completions`", file=sys.stderr)
        return 1 if names else 0
    for path in write(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
