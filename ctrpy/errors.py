"""The one exception hierarchy of ctrpy.

Every error the library raises on purpose is a :class:`CtrpyError`.  The CLI turns
it into one line on stderr and exit code 1 in exactly one place (``ctrpy.cli.main``).
"""

from __future__ import annotations


class CtrpyError(Exception):
    """Base of every error ctrpy raises deliberately."""


class InvalidArgument(CtrpyError):
    """A value given by the caller is malformed (digest, name, label, platform...)."""


class NotFound(CtrpyError):
    """A named thing (image, blob, namespace, snapshot) does not exist."""


class AlreadyExists(CtrpyError):
    """A thing that must be new already exists."""


class FailedPrecondition(CtrpyError):
    """The store is not in a state that allows the operation (e.g. namespace not empty)."""


class InvalidArchive(CtrpyError):
    """An archive or layer is malformed, truncated, unsafe or inconsistent."""


class DigestMismatch(InvalidArchive):
    """Bytes do not hash to the digest they were announced with."""


class SizeMismatch(InvalidArchive):
    """Bytes are not as long as they were announced to be."""


class UnsupportedFormat(CtrpyError):
    """An archive format, media type or compression that ctrpy cannot handle."""


class StoreError(CtrpyError):
    """The store on disk cannot be opened or written (permissions, missing parent, ...)."""


class UnpackError(CtrpyError):
    """A layer could not be applied to a snapshot."""


class MountError(CtrpyError):
    """A mount or unmount was refused or failed."""
