"""The object every command receives: global options and a lazily opened Client."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

import click

from ctrpy.client import Client
from ctrpy.progress import Event, Warning


@dataclass
class App:
    root: str | None
    namespace: str
    debug: bool = False
    _client: Client | None = field(default=None, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.root, self.namespace, progress=self.plain_sink)
        return self._client

    def plain_sink(self, event: Event) -> None:
        if isinstance(event, Warning):
            click.echo(f"ctrpy: warning: {event.message}", err=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_app = click.make_pass_decorator(App)


