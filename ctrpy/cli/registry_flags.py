"""ctr's registry flags, shared by ``images pull``, ``images push`` and ``content fetch``.

``@registry_options`` adds the flags and hands the command one ``remote: RemoteOptions``
argument in their place::

    @images.command("pull")
    @registry_options
    @pass_app
    def pull(app: App, remote: RemoteOptions, ...) -> None: ...

A password missing from ``-u USER`` is read from stdin with ``--password-stdin``, asked for
on a terminal, and otherwise left out (the credential stores may still know one).
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from ctrpy.errors import CtrpyError, InvalidArgument
from ctrpy.remote.options import RemoteOptions, split_user

F = TypeVar("F", bound=Callable[..., Any])

_FLAGS: list[Callable[[F], F]] = [
    click.option("-u", "--user", default=None, metavar="USER[:PASSWORD]",
                 help="User name and password; a missing password is asked for on a terminal."),
    click.option("--password-stdin", is_flag=True, help="Read the password for --user from stdin."),
    click.option("--refresh", "refresh_token", default=None, metavar="TOKEN",
                 help="Refresh token for the authorization server."),
    click.option("--plain-http", is_flag=True, help="Talk to the registry over plain HTTP."),
    click.option("-k", "--skip-verify", is_flag=True, help="Do not verify the registry's TLS certificate."),
    click.option("--tlscacert", "tls_ca_cert", multiple=True, metavar="FILE",
                 help="CA certificate to trust for the registry (repeatable)."),
    click.option("--tlscert", "tls_cert", default=None, metavar="FILE", help="Client TLS certificate."),
    click.option("--tlskey", "tls_key", default=None, metavar="FILE", help="Key of the client TLS certificate."),
    click.option("--hosts-dir", default=None, metavar="DIR",
                 help="Directory of containerd's hosts.toml files (DIR/HOST/hosts.toml)."),
    click.option("--header", "headers", multiple=True, metavar="NAME:VALUE",
                 help="Extra HTTP header for every registry request (repeatable)."),
]

_NAMES = ("user", "password_stdin", "refresh_token", "plain_http", "skip_verify", "tls_ca_cert",
          "tls_cert", "tls_key", "hosts_dir", "headers")


def _read_password_stdin() -> str:
    return sys.stdin.readline().rstrip("\r\n")


def _on_terminal() -> bool:
    return sys.stdin.isatty()


def _prompt_password(user: str) -> str | None:
    """The password typed at a prompt (on a terminal only).  Ctrl-C there is an interrupt
    like anywhere else (exit 130); Ctrl-D gives no password, which is an error."""
    if not _on_terminal():
        return None
    try:
        return str(click.prompt(f"Password for {user}", hide_input=True, err=True))
    except click.Abort as e:  # click's answer to both keys
        if isinstance(e.__context__, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise CtrpyError(f"no password given for {user}") from None  # bad input: exit 1


def _headers(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in values:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{item!r} is not NAME:VALUE", param_hint="--header")
        out.append((name.strip(), value.strip()))
    return tuple(out)


def build_options(
    *, user: str | None = None, password_stdin: bool = False, refresh_token: str | None = None,
    plain_http: bool = False, skip_verify: bool = False, tls_ca_cert: tuple[str, ...] = (),
    tls_cert: str | None = None, tls_key: str | None = None, hosts_dir: str | None = None,
    headers: tuple[str, ...] = (),
) -> RemoteOptions:
    """The flags' values as :class:`RemoteOptions`; a bad combination is a usage error."""
    name: str | None = None
    password: str | None = None
    try:
        if user is not None:
            name, password = split_user(user)
        if password_stdin:
            if name is None:
                raise click.UsageError("--password-stdin needs --user")
            if password is not None:
                raise click.UsageError("--password-stdin and a password in --user: give one")
            password = _read_password_stdin()
        elif name is not None and password is None:
            password = _prompt_password(name)
        if tls_key and not tls_cert:
            raise click.UsageError("--tlskey needs --tlscert")
        if tls_cert and not tls_key:
            raise click.UsageError("--tlscert needs --tlskey")
        return RemoteOptions(
            user=name, password=password, refresh_token=refresh_token, plain_http=plain_http,
            skip_verify=skip_verify, tls_ca_cert=tuple(tls_ca_cert), tls_cert=tls_cert, tls_key=tls_key,
            hosts_dir=hosts_dir, headers=_headers(headers),
        )
    except InvalidArgument as e:
        raise click.UsageError(str(e)) from None


def registry_options(fn: F) -> F:
    """Add ctr's registry flags to a command; it receives them as ``remote: RemoteOptions``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in _NAMES}
        kwargs["remote"] = build_options(**values)
        return fn(*args, **kwargs)

    out: Any = wrapper
    for flag in reversed(_FLAGS):
        out = flag(out)
    return out  # type: ignore[no-any-return]
