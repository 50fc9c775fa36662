"""The object every command receives: global options and a lazily opened Client."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import click

from ctrpy.cli.progress import QuietRenderer, Renderer, choose_renderer, exit_failed
from ctrpy.cli.render import human_size
from ctrpy.progress import Event

if TYPE_CHECKING:
    from ctrpy.client import Client
    from ctrpy.gc import Collected


@dataclass
class App:
    root: str | None
    namespace: str
    debug: bool = False
    snapshotter: str | None = None
    progress: str = "auto"  # --progress: auto | plain | none
    quiet: bool = False  # -q: only data on stdout, as --progress none
    _client: Client | None = field(default=None, repr=False)
    # until a command asks for progress, only warnings reach the user
    renderer: Renderer = field(default_factory=QuietRenderer, repr=False)

    @property
    def client(self) -> Client:
        if self._client is None:
            from ctrpy.client import Client  # the store's code loads for the commands that open it

            self._client = Client(self.root, self.namespace, progress=self._emit)
        return self._client

    def _emit(self, event: Event) -> None:
        self.renderer(event)

    def progress_for(self, operation: str) -> Renderer:
        """Pick the renderer for ``operation`` (``import``, ``export``, ``unpack``, ...) from
        --progress, -q and the terminal, and route the client's events to it.  The one
        place a command gets its progress display; see :mod:`ctrpy.cli.progress`."""
        self.renderer.close()
        self.renderer = choose_renderer(self.progress, operation, quiet=self.quiet)
        return self.renderer

    def freed(self, what: Collected, verb: str = "freed") -> None:
        """Say on stderr what a collection freed (nothing with -q or --progress none)."""
        if self.quiet or self.progress == "none" or not (what.blobs or what.snapshots or what.partial):
            return
        parts = [f"{what.blobs} blob{'s' if what.blobs != 1 else ''}",
                 f"{what.snapshots} snapshot{'s' if what.snapshots != 1 else ''}"]
        if what.partial:
            parts.append(f"{what.partial} partial write{'s' if what.partial != 1 else ''}")
        text = ", ".join(parts[:-1]) + " and " + parts[-1]
        click.echo(f"ctrpy: {verb} {text} ({human_size(what.bytes)})", err=True)

    def close(self, failed: bool = False) -> None:
        try:
            self.renderer.close(failed)
        finally:
            if self._client is not None:
                self._client.close()

    # registered with click's Context.with_resource: closed when the command ends, before
    # an error is reported, so live bars are gone when the error line is printed
    def __enter__(self) -> App:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close(failed=exit_failed(exc_type, exc, tb))


pass_app = click.make_pass_decorator(App)
