"""The object every command receives: global options and a lazily opened Client."""

from __future__ import annotations

from dataclasses import dataclass, field

import click

from ctrpy.cli.progress import QuietRenderer
from ctrpy.client import Client
from ctrpy.progress import Event, Sink


@dataclass
class App:
    root: str | None
    namespace: str
    debug: bool = False
    snapshotter: str | None = None
    _client: Client | None = field(default=None, repr=False)

    sink: Sink = field(default_factory=lambda: QuietRenderer())

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.root, self.namespace, progress=self._emit)
        return self._client

    def _emit(self, event: Event) -> None:
        self.sink(event)

    def use_progress(self, sink: Sink) -> None:
        """Route the client's progress events to ``sink`` from now on."""
        self.sink = sink

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_app = click.make_pass_decorator(App)


