"""Formats by name.  Built-ins register on import; others through the entry-point group
``ctrpy.formats`` (each entry point names an Importer and/or Exporter class)."""

from __future__ import annotations

from typing import Any

from ctrpy.errors import AlreadyExists, CtrpyError, InvalidArgument
from ctrpy.formats.base import Exporter, Importer

ENTRY_POINT_GROUP = "ctrpy.formats"

_importers: dict[str, type[Any]] = {}
_exporters: dict[str, type[Any]] = {}
_aliases: dict[str, str] = {}
_loaded_entry_points: bool | CtrpyError = False


def register(cls: type[Any], *, aliases: tuple[str, ...] = ()) -> type[Any]:
    """Register a format class by its ``name`` (as importer and/or exporter)."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"format class {cls!r} has no name")
    is_imp = callable(getattr(cls, "import_stream", None))
    is_exp = callable(getattr(cls, "export", None))
    if not (is_imp or is_exp):
        raise InvalidArgument(f"format {name!r} is neither an importer nor an exporter")
    for n in (name, *aliases):
        if n in _importers or n in _exporters or n in _aliases:
            raise AlreadyExists(f"format {n!r} is already registered")
    if is_imp:
        _importers[name] = cls
    if is_exp:
        _exporters[name] = cls
    for a in aliases:
        _aliases[a] = name
    return cls


def unregister(name: str) -> None:
    _importers.pop(name, None)
    _exporters.pop(name, None)
    for a in [a for a, n in _aliases.items() if n == name]:
        del _aliases[a]


def _load_entry_points() -> None:
    """Register the plugins once.  A plugin that cannot load, or clashes with a name already
    registered, is an error that names it, on every lookup (never silently half-loaded)."""
    global _loaded_entry_points
    if _loaded_entry_points is True:
        return
    if isinstance(_loaded_entry_points, CtrpyError):
        raise _loaded_entry_points
    from importlib.metadata import entry_points  # scanning the installed packages: only when looked up

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            cls = ep.load()
            if cls not in _importers.values() and cls not in _exporters.values():
                register(cls)
        except Exception as e:
            kind = type(e) if isinstance(e, CtrpyError) else InvalidArgument
            err = kind(f"format plugin {ep.name!r} ({ep.value}) cannot be registered: {e}")
            _loaded_entry_points = err
            raise err from e
    _loaded_entry_points = True


def importer_names() -> list[str]:
    _load_entry_points()
    return sorted({*_importers, *(a for a, n in _aliases.items() if n in _importers)})


def exporter_names() -> list[str]:
    _load_entry_points()
    return sorted({*_exporters, *(a for a, n in _aliases.items() if n in _exporters)})


def _make(table: dict[str, type[Any]], name: str, what: str, names: list[str]) -> Any:
    cls = table.get(_aliases.get(name, name))
    if cls is None:
        raise InvalidArgument(f"unknown {what} format {name!r}; valid formats: {', '.join(names)}")
    return cls()


def get_importer(name: str) -> Importer:
    imp: Importer = _make(_importers, name, "import", importer_names())
    return imp


def get_exporter(name: str) -> Exporter:
    exp: Exporter = _make(_exporters, name, "export", exporter_names())
    return exp
