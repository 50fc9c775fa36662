"""ctr's registry flags (``-u``, ``--password-stdin``, TLS, ``--hosts-dir``...) become one
RemoteOptions for pull, push and fetch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import pytest
from click.testing import CliRunner

from ctrpy.cli import registry_flags
from ctrpy.cli.main import cli
from ctrpy.cli.registry_flags import registry_options
from ctrpy.remote.options import RemoteOptions

seen: list[RemoteOptions] = []


@click.command()
@registry_options
def probe(remote: RemoteOptions) -> None:
    seen.append(remote)


def run(*args: str, stdin: str | None = None) -> tuple[int, str, RemoteOptions | None]:
    seen.clear()
    result = CliRunner().invoke(probe, list(args), input=stdin)
    return result.exit_code, result.output, (seen[0] if seen else None)


def test_no_flags_give_the_default_options() -> None:
    code, _, opts = run()
    assert code == 0
    assert opts == RemoteOptions()


def test_user_with_password_is_split_at_the_first_colon() -> None:
    _, _, opts = run("-u", "alice:pa:ss")
    assert opts is not None and (opts.user, opts.password) == ("alice", "pa:ss")


def test_password_stdin_reads_one_line() -> None:
    _, _, opts = run("--user", "bob", "--password-stdin", stdin="s3cret\nignored\n")
    assert opts is not None and (opts.user, opts.password) == ("bob", "s3cret")


def test_a_user_without_password_off_a_terminal_is_not_prompted() -> None:
    code, output, opts = run("-u", "carol")
    assert code == 0 and "Password" not in output
    assert opts is not None and (opts.user, opts.password) == ("carol", None)



def _prompt_answering(key: type[BaseException]) -> Callable[..., str]:
    """click.prompt as it behaves when the user presses Ctrl-C (KeyboardInterrupt) or
    Ctrl-D (EOFError) at it."""

    def prompt(*args: Any, **kwargs: Any) -> str:
        try:
            raise key
        except key:
            raise click.Abort() from None

    return prompt


def test_the_password_is_asked_for_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_flags, "_on_terminal", lambda: True)
    monkeypatch.setattr(click, "prompt", lambda text, **kw: f"typed for {text}")
    _, _, opts = run("-u", "dave")
    assert opts is not None and opts.password == "typed for Password for dave"


@pytest.mark.parametrize(("key", "user", "code", "line"), [
    (KeyboardInterrupt, "erin", 130, "ctrpy: interrupted"),  # Ctrl-C: an interrupt, as anywhere else
    (EOFError, "frank", 1, "ctrpy: error: no password given for frank"),  # Ctrl-D: no password
])
def test_a_key_that_closes_the_password_prompt_ends_the_pull(
    monkeypatch: pytest.MonkeyPatch, key: type[BaseException], user: str, code: int, line: str
) -> None:
    monkeypatch.setattr(registry_flags, "_on_terminal", lambda: True)
    monkeypatch.setattr(click, "prompt", _prompt_answering(key))
    r = CliRunner().invoke(cli, ["images", "pull", "-u", user, "127.0.0.1:1/x:1"])
    assert (r.exit_code, r.stderr.strip()) == (code, line)


@pytest.mark.parametrize(("args", "names"), [
    (("--password-stdin",), "--user"),
    (("-u", "a:b", "--password-stdin"), "give one"),
    (("--tlskey", "k.pem"), "--tlscert"),
    (("--tlscert", "c.pem"), "--tlskey"),
    (("--header", "novalue"), "NAME:VALUE"),
    (("-u", ":pw"), "empty user name"),
])
def test_a_bad_combination_is_a_usage_error_naming_the_flag(args: tuple[str, ...], names: str) -> None:
    code, output, opts = run(*args)
    assert code == 2 and opts is None
    assert names in output


def test_tls_and_hosts_flags_reach_the_options() -> None:
    _, _, opts = run("--plain-http", "-k", "--tlscacert", "a.pem", "--tlscacert", "b.pem", "--tlscert", "c.pem",
                     "--tlskey", "k.pem", "--hosts-dir", "/etc/containerd/certs.d", "--refresh", "tok",
                     "--header", "X-Team: infra")
    assert opts is not None
    assert opts.plain_http and opts.skip_verify and opts.tls_configured
    assert opts.tls_ca_cert == ("a.pem", "b.pem")
    assert (opts.tls_cert, opts.tls_key, opts.hosts_dir, opts.refresh_token) == (
        "c.pem", "k.pem", "/etc/containerd/certs.d", "tok")
    assert opts.headers == (("X-Team", "infra"),)
