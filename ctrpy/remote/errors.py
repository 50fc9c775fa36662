"""Errors of the registry client, all :class:`ctrpy.errors.CtrpyError` subclasses.

Every message is one line that names what was asked for (a reference, a blob, a host) and,
when the registry said why, its error code and message.  No message ever carries a
password, a token or an ``Authorization`` header.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from ctrpy.errors import (
    CtrpyError,
    DigestMismatch,
    InvalidArchive,
    InvalidArgument,
    NotFound,
    SizeMismatch,
    UnsupportedFormat,
)

__all__ = [
    "AuthError",
    "ConfigError",
    "ConnectionFailed",
    "CredentialsError",
    "InvalidResponse",
    "ManifestTooLarge",
    "RateLimited",
    "RegistryErrorEntry",
    "RemoteDigestMismatch",
    "RemoteError",
    "RemoteNotFound",
    "RemoteSizeMismatch",
    "TLSVerifyError",
    "UnsupportedManifest",
    "UploadError",
    "error_from_response",
    "parse_registry_errors",
]

_MAX_TEXT = 200


class RemoteError(CtrpyError):
    """A registry could not be reached, or answered with an error.

    ``host`` is the registry host (``host[:port]``), ``status`` the HTTP status and ``code``
    the registry's error code (``MANIFEST_UNKNOWN``...), each when known.  ``topic`` says
    what the user may do about it, for a front end to put in its own words (the CLI names
    its flags): ``tls-verify`` (give the CA, or skip verification), ``plain-http`` (the
    registry may speak plain HTTP), ``https`` (it speaks HTTPS: do not ask for plain HTTP),
    ``client-cert`` (it may want a client certificate).
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        status: int | None = None,
        code: str | None = None,
        topic: str = "",
    ) -> None:
        CtrpyError.__init__(self, message)  # not super(): DigestMismatch & co. take data, not text
        self.host = host
        self.status = status
        self.code = code
        self.topic = topic


class RemoteNotFound(RemoteError, NotFound):
    """The repository, manifest, tag or blob does not exist on the registry."""


class AuthError(RemoteError):
    """Credentials are missing or were refused, or access is denied."""


class CredentialsError(AuthError):
    """Credentials could not be read (a malformed config file, a failing helper)."""


class ConnectionFailed(RemoteError):
    """The registry could not be reached (refused, reset, timed out), retries spent."""


class TLSVerifyError(ConnectionFailed):
    """The registry's certificate could not be verified."""


class RateLimited(RemoteError):
    """The registry asked us to come back later than we are willing to wait."""


class InvalidResponse(RemoteError, InvalidArchive):
    """The registry answered something that breaks the protocol (bad header, bad JSON...)."""


class RemoteDigestMismatch(InvalidResponse, DigestMismatch):
    """Bytes from the registry do not hash to the digest they were announced with."""

    def __init__(self, message: str, *, expected: str = "", actual: str = "", **where: Any) -> None:
        RemoteError.__init__(self, message, **where)
        self.expected = expected
        self.actual = actual
        self.what = "content"


class RemoteSizeMismatch(InvalidResponse, SizeMismatch):
    """The registry sent more or fewer bytes than announced."""

    def __init__(self, message: str, *, expected: int = 0, actual: int | None = None, **where: Any) -> None:
        RemoteError.__init__(self, message, **where)
        self.expected = expected
        self.actual = actual
        self.what = "content"


class ManifestTooLarge(InvalidResponse):
    """A manifest larger than the cap (4 MiB) was refused."""


class UnsupportedManifest(RemoteError, UnsupportedFormat):
    """A manifest format ctrpy does not handle (Docker schema 1)."""


class UploadError(RemoteError):
    """A push step (upload, mount, manifest) failed."""


class ConfigError(RemoteError, InvalidArgument):
    """The registry configuration is unusable (hosts.toml, certificate files, options)."""


