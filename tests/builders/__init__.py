"""Archive builders for the tests: layers, OCI images/indexes/layouts, docker-save archives.

An independent oracle: stdlib + zstandard only, never imports ``ctrpy``. Everything is
deterministic (same inputs, same bytes) and every knob exists to produce precisely broken
archives as well as valid ones.
"""

from .big import *  # noqa: F403
from .big import __all__ as _big_all
from .docker import *  # noqa: F403
from .docker import __all__ as _docker_all
from .layers import *  # noqa: F403
from .layers import __all__ as _layers_all
from .layout import *  # noqa: F403
from .layout import __all__ as _layout_all
from .oci import *  # noqa: F403
from .oci import __all__ as _oci_all

__all__ = [*_big_all, *_docker_all, *_layers_all, *_layout_all, *_oci_all]
