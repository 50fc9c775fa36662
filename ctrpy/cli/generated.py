"""Files generated from the click commands and committed (``completions/``, the man pages):
writing them, and telling when the committed ones are stale (a test fails then).

Each generator is a module with a ``files()`` function (file name -> contents) whose
``main`` calls :func:`main` here: ``python -m MODULE DIR`` writes DIR, ``--check DIR``
exits 1 naming what is out of date.  DIR holds generated files only: one no longer
generated is stale too, and writing removes it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

Files = Callable[[], dict[str, str]]


def stale(files: dict[str, str], directory: Path) -> list[str]:
    """The names in ``directory`` that are missing, differ, or are no longer generated."""
    out = [name for name, text in files.items()
           if not (directory / name).is_file() or (directory / name).read_text(encoding="utf-8") != text]
    if directory.is_dir():
        out += sorted(p.name for p in directory.iterdir() if p.is_file() and p.name not in files)
    return out


def write(files: dict[str, str], directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    for extra in [p for p in directory.iterdir() if p.is_file() and p.name not in files]:
        extra.unlink()
    written = []
    for name, text in files.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None, files: Files, *, prog: str, description: str, target: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("directory", type=Path, help="where the files go")
    parser.add_argument("--check", action="store_true", help="only check that they are up to date")
    args = parser.parse_args(argv)
    if args.check:
        names = stale(files(), args.directory)
        for name in names:
            print(f"{args.directory / name} is out of date; run `{target}`", file=sys.stderr)
        return 1 if names else 0
    for path in write(files(), args.directory):
        print(path)
    return 0
