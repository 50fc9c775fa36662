"""``label`` of images, blobs, namespaces and snapshots: one command, four targets.

Each is ``label TARGET [LABELS]...`` with ctr's ``k=v`` rule (``k`` alone is ``k=true``,
``k=`` removes ``k``) and prints the labels the target has afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ctrpy.cli.context import App, pass_app
from ctrpy.cli.group import example_block
from ctrpy.cli.params import parse_labels
from ctrpy.cli.render import labels_cell

Setter = Callable[[App, str, dict[str, str]], dict[str, str]]


def label_command(
    *, metavar: str, noun: str, example: str, set_labels: Setter, complete: Callable[..., Any] | None = None,
) -> click.Command:
    """A ``label`` command for ``noun`` (``an image``): ``set_labels(app, target, changes)``
    applies the changes and returns the resulting labels."""

    @click.command("label", help=f"Set (k=v) or remove (k=) labels on {noun}; prints the resulting labels.\n\n"
                                 + example_block((example,)))
    @click.argument("target", metavar=metavar, shell_complete=complete)
    @click.argument("labels", nargs=-1)
    @pass_app
    def label(app: App, target: str, labels: tuple[str, ...]) -> None:
        click.echo(labels_cell(set_labels(app, target, parse_labels(labels, param="LABELS"))))

    return label
