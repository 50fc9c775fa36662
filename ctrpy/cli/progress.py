"""Rendering progress events for people; the one place that decides how.

The library emits plain data events (:mod:`ctrpy.progress`); a *renderer* turns them into
output.  :func:`choose_renderer` picks one from ``--progress``, ``-q`` and the environment:

- ``RichRenderer`` (``auto`` when stderr is a terminal, or ``FORCE_COLOR`` is set): live bars
  on stderr -- bytes read of the archive, each blob as it is stored, a bar per layer while
  unpacking, bytes written while exporting.  ``NO_COLOR`` drops the colours, not the bars.
- ``PlainRenderer`` (``auto`` without a terminal, or ``plain``): no escape codes, no bars, only
  ctr's ``unpacking NAME (DIGEST)...done`` lines on stdout for the operations that print them.
- ``QuietRenderer`` (``none``, or ``-q``): nothing but warnings, on stderr.

Whatever the renderer, stdout carries the same data: ``unpacking ...done`` lines are written
for ``import`` and ``unpack`` by the rich and plain renderers alike, so a script sees the
same bytes whether or not a person is watching.  Warnings always go to stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, TextIO

import click

from ctrpy.cli.render import human_size, message_line
from ctrpy.progress import (
    ArchiveRead,
    BlobStored,
    BytesWritten,
    Event,
    LayerDone,
    LayerProgress,
    LayerStarted,
    Transfer,
    UnpackDone,
    UnpackStarted,
    Warn,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, Task, TaskID

MODES = ("auto", "plain", "none")
# what each command reports on; only these print ctr's "unpacking ...done" lines on stdout
OPERATIONS = ("import", "export", "unpack", "extract", "flatten", "mount", "convert", "pull", "push", "fetch")
UNPACK_LINE_OPERATIONS = frozenset({"import", "unpack", "pull"})


class Renderer(Protocol):
    """A progress sink with an end: ``close`` stops any live display."""

    @property
    def unpack_lines(self) -> bool:
        """Does it print ctr's ``unpacking NAME (DIGEST)...done`` lines on stdout?"""
        ...

    def __call__(self, event: Event) -> None: ...

    def close(self, failed: bool = False) -> None: ...


TOPIC_HINTS = {"platform": "use --platform or --all-platforms"}


def warning_text(event: Warn) -> str:
    """A warning as the user reads it: the library's words plus the CLI's hint."""
    hint = TOPIC_HINTS.get(event.topic)
    return message_line("ctrpy: warning: ", event.message + (f" ({hint})" if hint else ""))


def unpack_head(event: UnpackStarted, pull: bool) -> str:
    """ctr's line before an unpack: ``unpacking NAME (DIGEST)...`` (import), or for a pull
    ``unpacking PLATFORM DIGEST...``."""
    if pull and event.platform:
        return f"unpacking {event.platform} {event.digest}..."
    return f"unpacking {event.image} ({event.digest})..."


def _warn(event: Warn) -> None:
    click.echo(warning_text(event), err=True)


class QuietRenderer:
    """Only warnings (on stderr); nothing else."""

    unpack_lines = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, Warn):
            _warn(event)

    def close(self, failed: bool = False) -> None:
        pass


class PlainRenderer:
    """ctr's output: ``unpacking NAME (DIGEST)...done`` on stdout; warnings on stderr."""

    def __init__(self, out: TextIO | None = None, *, unpack_lines: bool = True, pull: bool = False):
        self.out = out
        self.unpack_lines = unpack_lines
        self.pull = pull
        self._heads: dict[tuple[str, str], str] = {}

    def __call__(self, event: Event) -> None:
        out = self.out or sys.stdout
        if isinstance(event, Warn):
            _warn(event)
        elif isinstance(event, UnpackStarted) and self.unpack_lines:
            self._heads[(event.image, event.digest)] = unpack_head(event, self.pull)
        elif isinstance(event, UnpackDone) and self.unpack_lines:
            # the whole line once the unpack is done: a failed one leaves no half line on stdout
            head = self._heads.pop((event.image, event.digest), f"unpacking {event.image} ({event.digest})...")
            out.write(f"{head}done\n")
            out.flush()

    def close(self, failed: bool = False) -> None:
        pass


# --------------------------------------------------------------------------- the choice
def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _set(environ: Mapping[str, str], name: str) -> bool:
    """no-color.org and force-color.org: present and not empty, whatever the value."""
    return environ.get(name, "") != ""


def wants_bars(environ: Mapping[str, str], stderr: TextIO) -> bool:
    """``auto``'s question: bars when stderr is a (non-dumb) terminal, or FORCE_COLOR is set."""
    if _set(environ, "FORCE_COLOR"):
        return True
    return is_terminal(stderr) and environ.get("TERM", "").lower() not in ("dumb", "unknown")


