"""ctrpy: a daemonless, ctr-compatible container image tool.

The library is usable without the CLI::

    from ctrpy import Client
    client = Client("/tmp/root")
    with open("image.tar", "rb") as f:
        images = client.import_archive(f)
"""

from ctrpy.client import Client
from ctrpy.errors import (
    AlreadyExists,
    CtrpyError,
    DigestMismatch,
    FailedPrecondition,
    InvalidArchive,
    InvalidArgument,
    MountError,
    NotFound,
    SizeMismatch,
    StoreError,
    UnpackError,
    UnsupportedFormat,
)

__version__ = "0.1.0"

__all__ = [
    "AlreadyExists",
    "Client",
    "CtrpyError",
    "DigestMismatch",
    "FailedPrecondition",
    "InvalidArchive",
    "InvalidArgument",
    "MountError",
    "NotFound",
    "SizeMismatch",
    "StoreError",
    "UnpackError",
    "UnsupportedFormat",
    "__version__",
]
