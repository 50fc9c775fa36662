"""ctrpy: a daemonless, ctr-compatible container image tool.

The library is usable without the CLI::

    from ctrpy import Client
    client = Client("/tmp/root")
    with open("image.tar", "rb") as f:
        images = client.import_archive(f)
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

from ctrpy import lazy as _lazy
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

if TYPE_CHECKING:
    from ctrpy.client import Client

# the client brings every subsystem with it: loaded when it is first named
__getattr__, __dir__ = _lazy.exports(__name__, {"ctrpy.client": ("Client",)})

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
