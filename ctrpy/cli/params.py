"""Parsing of option values shared by commands (``k=v`` labels, platforms)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import BinaryIO

import click


def parse_labels(values: Iterable[str], *, param: str = "label") -> dict[str, str]:
    """``k=v`` pairs, with ctr's rule (``commands.LabelArgs``): ``k`` alone means ``k=true``;
    ``k=`` (empty value) means 'remove k'.  A pair without a key is a usage error."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not key:
            raise click.BadParameter(f"{item!r} has no key (want key=value, or key for key=true)", param_hint=param)
        out[key] = value if sep else "true"
    return out


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|m|s|ms))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class Duration(click.ParamType):  # type: ignore[type-arg]  # generic only in newer click
    """Go-style durations, as ctr takes them: ``90s``, ``30m``, ``1h30m``, ``0s``."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip()
        if not _DURATION.fullmatch(text):
            self.fail(f"{value!r} is not a duration like 90s, 30m or 1h30m", param, ctx)
        return sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))


def open_input(path: str) -> tuple[BinaryIO, bool]:
    """``-`` is stdin; anything else is opened for reading (errors become one line, exit 1)."""
    if path == "-":
        return stdin_binary(), False
    return open(path, "rb"), True


def stdin_binary() -> BinaryIO:
    return sys.stdin.buffer


def stdout_binary() -> BinaryIO:
    return sys.stdout.buffer
