"""The house rules DESIGN.md states, checked over the source: the arrows point one way, and
the library never names a CLI flag (typed errors carry the data; ``ctrpy.cli.main.hint``
adds the words)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import ctrpy

PACKAGE = Path(ctrpy.__file__).parent
LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")


def _module(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _strings(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_library_imports_neither_click_nor_rich(path: Path) -> None:
    for node in ast.walk(_module(path)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        assert not [n for n in names if n.split(".")[0] in ("click", "rich")], f"{path} imports {names}"


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_library_error_or_warning_names_a_cli_flag(path: Path) -> None:
    for node in ast.walk(_module(path)):
        said: list[str] = []
        if isinstance(node, ast.Raise) and node.exc is not None:
            said = _strings(node.exc)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Warn":
            said = _strings(node)
        flags = [m for s in said for m in FLAG.findall(s)]
        assert not flags, f"{path}:{getattr(node, 'lineno', '?')} names {flags} (add a hint in ctrpy/cli/main.py)"


def test_nothing_below_the_client_imports_the_client_or_the_cli() -> None:
    for path in LIBRARY:
        if path.name in ("client.py", "__init__.py", "__main__.py") and path.parent == PACKAGE:
            continue
        for node in ast.walk(_module(path)):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module not in ("ctrpy.client", "ctrpy.cli") and not node.module.startswith(
                    "ctrpy.cli."), f"{path} imports {node.module}"
