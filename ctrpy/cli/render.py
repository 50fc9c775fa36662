"""Turning data into text: ctr-style tables, sizes, ages, and the --json envelope."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

import click

from ctrpy.errors import printable, shorten

R = TypeVar("R")
D = TypeVar("D")

JSON_SCHEMA_VERSION = 1

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

MESSAGE_LINE = 1000
"""The longest ``ctrpy: error: ...`` or ``ctrpy: warning: ...`` line, in characters."""


def message_line(prefix: str, text: str) -> str:
    """``prefix + text`` as one line of at most MESSAGE_LINE characters: whatever a message
    quotes from an archive (an image name, a media type, a digest), it cannot break the
    line nor make it kilobytes long; the start and the end of a long one are kept."""
    return prefix + shorten(printable(text), MESSAGE_LINE - len(prefix))


def human_size(n: int | None) -> str:
    """Sizes as ctr prints them: ``219.4 MiB``, ``512.0 B``; ``-`` when unknown."""
    if n is None:
        return "-"
    value = float(n)
    unit = 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {_UNITS[unit]}"


def human_duration(seconds: float) -> str:
    """Go's docker/go-units HumanDuration, which ``ctr content ls`` uses for AGE."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    m = s // 60
    if m == 1:
        return "About a minute"
    if m < 60:
        return f"{m} minutes"
    h = round(seconds / 3600)
    if h == 1:
        return "About an hour"
    if h < 48:
        return f"{h} hours"
    if h < 24 * 7 * 2:
        return f"{h // 24} days"
    if h < 24 * 30 * 2:
        return f"{h // 24 // 7} weeks"
    if h < 24 * 365 * 2:
        return f"{h // 24 // 30} months"
    return f"{h // 24 // 365} years"


def age(timestamp: str, now: datetime | None = None) -> str:
    try:
        t = datetime.strptime(timestamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return "-"
    return human_duration(((now or datetime.now(UTC)) - t).total_seconds())


def labels_cell(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Like Go's tabwriter(minwidth 1, tabwidth 8, padding 1), every cell tab-terminated."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    for row in (header, *rows):
        out.write("".join(cell.ljust(widths[i] + 1) for i, cell in enumerate(row)) + "\n")


def json_envelope(kind: str, items: list[dict[str, Any]]) -> str:
    """The one ``--json`` shape: ``{"schemaVersion": 1, "kind": ..., "items": [...]}``."""
    return json.dumps(
        {"schemaVersion": JSON_SCHEMA_VERSION, "kind": kind, "items": items}, indent=2, sort_keys=False
    )


def listing(
    records: Sequence[R],
    detail: Callable[[R], D],
    *,
    quiet: bool,
    as_json: bool,
    kind: str,
    name: Callable[[R], str],
    header: Sequence[str],
    row: Callable[[D], Sequence[str]],
    to_json: Callable[[D], dict[str, Any]],
    quiet_keeps: Callable[[D], bool] | None = None,
) -> None:
    """The one way a list command prints: ``-q`` the names (of the records ``quiet_keeps``
    keeps, when given), ``--json`` the envelope, else ctr's table.  ``detail`` turns a
    record into what the table and the JSON show (e.g. an image's size); ``-q`` without
    ``quiet_keeps`` never computes it."""
    if quiet:
        for record in records:
            if quiet_keeps is None or quiet_keeps(detail(record)):
                click.echo(name(record))
        return
    details = [detail(r) for r in records]
    if as_json:
        click.echo(json_envelope(kind, [to_json(d) for d in details]))
    else:
        table(sys.stdout, header, [row(d) for d in details])
