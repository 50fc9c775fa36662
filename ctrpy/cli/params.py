"""Parsing of option values shared by commands (``k=v`` labels, platforms)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import BinaryIO

import click


def parse_labels(values: Iterable[str], *, param: str = "label") -> dict[str, str]:
    """``k=v`` pairs; ``k=`` (empty value) means 'remove k'.  A bad pair is a usage error."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not of the form key=value", param_hint=param)
        out[key] = value
    return out


def open_input(path: str) -> tuple[BinaryIO, bool]:
    """``-`` is stdin; anything else is opened for reading (errors become one line, exit 1)."""
    if path == "-":
        return stdin_binary(), False
    return open(path, "rb"), True


def stdin_binary() -> BinaryIO:
    return sys.stdin.buffer


def stdout_binary() -> BinaryIO:
    return sys.stdout.buffer
