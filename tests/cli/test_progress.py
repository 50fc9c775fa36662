"""Progress and the script interface: --progress auto|plain|none, -q, and which renderer runs.

Through click's CliRunner stderr is never a terminal, so ``auto`` means plain here; what a
terminal shows is tested for real, under a pseudo-terminal, in test_terminal.py.
"""

from __future__ import annotations

import io
from pathlib import Path

import click
import pytest
from click.testing import Result

from ctrpy import progress as ev
from ctrpy.cli.progress import PlainRenderer, QuietRenderer, RichRenderer, choose_renderer
from tests.builders import docker_save_tar, file
from tests.helpers import COMMAND_TREE, OTHER_ARCH, Cli, host_image, named_archive

NAME = "example.com/demo/app:v1"


def app_archive(tmp_path: Path, name: str = NAME) -> Path:
    path = tmp_path / "app.tar"
    path.write_bytes(named_archive(
        (host_image([file("etc/motd", b"hello\n")], [file("bin/app", b"app", mode=0o755)]), name),
        platform=True,
    ))
    return path


def imported_digest(run: Cli) -> str:
    (item,) = run.images_json()
    digest: str = item["target"]["digest"]
    return digest


def do_import(run: Cli, *global_opts: str, env: dict[str, str] | None = None) -> Result:
    archive = app_archive(run.workdir)
    return run(*global_opts, "images", "import", "--snapshotter", "native", str(archive), env=env)


# --------------------------------------------------------------------------- stdout: data
@pytest.mark.parametrize(
    ("opts", "unpacking"),
    [((), True), (("--progress", "plain"), True), (("-q",), False), (("--progress", "none"), False)],
    ids=[
        "auto_without_a_terminal_prints_ctrs_unpacking_lines_on_stdout",
        "progress_plain_prints_ctrs_unpacking_lines",
        "quiet_import_prints_only_the_image_names",
        "progress_none_prints_nothing_but_the_image_names",
    ],
)
def test_import_prints_in_each_mode(run: Cli, opts: tuple[str, ...], unpacking: bool) -> None:
    out = do_import(run, *opts)
    assert out.exit_code == 0, out.stderr
    assert out.stdout == (f"unpacking {NAME} ({imported_digest(run)})...done\n" if unpacking else f"{NAME}\n")
    assert out.stderr == ""


def test_quiet_long_option_is_the_same_as_q(run: Cli, tmp_path: Path) -> None:
    out = do_import(run, "--quiet")
    assert (out.exit_code, out.stdout, out.stderr) == (0, f"{NAME}\n", "")


def test_quiet_wins_over_progress_plain(run: Cli, tmp_path: Path) -> None:
    out = do_import(run, "--progress", "plain", "-q")
    assert (out.exit_code, out.stdout) == (0, f"{NAME}\n")


def test_ctrpy_progress_in_the_environment_chooses_the_mode(run: Cli, tmp_path: Path) -> None:
    out = do_import(run, env={"CTRPY_PROGRESS": "none"})
    assert (out.exit_code, out.stdout, out.stderr) == (0, f"{NAME}\n", "")


def test_the_progress_option_wins_over_the_environment(run: Cli, tmp_path: Path) -> None:
    out = do_import(run, "--progress", "plain", env={"CTRPY_PROGRESS": "none"})
    assert out.stdout.startswith(f"unpacking {NAME} (")


def test_an_unknown_progress_mode_is_a_usage_error(run: Cli, tmp_path: Path) -> None:
    out = run("--progress", "fancy", "images", "ls")
    assert out.exit_code == 2
    assert "'fancy' is not one of 'auto', 'plain', 'none'" in out.stderr


@pytest.mark.parametrize("opts", [(), ("--progress", "plain"), ("--progress", "none"), ("-q",)])
def test_import_without_unpack_prints_the_names_in_every_mode(run: Cli, tmp_path: Path, opts: tuple[str, ...]) -> None:
    archive = app_archive(tmp_path)
    out = run(*opts, "images", "import", "--no-unpack", str(archive))
    assert (out.exit_code, out.stdout, out.stderr) == (0, f"{NAME}\n", "")


def test_import_from_stdin_prints_the_same_as_from_a_file(run: Cli, tmp_path: Path) -> None:
    data = app_archive(tmp_path).read_bytes()
    out = run("images", "import", "--snapshotter", "native", "-", input=data)
    assert out.exit_code == 0, out.stderr
    assert out.stdout == f"unpacking {NAME} ({imported_digest(run)})...done\n"