def one_line(text: str, limit: int = _MAX_TEXT) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


class RegistryErrorEntry:
    """One entry of a registry's ``{"errors": [{"code", "message", "detail"}]}`` body."""

    __slots__ = ("code", "message")

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"RegistryErrorEntry({self.code!r}, {self.message!r})"

    def text(self) -> str:
        if self.code and self.message:
            return f"{self.code}: {self.message}"
        return self.code or self.message


def parse_registry_errors(body: bytes) -> list[RegistryErrorEntry]:
    """The entries of a registry error body; ``[]`` when the body is not one."""
    try:
        obj: Any = json.loads(body.decode("utf-8", errors="replace"))
    except ValueError:
        return []
    if not isinstance(obj, dict):
        return []
    errs = obj.get("errors")
    if not isinstance(errs, list):
        return []
    out = []
    for e in errs:
        if not isinstance(e, dict):
            continue
        code = e.get("code")
        msg = e.get("message")
        out.append(
            RegistryErrorEntry(
                one_line(code, 64) if isinstance(code, str) else "",
                one_line(msg) if isinstance(msg, str) else "",
            )
        )
    return out


_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"})
_AUTH_CODES = frozenset({"UNAUTHORIZED", "DENIED"})

_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Payload Too Large",
    416: "Range Not Satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def status_text(status: int) -> str:
    reason = _REASONS.get(status)
    return f"HTTP {status} {reason}" if reason else f"HTTP {status}"


def error_from_response(
    what: str,
    status: int,
    body: bytes,
    *,
    host: str | None = None,
    not_found: str | None = None,
) -> RemoteError:
    """Turn an error answer into one clear exception.

    ``what`` names the thing asked for (``127.0.0.1:5000/repo:tag``, ``blob sha256:...``).
    MANIFEST_UNKNOWN / NAME_UNKNOWN / BLOB_UNKNOWN (or a bare 404) give a
    :class:`RemoteNotFound`; UNAUTHORIZED / DENIED (or 401/403) an :class:`AuthError`;
    anything else a :class:`RemoteError` with the status and the registry's code.
    """
    entries = parse_registry_errors(body)
    code = entries[0].code if entries else None
    detail = "; ".join(e.text() for e in entries if e.text())
    said = f" ({detail})" if detail else ""
    if code in _NOT_FOUND_CODES or (status == 404 and not code):
        return RemoteNotFound(f"{what}: {not_found or 'not found'}{said}", host=host, status=status, code=code)
    if code in _AUTH_CODES or status in (401, 403):
        return AuthError(f"{what}: access denied by {host or 'the registry'}{said}", host=host, status=status, code=code)
    if status == 429 or code == "TOOMANYREQUESTS":
        return RateLimited(f"{what}: {status_text(status)} from {host or 'the registry'}{said}", host=host, status=status, code=code)
    if status == 404:
        return RemoteNotFound(f"{what}: {not_found or 'not found'}{said}", host=host, status=status, code=code)
    return RemoteError(f"{what}: {status_text(status)} from {host or 'the registry'}{said}", host=host, status=status, code=code)


T = TypeVar("T")


def first_answer(
    attempts: Sequence[Callable[[], T]], *, final: tuple[type[Exception], ...], rank: Mapping[type[RemoteError], int]
) -> T:
    """The first attempt that succeeds (hosts, mirrors, endpoints in turn).  An error of a
    ``final`` class ends the search at once; otherwise, when all fail, the most telling
    error is raised: the highest in ``rank`` (by its most specific class there), the first
    of equals."""

    def weight(e: RemoteError) -> int:
        return next(rank[cls] for cls in type(e).__mro__ if cls in rank)

    best: RemoteError | None = None
    for attempt in attempts:
        try:
            return attempt()
        except final:
            raise
        except RemoteError as e:
            if best is None or weight(e) > weight(best):
                best = e
    assert best is not None, "no attempt was made"
    raise best
