"""Registries: hosts (hosts.toml), credentials, authentication, HTTP, and the registry API.

The integrator's entry point is :meth:`Registry.for_reference`::

    reg = Registry.for_reference("127.0.0.1:5000/app:1", RemoteOptions(plain_http=True))
    desc = reg.resolve()
    manifest = reg.fetch_manifest(desc)
    reg.fetch_blob(layer_desc, sink, on_progress)

Nothing here imports click or rich, and nothing writes to stdout.  The names below load
their module on first use: the errors (which the CLI names) come without the HTTP client.
"""

from typing import TYPE_CHECKING

from ctrpy import lazy as _lazy

if TYPE_CHECKING:
    from ctrpy.remote.credentials import Credentials, CredentialStore
    from ctrpy.remote.errors import (
        AuthError,
        ConfigError,
        ConnectionFailed,
        CredentialsError,
        InvalidResponse,
        ManifestTooLarge,
        RateLimited,
        RemoteDigestMismatch,
        RemoteError,
        RemoteNotFound,
        RemoteSizeMismatch,
        TLSVerifyError,
        UnsupportedManifest,
        UploadError,
    )
    from ctrpy.remote.hosts import Capability, RegistryHost, TLSConfig, load_hosts
    from ctrpy.remote.options import RemoteOptions, split_user
    from ctrpy.remote.registry import MAX_MANIFEST, Registry, Remote
    from ctrpy.remote.sink import BlobSink, ProgressCallback, SourceOpener
    from ctrpy.remote.upload import MountResult, UploadSession

__getattr__, __dir__ = _lazy.exports(__name__, {
    "ctrpy.remote.credentials": ("Credentials", "CredentialStore"),
    "ctrpy.remote.errors": ("AuthError", "ConfigError", "ConnectionFailed", "CredentialsError", "InvalidResponse",
                            "ManifestTooLarge", "RateLimited", "RemoteDigestMismatch", "RemoteError",
                            "RemoteNotFound", "RemoteSizeMismatch", "TLSVerifyError", "UnsupportedManifest",
                            "UploadError"),
    "ctrpy.remote.hosts": ("Capability", "RegistryHost", "TLSConfig", "load_hosts"),
    "ctrpy.remote.options": ("RemoteOptions", "split_user"),
    "ctrpy.remote.registry": ("MAX_MANIFEST", "Registry", "Remote"),
    "ctrpy.remote.sink": ("BlobSink", "ProgressCallback", "SourceOpener"),
    "ctrpy.remote.upload": ("MountResult", "UploadSession"),
})

__all__ = [
    "MAX_MANIFEST",
    "AuthError",
    "BlobSink",
    "Capability",
    "ConfigError",
    "ConnectionFailed",
    "CredentialStore",
    "Credentials",
    "CredentialsError",
    "InvalidResponse",
    "ManifestTooLarge",
    "MountResult",
    "ProgressCallback",
    "RateLimited",
    "Registry",
    "RegistryHost",
    "Remote",
    "RemoteDigestMismatch",
    "RemoteError",
    "RemoteNotFound",
    "RemoteOptions",
    "RemoteSizeMismatch",
    "SourceOpener",
    "TLSConfig",
    "TLSVerifyError",
    "UnsupportedManifest",
    "UploadError",
    "UploadSession",
    "load_hosts",
    "split_user",
]