def test_unpack_prints_ctrs_unpacking_line(run: Cli, tmp_path: Path) -> None:
    archive = app_archive(tmp_path)
    assert run("images", "import", "--no-unpack", str(archive)).exit_code == 0
    out = run("images", "unpack", "--snapshotter", "native", NAME)
    assert out.exit_code == 0, out.stderr
    assert out.stdout == f"unpacking {NAME} ({imported_digest(run)})...done\n"


@pytest.mark.parametrize(
    "args", [("-q", "images", "unpack"), ("images", "unpack", "--quiet")],
    ids=["global", "after_the_command_as_the_global_one"],
)
def test_quiet_unpack_prints_nothing(run: Cli, tmp_path: Path, args: tuple[str, ...]) -> None:
    archive = app_archive(tmp_path)
    assert run("images", "import", "--no-unpack", str(archive)).exit_code == 0
    out = run(*args, "--snapshotter", "native", NAME)
    assert (out.exit_code, out.stdout, out.stderr) == (0, "", "")


def test_extract_prints_no_unpacking_lines(run: Cli, tmp_path: Path) -> None:
    archive = app_archive(tmp_path)
    assert run("images", "import", "--no-unpack", str(archive)).exit_code == 0
    out = run("images", "extract", NAME, str(tmp_path / "rootfs"))
    assert (out.exit_code, out.stdout, out.stderr) == (0, "", "")
    assert (tmp_path / "rootfs" / "etc" / "motd").read_bytes() == b"hello\n"


def test_export_to_stdout_writes_only_the_archive(run: Cli, tmp_path: Path) -> None:
    archive = app_archive(tmp_path)
    assert run("images", "import", "--no-unpack", str(archive)).exit_code == 0
    assert run("images", "export", str(tmp_path / "out.tar"), NAME).exit_code == 0
    out = run.ok("images", "export", "-", NAME)
    assert out.stdout_bytes == (tmp_path / "out.tar").read_bytes()
    assert out.stderr == ""


@pytest.mark.parametrize("opts", [(), ("-q",), ("--progress", "none")])
def test_warnings_reach_stderr_in_every_mode(run: Cli, tmp_path: Path, opts: tuple[str, ...]) -> None:
    other = OTHER_ARCH
    archive = tmp_path / "two.tar"
    archive.write_bytes(docker_save_tar([
        (host_image([file("a")]), ["a:1"]),
        (host_image([file("b")], architecture=other, variant=None), ["b:1"]),
    ]))
    out = run(*opts, "images", "import", "--no-unpack", str(archive))
    assert out.exit_code == 0, out.stderr
    assert out.stdout == "docker.io/library/a:1\n"
    assert out.stderr.startswith("ctrpy: warning: skipping docker.io/library/b:1")


# --------------------------------------------------------------------------- the choice
class FakeStream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("operation", ["import", "export", "unpack", "extract", "flatten", "mount"])
def test_auto_draws_bars_when_stderr_is_a_terminal(operation: str) -> None:
    renderer = choose_renderer("auto", operation, environ={"TERM": "xterm"}, stderr=FakeStream(tty=True))
    assert isinstance(renderer, RichRenderer)


@pytest.mark.parametrize(
    ("environ", "tty", "renderer"),
    [
        ({"TERM": "xterm"}, False, PlainRenderer),
        ({"TERM": "dumb"}, True, PlainRenderer),
        ({"FORCE_COLOR": "1"}, False, RichRenderer),
        ({"FORCE_COLOR": ""}, False, PlainRenderer),
    ],
    ids=[
        "auto_is_plain_when_stderr_is_not_a_terminal",
        "auto_is_plain_on_a_dumb_terminal",
        "force_color_draws_bars_without_a_terminal",
        "an_empty_force_color_is_not_set",
    ],
)
def test_auto_chooses_by_terminal_and_environment(environ: dict[str, str], tty: bool, renderer: type) -> None:
    assert isinstance(choose_renderer("auto", "import", environ=environ, stderr=FakeStream(tty=tty)), renderer)


def test_force_color_without_a_terminal_draws_the_bars_once_without_animating_them() -> None:
    renderer = choose_renderer("auto", "import", environ={"FORCE_COLOR": "1"}, stderr=FakeStream(tty=False))
    assert isinstance(renderer, RichRenderer)
    assert not renderer.animate
    on_terminal = choose_renderer("auto", "import", environ={"TERM": "xterm"}, stderr=FakeStream(tty=True))
    assert isinstance(on_terminal, RichRenderer)
    assert on_terminal.animate


def test_no_color_keeps_the_bars_and_drops_the_colours() -> None:
    renderer = choose_renderer(
        "auto", "import", environ={"TERM": "xterm", "NO_COLOR": "1"}, stderr=FakeStream(tty=True)
    )
    assert isinstance(renderer, RichRenderer)
    assert renderer.console.no_color


