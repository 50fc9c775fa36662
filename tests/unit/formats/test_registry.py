"""The format registry: built-ins by name, aliases, duplicate names, entry-point plugins."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable
from importlib.metadata import EntryPoint
from typing import Any, BinaryIO, ClassVar

import pytest

from ctrpy.errors import AlreadyExists, InvalidArgument
from ctrpy.formats import registry
from ctrpy.formats.base import ExportOptions, ExportSource, ExportTarget, ImportContext, ImportResult
from ctrpy.formats.oci import OCIFormat
from tests.helpers import raises_naming


class PluginFormat:
    """A third-party format, importer and exporter (loaded through an entry point below)."""

    name: ClassVar[str] = "plugin.v1"

    def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult:
        return ImportResult()

    def export(
        self, source: ExportSource, targets: list[ExportTarget], out: BinaryIO, options: ExportOptions,
        progress: Any = None,
    ) -> None:
        out.write(b"plugin")


class ImportOnly:
    name: ClassVar[str] = "import.only"

    def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult:
        return ImportResult()


class ExportOnly:
    name: ClassVar[str] = "export.only"

    def export(self, *args: Any) -> None:
        pass


class OtherOCI:
    name: ClassVar[str] = "oci.v1"

    def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult:
        return ImportResult()


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sees a copy of the registry (built-ins included); entry points are off
    unless a test turns them on."""
    monkeypatch.setattr(registry, "_importers", dict(registry._importers))
    monkeypatch.setattr(registry, "_exporters", dict(registry._exporters))
    monkeypatch.setattr(registry, "_aliases", dict(registry._aliases))
    monkeypatch.setattr(registry, "_loaded_entry_points", True)


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[EntryPoint]) -> list[str]:
    """Replace ``entry_points`` as ctrpy.formats.registry uses it; returns the groups asked for."""
    asked: list[str] = []

    def entry_points(*, group: str) -> list[EntryPoint]:
        asked.append(group)
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)  # the registry imports it when it looks
    monkeypatch.setattr(registry, "_loaded_entry_points", False)
    return asked


PLUGIN_EP = EntryPoint("plugin", f"{__name__}:PluginFormat", "ctrpy.formats")


# --------------------------------------------------------------------------- built-ins
def test_built_in_oci_format_is_importer_and_exporter() -> None:
    assert isinstance(registry.get_importer("oci.v1"), OCIFormat)
    assert isinstance(registry.get_exporter("oci.v1"), OCIFormat)


def test_auto_is_an_importer_only() -> None:
    assert "auto" in registry.importer_names()
    assert "auto" not in registry.exporter_names()
    with pytest.raises(InvalidArgument):
        registry.get_exporter("auto")


def test_get_importer_returns_a_new_instance_each_time() -> None:
    assert registry.get_importer("oci.v1") is not registry.get_importer("oci.v1")


# --------------------------------------------------------------------------- registering
def test_registered_format_is_found_by_name() -> None:
    registry.register(PluginFormat)
    assert isinstance(registry.get_importer("plugin.v1"), PluginFormat)
    assert isinstance(registry.get_exporter("plugin.v1"), PluginFormat)


def test_registered_alias_finds_the_format() -> None:
    registry.register(PluginFormat, aliases=("plugin.v0",))
    assert isinstance(registry.get_importer("plugin.v0"), PluginFormat)
    assert {"plugin.v1", "plugin.v0"} <= set(registry.importer_names())


def test_registering_a_name_twice_is_an_error() -> None:
    registry.register(PluginFormat)
    with pytest.raises(AlreadyExists, match=r"plugin\.v1"):
        registry.register(PluginFormat)


def test_registering_a_built_in_name_is_an_error_and_keeps_the_built_in() -> None:
    with pytest.raises(AlreadyExists, match=r"oci\.v1"):
        registry.register(OtherOCI)
    assert isinstance(registry.get_importer("oci.v1"), OCIFormat)


