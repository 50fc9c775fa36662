"""RemoteOptions, -u parsing, and how registry answers become errors (no network)."""

from __future__ import annotations

import json

import pytest

import ctrpy
from ctrpy.errors import CtrpyError, DigestMismatch, InvalidArchive, InvalidArgument, NotFound, SizeMismatch
from ctrpy.remote import errors as E
from ctrpy.remote.errors import error_from_response, parse_registry_errors
from ctrpy.remote.options import RemoteOptions, split_user


def test_split_user_with_password() -> None:
    assert split_user("alice:wonderland") == ("alice", "wonderland")


def test_split_user_password_keeps_later_colons() -> None:
    assert split_user("alice:a:b") == ("alice", "a:b")


def test_split_user_without_password() -> None:
    assert split_user("alice") == ("alice", None)


def test_split_user_empty_password_is_given() -> None:
    assert split_user("alice:") == ("alice", "")


@pytest.mark.parametrize("value", ["", ":pw"])
def test_split_user_needs_a_name(value: str) -> None:
    with pytest.raises(InvalidArgument):
        split_user(value)


def test_options_repr_hides_secrets() -> None:
    o = RemoteOptions(user="alice", password="hunter2", refresh_token="rt-secret")
    assert "hunter2" not in repr(o) and "rt-secret" not in repr(o)
    assert "alice" in repr(o)


def test_options_single_ca_string_becomes_a_tuple() -> None:
    o = RemoteOptions(tls_ca_cert="/ca.pem")  # type: ignore[arg-type]
    assert o.tls_ca_cert == ("/ca.pem",)


def test_options_tlskey_needs_tlscert() -> None:
    with pytest.raises(InvalidArgument, match="TLS client key needs its certificate"):
        RemoteOptions(tls_key="/k.pem")


def test_options_password_needs_a_user() -> None:
    with pytest.raises(InvalidArgument):
        RemoteOptions(password="x")


@pytest.mark.parametrize("name", ["max_retries", "max_redirects", "max_auth_attempts", "max_resumes"])
def test_options_negative_limits_refused(name: str) -> None:
    with pytest.raises(InvalidArgument, match=name):
        RemoteOptions(**{name: -1})  # type: ignore[arg-type]


def test_options_bad_header_name_refused() -> None:
    with pytest.raises(InvalidArgument, match="header"):
        RemoteOptions(headers=(("Bad Name", "v"),))


def test_options_tls_configured() -> None:
    assert not RemoteOptions().tls_configured
    assert RemoteOptions(skip_verify=True).tls_configured
    assert RemoteOptions(tls_ca_cert=("/x",)).tls_configured
    assert RemoteOptions(tls_cert="/c").tls_configured


def test_default_user_agent_names_ctrpy_and_its_version() -> None:
    assert RemoteOptions().user_agent == f"ctrpy/{ctrpy.__version__}"


# -- error classes ----------------------------------------------------------------------------


def test_error_hierarchy() -> None:
    assert issubclass(E.RemoteError, CtrpyError)
    assert issubclass(E.RemoteNotFound, NotFound) and issubclass(E.RemoteNotFound, E.RemoteError)
    assert issubclass(E.AuthError, E.RemoteError)
    assert issubclass(E.CredentialsError, E.AuthError)
    assert issubclass(E.TLSVerifyError, E.ConnectionFailed)
    assert issubclass(E.RemoteDigestMismatch, DigestMismatch) and issubclass(E.RemoteDigestMismatch, E.RemoteError)
    assert issubclass(E.RemoteSizeMismatch, SizeMismatch)
    assert issubclass(E.InvalidResponse, InvalidArchive)
    assert issubclass(E.ConfigError, InvalidArgument)
    assert issubclass(E.UnsupportedManifest, E.RemoteError)


def body(*errors: tuple[str, str]) -> bytes:
    return json.dumps({"errors": [{"code": c, "message": m, "detail": {}} for c, m in errors]}).encode()


