"""Package re-exports that load their module on first use (PEP 562).

``from ctrpy import Client`` and ``from ctrpy.archive import apply_layer`` keep working, but
importing one submodule (``ctrpy.archive.pipeline`` for a push) no longer runs its siblings
(the tar reader, zstandard, isal): a command loads the code it runs, which is most of how
fast it starts (see DESIGN.md, "Start-up").
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(
    package: str, modules: Mapping[str, tuple[str, ...]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``modules`` maps each module to the
    names it exports; the first use of a name imports its module and keeps the value."""
    table = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = table.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        elif name.startswith("__"):  # what tools probe for (__path__, __wrapped__...): not a submodule
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        else:  # a submodule, as `import ctrpy.archive; ctrpy.archive.tar` found it when all loaded
            try:
                value = importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise  # the submodule exists and needs something that does not
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *table})

    return __getattr__, __dir__