def test_an_alias_that_clashes_with_a_name_is_an_error() -> None:
    with pytest.raises(AlreadyExists, match=r"oci\.v1"):
        registry.register(PluginFormat, aliases=("oci.v1",))
    with pytest.raises(InvalidArgument):
        registry.get_importer("plugin.v1")


def test_a_name_that_clashes_with_an_alias_is_an_error() -> None:
    registry.register(ImportOnly, aliases=("plugin.v1",))
    with pytest.raises(AlreadyExists):
        registry.register(PluginFormat)


def test_class_without_a_name_is_refused() -> None:
    class Nameless:
        def import_stream(self, stream: BinaryIO, ctx: ImportContext) -> ImportResult:
            return ImportResult()

    with pytest.raises(InvalidArgument, match="no name"):
        registry.register(Nameless)


def test_class_that_neither_imports_nor_exports_is_refused() -> None:
    class Useless:
        name: ClassVar[str] = "useless"

    with pytest.raises(InvalidArgument, match="neither an importer nor an exporter"):
        registry.register(Useless)
    assert "useless" not in registry.importer_names() + registry.exporter_names()


def test_import_only_format_is_not_an_exporter() -> None:
    registry.register(ImportOnly)
    assert isinstance(registry.get_importer("import.only"), ImportOnly)
    with raises_naming(InvalidArgument, "'import.only'", "export"):
        registry.get_exporter("import.only")


def test_export_only_format_is_not_an_importer() -> None:
    registry.register(ExportOnly)
    assert isinstance(registry.get_exporter("export.only"), ExportOnly)
    with raises_naming(InvalidArgument, "'export.only'", "import"):
        registry.get_importer("export.only")


def test_unregister_forgets_the_name_and_its_aliases() -> None:
    registry.register(PluginFormat, aliases=("plugin.v0",))
    registry.unregister("plugin.v1")
    for name in ("plugin.v1", "plugin.v0"):
        with pytest.raises(InvalidArgument):
            registry.get_importer(name)


# --------------------------------------------------------------------------- unknown names
@pytest.mark.parametrize(
    ("kind", "plugin", "get", "names"),
    [
        ("import", ImportOnly, registry.get_importer, registry.importer_names),
        ("export", ExportOnly, registry.get_exporter, registry.exporter_names),
    ],
    ids=["import", "export"],
)
def test_an_unknown_format_error_names_it_and_lists_every_valid_name(
    kind: str, plugin: type, get: Callable[[str], object], names: Callable[[], list[str]]
) -> None:
    registry.register(plugin)
    with raises_naming(InvalidArgument, "'nope'", kind, *names(), plugin.name):  # type: ignore[attr-defined]
        get("nope")


# --------------------------------------------------------------------------- entry points
def test_entry_point_plugin_is_registered_on_first_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_entry_points(monkeypatch, [PLUGIN_EP])
    assert isinstance(registry.get_importer("plugin.v1"), PluginFormat)
    assert isinstance(registry.get_exporter("plugin.v1"), PluginFormat)
    assert asked == ["ctrpy.formats"]


def test_entry_point_plugin_is_listed_among_valid_names(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, [PLUGIN_EP])
    assert "plugin.v1" in registry.importer_names()
    assert "plugin.v1" in registry.exporter_names()
    with pytest.raises(InvalidArgument, match=r"plugin\.v1"):
        registry.get_importer("nope")


def test_entry_points_are_loaded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = fake_entry_points(monkeypatch, [PLUGIN_EP])
    registry.get_importer("plugin.v1")
    registry.get_exporter("oci.v1")
    registry.importer_names()
    assert asked == ["ctrpy.formats"]


def test_entry_points_of_other_groups_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, [EntryPoint("plugin", f"{__name__}:PluginFormat", "other.group")])
    with pytest.raises(InvalidArgument):
        registry.get_importer("plugin.v1")


def test_entry_point_plugin_with_a_built_in_name_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points(monkeypatch, [EntryPoint("clash", f"{__name__}:OtherOCI", "ctrpy.formats")])
    with pytest.raises(AlreadyExists, match=r"oci\.v1"):
        registry.get_importer("oci.v1")