def choose_renderer(
    mode: str,
    operation: str,
    *,
    quiet: bool = False,
    environ: Mapping[str, str] | None = None,
    stderr: TextIO | None = None,
) -> Renderer:
    """The renderer for ``operation`` (one of :data:`OPERATIONS`) under ``--progress mode``.

    ``quiet`` (``-q``) wins over ``mode`` and means ``none``.
    """
    if operation not in OPERATIONS:
        raise ValueError(f"unknown progress operation {operation!r}")
    if mode not in MODES:
        raise ValueError(f"unknown progress mode {mode!r}")
    env = os.environ if environ is None else environ
    err = sys.stderr if stderr is None else stderr
    if quiet or mode == "none":
        return QuietRenderer()
    unpack_lines = operation in UNPACK_LINE_OPERATIONS
    if mode == "auto" and wants_bars(env, err):
        # forced onto a log (FORCE_COLOR without a terminal): the bars as they end, no animation
        animate = is_terminal(err) and env.get("TERM", "").lower() not in ("dumb", "unknown")
        return RichRenderer(err, unpack_lines=unpack_lines, no_color=_set(env, "NO_COLOR"), animate=animate,
                            pull=operation == "pull")
    return PlainRenderer(unpack_lines=unpack_lines, pull=operation == "pull")


# --------------------------------------------------------------------------- rich
class RichRenderer:
    """Live bars on stderr.  rich is imported here only, when a terminal is there to see it."""

    def __init__(self, stderr: TextIO, *, unpack_lines: bool, no_color: bool = False, animate: bool = True,
                 pull: bool = False):
        from rich.console import Console

        self.unpack_lines = unpack_lines
        self.pull = pull
        self._heads: dict[tuple[str, str], str] = {}
        self.animate = animate
        # the caller decided that stderr is a terminal (or FORCE_COLOR says to act as one)
        self.console: Console = Console(
            file=stderr, force_terminal=True, no_color=no_color, highlight=False, soft_wrap=True
        )
        self._bars: _Bars | None = None

    def _live(self) -> _Bars:
        if self._bars is None:
            # stdout joins the display only when it is the terminal too; piped, it stays data
            self._bars = _Bars(self.console, redirect_stdout=is_terminal(sys.stdout), animate=self.animate)
        return self._bars

    def __call__(self, event: Event) -> None:
        if isinstance(event, UnpackStarted):
            self._heads[(event.image, event.digest)] = unpack_head(event, self.pull)
        if isinstance(event, Warn):
            self._live().log(warning_text(event), style="yellow")
        elif isinstance(event, UnpackDone):
            if self.unpack_lines:
                # the whole line at once, as the plain renderer writes it
                head = self._heads.pop((event.image, event.digest), f"unpacking {event.image} ({event.digest})...")
                sys.stdout.write(f"{head}done\n")
                sys.stdout.flush()
        else:
            self._live().handle(event)

    def close(self, failed: bool = False) -> None:
        if self._bars is not None:
            self._bars.stop(failed)
            self._bars = None


