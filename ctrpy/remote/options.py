"""What a caller (the CLI, from ctr's flags) tells the registry client."""

from __future__ import annotations

from dataclasses import dataclass, field

from ctrpy import __version__
from ctrpy.errors import InvalidArgument

DEFAULT_USER_AGENT = f"ctrpy/{__version__}"


@dataclass(frozen=True)
class RemoteOptions:
    """Options for talking to registries.

    The CLI fills these from ctr's flags: ``-u/--user USER[:PASSWORD]`` (``user``,
    ``password``; see :func:`split_user`), ``--refresh`` (``refresh_token``),
    ``--plain-http``, ``-k/--skip-verify``, ``--tlscacert`` (``tls_ca_cert``, one or more
    files), ``--tlscert`` with ``--tlskey``, ``--hosts-dir``.  ``headers`` are sent with
    every registry request (pairs, so a name may repeat).

    Retries: at most ``max_retries`` retries per request and ``max_retry_time`` seconds
    spent retrying it; waits grow from ``backoff_base`` to ``backoff_max`` with jitter; a
    ``Retry-After`` longer than ``max_retry_after`` fails at once.
    """

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    plain_http: bool = False
    skip_verify: bool = False
    tls_ca_cert: tuple[str, ...] = ()
    tls_cert: str | None = None
    tls_key: str | None = None
    hosts_dir: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = DEFAULT_USER_AGENT
    max_retries: int = 5
    max_retry_time: float = 120.0
    max_retry_after: float = 60.0
    backoff_base: float = 0.5
    backoff_max: float = 10.0
    max_redirects: int = 10
    max_auth_attempts: int = 3
    max_resumes: int = 5
    connect_timeout: float = 30.0
    read_timeout: float = 60.0
    max_connections: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.tls_ca_cert, str):  # a single file given as a string
            object.__setattr__(self, "tls_ca_cert", (self.tls_ca_cert,))
        if self.tls_key and not self.tls_cert:
            raise InvalidArgument("a TLS client key needs its certificate")
        if self.password is not None and not self.user:
            raise InvalidArgument("a password needs a user name")
        for name in ("max_retries", "max_redirects", "max_auth_attempts", "max_resumes"):
            if getattr(self, name) < 0:
                raise InvalidArgument(f"{name} must not be negative")
        if self.max_connections < 1:
            raise InvalidArgument("max_connections must be at least 1")
        for hname, _ in self.headers:
            if not hname or any(c in hname for c in ":\r\n ") :
                raise InvalidArgument(f"invalid header name {hname!r}")

    @property
    def tls_configured(self) -> bool:
        """Did the flags say anything about TLS (a CA, a client certificate, -k)?"""
        return bool(self.tls_ca_cert or self.tls_cert or self.skip_verify)


def split_user(value: str) -> tuple[str, str | None]:
    """``-u USER[:PASSWORD]`` as ctr reads it: split at the first ``:``.

    ``("user", None)`` means no password was given (the CLI may prompt for one).
    """
    if not value:
        raise InvalidArgument("empty user name")
    user, sep, password = value.partition(":")
    if not user:
        raise InvalidArgument(f"empty user name in {value!r}")
    return user, (password if sep else None)