@pytest.mark.parametrize("env", [{"FORCE_COLOR": "1"}, {"TERM": "xterm"}])
def test_plain_never_draws_bars(env: dict[str, str]) -> None:
    renderer = choose_renderer("plain", "import", environ=env, stderr=FakeStream(tty=True))
    assert isinstance(renderer, PlainRenderer)


@pytest.mark.parametrize("mode", ["auto", "plain", "none"])
def test_quiet_renders_only_warnings_whatever_the_mode(mode: str) -> None:
    renderer = choose_renderer(mode, "import", quiet=True, environ={"FORCE_COLOR": "1"}, stderr=FakeStream(tty=True))
    assert isinstance(renderer, QuietRenderer)


@pytest.mark.parametrize(("operation", "lines"), [
    ("import", True), ("unpack", True), ("export", False), ("extract", False), ("flatten", False), ("mount", False),
])
def test_only_import_and_unpack_print_unpacking_lines(operation: str, lines: bool) -> None:
    assert choose_renderer("plain", operation).unpack_lines is lines
    renderer = choose_renderer("auto", operation, environ={"TERM": "xterm"}, stderr=FakeStream(tty=True))
    assert renderer.unpack_lines is lines


def test_an_unknown_operation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown progress operation"):
        choose_renderer("auto", "frobnicate")


# --------------------------------------------------------------------------- the rich renderer
IMG = "app:v1"  # short: the renderer writes to an 80-column console
IMPORT_EVENTS: list[ev.Event] = [
    ev.ArchiveRead(4, 40 << 20),
    ev.BlobStored("sha256:" + "a" * 64, 20 << 20, "blobs/sha256/" + "a" * 64, new=True),
    ev.BlobStored("sha256:" + "b" * 64, 512, "blobs/sha256/" + "b" * 64, new=False),
    ev.ArchiveRead(40 << 20, 40 << 20),
    ev.UnpackStarted(IMG, "sha256:" + "c" * 64, 2),
    ev.LayerStarted(IMG, 0, 2, "sha256:" + "a" * 64, 20 << 20),
    ev.LayerProgress(IMG, 0, 0, 7, 30 << 20),
    ev.LayerDone(IMG, 0, "sha256:" + "d" * 64, skipped=False),
    ev.LayerStarted(IMG, 1, 2, "sha256:" + "e" * 64, 100),
    ev.LayerDone(IMG, 1, "sha256:" + "f" * 64, skipped=True),
    ev.UnpackDone(IMG, "sha256:" + "c" * 64),
]


def rich_output(events: list[ev.Event], operation: str = "import", *, failed: bool = False) -> str:
    err = FakeStream(tty=True)
    renderer = choose_renderer("auto", operation, environ={"TERM": "xterm"}, stderr=err)
    for event in events:
        renderer(event)
    renderer.close(failed)
    return err.getvalue()


def test_rich_import_shows_the_archive_read_with_its_total() -> None:
    out = rich_output(IMPORT_EVENTS)
    assert "archive" in out
    assert "40.0/40.0 MiB" in out


def test_rich_import_shows_each_blob_as_it_is_stored() -> None:
    out = rich_output(IMPORT_EVENTS)
    assert "stored  sha256:aaaaaaaaaaaa   20.0 MiB" in out
    assert "present sha256:bbbbbbbbbbbb    512.0 B" in out


def test_rich_unpack_shows_a_bar_per_layer_with_bytes_and_entries() -> None:
    out = rich_output(IMPORT_EVENTS)
    assert f"1/2 {IMG}" in out and f"2/2 {IMG}" in out
    assert "30.0 MiB" in out and "7 entries" in out
    assert "present" in out  # the second layer was unpacked before
    assert "100%" in out


def test_rich_layer_bars_show_a_percentage_when_the_compressed_bytes_read_are_known() -> None:
    out = rich_output([
        ev.LayerStarted(IMG, 0, 1, "sha256:" + "a" * 64, 1000),
        ev.LayerProgress(IMG, 0, 500, 3, 4000),
    ], failed=True)
    assert " 50%" in out and "3 entries" in out