@pytest.mark.parametrize("code", ["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"])
def test_unknown_codes_are_not_found_naming_the_reference(code: str) -> None:
    e = error_from_response("127.0.0.1:5000/app:v1", 404, body((code, "it is unknown")), host="127.0.0.1:5000")
    assert isinstance(e, E.RemoteNotFound)
    assert str(e) == f"127.0.0.1:5000/app:v1: not found ({code}: it is unknown)"
    assert (e.status, e.code, e.host) == (404, code, "127.0.0.1:5000")


def test_bare_404_is_not_found() -> None:
    e = error_from_response("r/app:v1", 404, b"")
    assert isinstance(e, E.RemoteNotFound)
    assert str(e) == "r/app:v1: not found"


@pytest.mark.parametrize(("code", "status"), [("UNAUTHORIZED", 401), ("DENIED", 403), ("", 401), ("", 403)])
def test_auth_codes_are_auth_errors(code: str, status: int) -> None:
    b = body((code, "authentication required")) if code else b""
    e = error_from_response("r/app:v1", status, b, host="r")
    assert isinstance(e, E.AuthError)
    assert "access denied by r" in str(e)


def test_429_is_rate_limited() -> None:
    e = error_from_response("r/app:v1", 429, body(("TOOMANYREQUESTS", "slow down")), host="r")
    assert isinstance(e, E.RateLimited)
    assert "HTTP 429 Too Many Requests" in str(e) and "slow down" in str(e)


def test_other_errors_name_status_and_code() -> None:
    e = error_from_response("r/app:v1", 400, body(("MANIFEST_INVALID", "manifest invalid")), host="r")
    assert type(e) is E.RemoteError
    assert str(e) == "r/app:v1: HTTP 400 Bad Request from r (MANIFEST_INVALID: manifest invalid)"
    assert e.code == "MANIFEST_INVALID"


def test_several_registry_errors_are_joined_on_one_line() -> None:
    e = error_from_response("x", 400, body(("A", "first\nline"), ("B", "second")))
    assert "\n" not in str(e)
    assert "A: first line; B: second" in str(e)


def test_non_json_error_bodies_are_left_out() -> None:
    e = error_from_response("x", 500, b"<html>oops</html>", host="h")
    assert str(e) == "x: HTTP 500 Internal Server Error from h"


def test_unknown_status_text() -> None:
    e = error_from_response("x", 599, b"")
    assert "HTTP 599" in str(e)


def test_long_registry_messages_are_cut() -> None:
    e = error_from_response("x", 400, body(("C", "m" * 5000)))
    assert len(str(e)) < 400


@pytest.mark.parametrize(
    "raw",
    [b"", b"null", b"[]", b'{"errors": 5}', b'{"errors": [5, "x"]}', b'{"other": 1}', b"\xff\xfe"],
)
def test_parse_registry_errors_tolerates_anything(raw: bytes) -> None:
    assert parse_registry_errors(raw) == []


def test_parse_registry_errors_non_string_fields() -> None:
    [entry] = parse_registry_errors(b'{"errors": [{"code": 5, "message": ["x"]}]}')
    assert entry.text() == ""


# -- sniffing a manifest's media type -----------------------------------------------------------


def test_sniff_media_type() -> None:
    from ctrpy.remote.manifests import sniff_media_type

    assert sniff_media_type(b'{"schemaVersion":2,"mediaType":"x/y"}') == ("x/y", 2, True)
    assert sniff_media_type(b'{"schemaVersion":2,"manifests":[]}') == ("application/vnd.oci.image.index.v1+json", 2, False)
    assert sniff_media_type(b'{"schemaVersion":2,"config":{},"layers":[]}') == (
        "application/vnd.oci.image.manifest.v1+json", 2, False)
    assert sniff_media_type(b'{"schemaVersion":1,"fsLayers":[]}') == ("", 1, False)
    assert sniff_media_type(b"not json") == ("", None, False)
    assert sniff_media_type(b"[1]") == ("", None, False)
    assert sniff_media_type(b'{"schemaVersion":true}') == ("", None, False)