class _Bars:
    """One rich Progress: a task for the archive read, one per layer, one for the export."""

    def __init__(self, console: Console, *, redirect_stdout: bool, animate: bool = True):
        from rich.file_proxy import FileProxy
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
        from rich.table import Column

        class Proxy(FileProxy):
            """rich's FileProxy says its encoding is None (io.TextIOBase's), so click.echo
            takes it for a misconfigured stream and writes around it, into the bars."""

            @property
            def encoding(self) -> str:  # type: ignore[override]
                return getattr(self.rich_proxied_file, "encoding", None) or "utf-8"

            @property
            def errors(self) -> str | None:  # type: ignore[override]
                return getattr(self.rich_proxied_file, "errors", None)

        def text(field: str, max_width: int | None = None) -> TextColumn:
            column = Column(no_wrap=True, overflow="ellipsis", max_width=max_width)
            return TextColumn(field, markup=False, table_column=column)

        # fits 80 columns: description, bar, percentage, bytes, entries/blobs
        self.progress: Progress = Progress(
            text("{task.description}", max_width=max(16, console.width // 3)),
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            text("{task.fields[size]}"),
            text("{task.fields[detail]}"),
            console=console,
            auto_refresh=animate,
            transient=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self.progress.start()
        # while the bars are up, what else is written to the terminal goes above them; stdout
        # only when it is that terminal (piped, it carries data and is left alone)
        self._saved = (sys.stdout, sys.stderr)
        if redirect_stdout:
            sys.stdout = Proxy(console, sys.stdout)
        sys.stderr = Proxy(console, sys.stderr)
        self._archive: TaskID | None = None
        self._blobs = 0
        self._written: TaskID | None = None
        self._layers: dict[tuple[str, int], tuple[TaskID, int]] = {}  # -> (task, layer size)
        self._entries: dict[tuple[str, int], int] = {}
        self._transfers: dict[str, TaskID] = {}  # ref -> task, one bar per blob moved

    def log(self, text: str, style: str = "") -> None:
        """A line above the bars, kept in the scrollback."""
        from rich.text import Text

        self.progress.console.print(Text(text, style=style))

    def _task(self, task_id: TaskID) -> Task:
        return next(t for t in self.progress.tasks if t.id == task_id)

    def _complete(self, task_id: TaskID) -> None:
        """A task without a total is done: what it counted is the whole."""
        task = self._task(task_id)
        if task.total is None:
            whole = max(task.completed, 1)
            self.progress.update(task_id, total=whole, completed=whole)

    def handle(self, event: Event) -> None:
        p = self.progress
        if isinstance(event, ArchiveRead):
            text = _bytes(event.done, event.total)
            if self._archive is None:
                self._archive = p.add_task("archive", total=event.total, size=text, detail="")
            p.update(self._archive, completed=event.done, total=event.total, size=text)
        elif isinstance(event, BlobStored):
            self._blobs += 1
            state = "stored " if event.new else "present"
            # the member name says something when it is not just blobs/sha256/<hex>
            where = "" if event.path.endswith(event.digest.partition(":")[2]) else f"  {event.path}"
            self.log(f"{state} {_short(event.digest)} {human_size(event.size):>10}{where}",
                     style="green" if event.new else "dim")
            if self._archive is not None:
                p.update(self._archive, detail=f"{self._blobs} blob{'' if self._blobs == 1 else 's'}")
        elif isinstance(event, UnpackStarted):
            if self._archive is not None:  # the archive has been read to its end
                self._complete(self._archive)
        elif isinstance(event, LayerStarted):
            task = p.add_task(f"{event.index + 1}/{event.count} {event.image}", total=None,
                              size="", detail="")
            self._layers[(event.image, event.index)] = (task, event.size)
        elif isinstance(event, LayerProgress):
            key = (event.image, event.index)
            if key not in self._layers:
                return
            task, layer_size = self._layers[key]
            self._entries[key] = event.entries
            unpacked, detail = human_size(event.bytes), f"{event.entries} entries"
            if event.compressed_done > 0 and layer_size > 0:
                p.update(task, total=layer_size, completed=min(event.compressed_done, layer_size),
                         size=unpacked, detail=detail)
            else:
                p.update(task, size=unpacked, detail=detail)
        elif isinstance(event, LayerDone):
            key = (event.image, event.index)
            if key not in self._layers:
                return
            task, layer_size = self._layers[key]
            detail = "present" if event.skipped else f"{self._entries.get(key, 0)} entries"
            whole = max(layer_size, 1)
            p.update(task, total=whole, completed=whole, detail=detail)
        elif isinstance(event, Transfer):
            text = _bytes(event.done, event.total)
            if event.ref not in self._transfers:
                self._transfers[event.ref] = p.add_task(event.ref, total=event.total, size=text, detail=event.state)
            task = self._transfers[event.ref]
            p.update(task, completed=event.done, total=event.total, size=text, detail=event.state)
            if event.finished:
                self._complete(task)
        elif isinstance(event, BytesWritten):
            text = _bytes(event.done, event.total)
            if self._written is None:
                self._written = p.add_task("writing archive", total=event.total, size=text, detail="")
            p.update(self._written, completed=event.done, total=event.total, size=text)

    def stop(self, failed: bool) -> None:
        """Leave the bars on the screen as they ended; completed ones full, unless it failed."""
        if not failed:
            for task in self.progress.tasks:
                self._complete(task.id)
        try:
            for stream in (sys.stdout, sys.stderr):
                if stream not in self._saved:
                    stream.flush()
        finally:
            sys.stdout, sys.stderr = self._saved
            self.progress.stop()


def _bytes(done: int, total: int | None) -> str:
    """``12.3 MiB``, or ``12.3/40.0 MiB`` in the unit of the total."""
    if not total:
        return human_size(done)
    number, unit = human_size(total).split(" ")
    scale = 1024 ** ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB").index(unit)
    return f"{done / scale:.1f}/{number} {unit}"


def _short(dgst: str) -> str:
    algo, _, hexpart = dgst.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else dgst


def exit_failed(exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
    """Did a command end by an error?  click ends a successful command with Exit(0)."""
    del tb
    if exc_type is None:
        exc = sys.exc_info()[1]  # click < 8.2 does not pass the exception on
        if exc is None:
            return False
    if isinstance(exc, click.exceptions.Exit):
        return exc.exit_code != 0
    return True