def test_rich_renderer_writes_the_unpacking_line_to_stdout_not_into_the_bars(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = rich_output(IMPORT_EVENTS)
    assert capsys.readouterr().out == f"unpacking {IMG} ({'sha256:' + 'c' * 64})...done\n"
    assert "unpacking" not in out


def test_rich_export_shows_bytes_written_of_the_total() -> None:
    out = rich_output([ev.BytesWritten(0, 3 << 20), ev.BytesWritten(3 << 20, 3 << 20)], "export")
    assert "writing archive" in out and "3.0/3.0 MiB" in out and "100%" in out


def test_rich_transfer_shows_a_bar_per_blob_with_its_state_and_bytes() -> None:
    layer, config = "layer-sha256:" + "a" * 12, "config-sha256:" + "b" * 12
    out = rich_output([
        ev.Transfer(layer, "sha256:" + "a" * 64, "waiting", 0, 2 << 20),
        ev.Transfer(config, "sha256:" + "b" * 64, "exists", 300, 300),
        ev.Transfer(layer, "sha256:" + "a" * 64, "downloading", 1 << 20, 2 << 20),
    ], "pull", failed=True)
    assert layer in out and "downloading" in out and "1.0/2.0 MiB" in out and " 50%" in out
    assert config in out and "exists" in out


def test_rich_transfer_of_unknown_size_completes_when_done() -> None:
    ref = "layer-sha256:" + "c" * 12
    out = rich_output([ev.Transfer(ref, "sha256:" + "c" * 64, "uploading", 5 << 20),
                       ev.Transfer(ref, "sha256:" + "c" * 64, "done", 6 << 20)], "push")
    assert "done" in out and "100%" in out


def test_rich_archive_read_from_a_pipe_completes_when_the_import_succeeds() -> None:
    out = rich_output([ev.ArchiveRead(4, None), ev.ArchiveRead(5 << 20, None)])
    assert "5.0 MiB" in out and "100%" in out


def test_rich_archive_read_from_a_pipe_stays_unfinished_when_the_import_fails() -> None:
    out = rich_output([ev.ArchiveRead(4, None), ev.ArchiveRead(5 << 20, None)], failed=True)
    assert "5.0 MiB" in out and "100%" not in out


def test_rich_warnings_are_printed_above_the_bars() -> None:
    out = rich_output([ev.ArchiveRead(4, 10), ev.Warn("skipping x: no manifest")])
    assert "ctrpy: warning: skipping x: no manifest" in out


def test_rich_renderer_draws_nothing_before_the_first_event() -> None:
    assert rich_output([], "flatten") == ""


# --------------------------------------------------------------------------- -q after the command
def test_import_takes_q_after_the_command_as_docker_load_does(run: Cli, tmp_path: Path) -> None:
    out = run("images", "import", "-q", "--snapshotter", "native", str(app_archive(run.workdir)))
    assert (out.exit_code, out.stdout, out.stderr) == (0, f"{NAME}\n", "")


def test_q_silences_what_a_removal_says_it_freed(run: Cli, tmp_path: Path) -> None:
    assert run("images", "import", "--no-unpack", str(app_archive(tmp_path))).exit_code == 0
    out = run("images", "rm", "-q", NAME)
    assert (out.exit_code, out.stdout, out.stderr) == (0, f"{NAME}\n", "")


def test_q_silences_what_prune_says_and_keeps_the_digests(run: Cli) -> None:
    loud = run("content", "prune", "--older-than", "0s")
    assert loud.stderr.startswith("ctrpy: pruned ")
    quiet = run("content", "prune", "-q", "--older-than", "0s")
    assert (quiet.exit_code, quiet.stderr) == (0, "")


LEAVES = [(path, cmd) for path, cmd in COMMAND_TREE if not isinstance(cmd, click.Group)]


@pytest.mark.parametrize(("path", "cmd"), LEAVES, ids=[" ".join(path) for path, _cmd in LEAVES])
def test_every_command_takes_q(path: tuple[str, ...], cmd: click.Command) -> None:
    assert any("-q" in p.opts for p in cmd.params if isinstance(p, click.Option))


@pytest.mark.parametrize("pull", [False, True], ids=["import", "pull"])
def test_plain_writes_the_unpacking_line_whole_when_the_unpack_is_done(pull: bool) -> None:
    out = io.StringIO()
    renderer = PlainRenderer(out, pull=pull)
    renderer(ev.UnpackStarted(IMG, "sha256:" + "c" * 64, 2, platform="linux/amd64"))
    assert out.getvalue() == ""  # nothing yet: a failure now leaves no half line on stdout
    renderer(ev.UnpackDone(IMG, "sha256:" + "c" * 64))
    head = "unpacking linux/amd64 " if pull else f"unpacking {IMG} ("
    assert out.getvalue().startswith(head) and out.getvalue().endswith("...done\n")


def test_plain_writes_nothing_on_stdout_for_an_unpack_that_failed() -> None:
    out = io.StringIO()
    renderer = PlainRenderer(out, pull=True)
    renderer(ev.UnpackStarted(IMG, "sha256:" + "c" * 64, 2, platform="linux/amd64"))
    renderer.close(failed=True)
    assert out.getvalue() == ""
