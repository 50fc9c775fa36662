"""Rendering progress events for people.  ``plain`` writes ctr's lines; ``none`` nothing."""

from __future__ import annotations

import sys
from typing import TextIO

import click

from ctrpy.progress import Event, UnpackDone, UnpackStarted, Warning


class PlainRenderer:
    """ctr's output: ``unpacking NAME (DIGEST)...done`` on stdout; warnings on stderr."""

    def __init__(self, out: TextIO | None = None, *, unpack_lines: bool = True):
        self.out = out
        self.unpack_lines = unpack_lines

    def __call__(self, event: Event) -> None:
        out = self.out or sys.stdout
        if isinstance(event, Warning):
            click.echo(f"ctrpy: warning: {event.message}", err=True)
        elif isinstance(event, UnpackStarted) and self.unpack_lines:
            out.write(f"unpacking {event.image} ({event.digest})...")
            out.flush()
        elif isinstance(event, UnpackDone) and self.unpack_lines:
            out.write("done\n")
            out.flush()


class QuietRenderer:
    """Only warnings (on stderr); nothing else."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, Warning):
            click.echo(f"ctrpy: warning: {event.message}", err=True)
