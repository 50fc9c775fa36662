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


def _scaled(n: int, base: int, units: tuple[str, ...]) -> tuple[float, str]:
    value = float(n)
    unit = 0
    while value >= base and unit < len(units) - 1:
        value /= base
        unit += 1
    return value, units[unit]


def human_size(n: int | None) -> str:
    """Sizes as ctr prints them: ``219.4 MiB``, ``512.0 B``; ``-`` when unknown."""
    if n is None:
        return "-"
    value, unit = _scaled(n, 1024, _UNITS)
    return f"{value:.1f} {unit}"


_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def go_human_size(n: int) -> str:
    """docker/go-units' HumanSize, which ``ctr content ls`` prints: four significant
    digits, decimal units, no space (``63.37MB``, ``1.298kB``, ``92B``)."""
    value, unit = _scaled(n, 1000, _DECIMAL_UNITS)
    return f"{value:.4g}{unit}"


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
    h = int(seconds / 3600 + 0.5)
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
    return f"{int(seconds / 3600) // 24 // 365} years"


def age(timestamp: str, now: datetime | None = None) -> str:
    try:
        t = datetime.strptime(timestamp[:26], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    except ValueError:
        return "-"
    return human_duration(((now or datetime.now(UTC)) - t).total_seconds())


def labels_cell(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "-"


def tabwriter(lines: Sequence[Sequence[str]], padchar: str = " ", minwidth: int = 1, tabwidth: int = 8,
              padding: int = 1) -> str:
    """Go's text/tabwriter (flags 0), which ctr prints its tables through.  Each line is
    its cells: every cell but the last was tab-terminated; the last is the text before
    the newline and belongs to no column.  A column is formed by consecutive lines that
    have a terminated cell in it, as wide as its widest cell plus ``padding``; with
    ``padchar`` a tab, cells are padded with tabs to that width rounded up to
    ``tabwidth``.  A line of one cell ends the block (Go flushes there)."""
    out: list[str] = []
    widths: list[int] = []

    def pad(text_width: int, cell_width: int) -> None:
        if padchar == "\t":
            cell_width = -(-cell_width // tabwidth) * tabwidth
            out.append("\t" * -(-(cell_width - text_width) // tabwidth))
        else:
            out.append(padchar * (cell_width - text_width))

    def write_lines(block: Sequence[Sequence[str]], line0: int, line1: int) -> None:
        for line in block[line0:line1]:
            for j, cell in enumerate(line):
                out.append(cell)
                if j < len(widths):
                    pad(len(cell), widths[j])
            out.append("\n")

    def format_block(block: Sequence[Sequence[str]], line0: int, line1: int) -> None:
        column = len(widths)
        this = line0
        while this < line1:
            if column >= len(block[this]) - 1:
                this += 1
                continue
            write_lines(block, line0, this)
            line0 = this
            width = minwidth
            while this < line1 and column < len(block[this]) - 1:
                width = max(width, len(block[this][column]) + padding)
                this += 1
            widths.append(width)
            format_block(block, line0, this)
            widths.pop()
            line0 = this
        write_lines(block, line0, line1)

    start = 0
    for i, line in enumerate(lines):
        if len(line) == 1 or i == len(lines) - 1:
            format_block(lines[start:i + 1], 0, i + 1 - start)
            start = i + 1
    return "".join(out)


def table(
    out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]], *,
    padchar: str = " ", header_end: str = "\t", row_end: str = "\t",
) -> None:
    """A ctr table: the lines ctr prints with ``fmt.Fprintf(tw, ...)`` through
    ``tabwriter.NewWriter(os.Stdout, 1, 8, 1, padchar, 0)``.  ``header_end``/``row_end``
    is a tab where ctr ends that line's last cell with one (``images ls``: every column
    padded, the last too) and ``""`` where it does not (``content ls``, the rows of
    ``images check``: the last cell as it is)."""
    lines = [[*header, ""] if header_end else list(header)]
    lines += [[*row, ""] if row_end else list(row) for row in rows]
    out.write(tabwriter(lines, padchar))


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
    **table_options: str,
) -> None:
    """The one way a list command prints: ``-q`` the names (of the records ``quiet_keeps``
    keeps, when given), ``--json`` the envelope, else ctr's table (``table_options`` as
    :func:`table` takes them).  ``detail`` turns a
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
        table(sys.stdout, header, [row(d) for d in details], **table_options)
