"""Package re-exports loaded on first use (``ctrpy.lazy``): ``from ctrpy import Client`` and
``from ctrpy.archive import apply_layer`` work as before, and importing one submodule loads
none of its siblings."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest

from ctrpy import lazy

LAZY_PACKAGES = ["ctrpy", "ctrpy.archive", "ctrpy.remote"]


def loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_name_a_lazy_package_exports_resolves(package: str) -> None:
    pkg = importlib.import_module(package)
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None, name
        assert name in dir(pkg)


def test_an_exported_name_is_the_defining_modules_object_and_is_kept() -> None:
    import ctrpy.archive
    from ctrpy.archive import apply

    assert ctrpy.archive.apply_layer is apply.apply_layer
    assert "apply_layer" in vars(ctrpy.archive)  # the next use is a plain attribute


def test_a_name_a_package_does_not_export_is_an_attribute_error_naming_both() -> None:
    import ctrpy.archive

    with pytest.raises(AttributeError, match=r"'ctrpy.archive' has no attribute 'nothing_here'"):
        _ = ctrpy.archive.nothing_here


def test_exports_maps_each_name_to_its_module(monkeypatch: pytest.MonkeyPatch) -> None:
    package = types.ModuleType("some_package")
    monkeypatch.setitem(sys.modules, "some_package", package)
    package.__getattr__, package.__dir__ = lazy.exports("some_package", {"json": ("dumps",)})  # type: ignore[method-assign]
    assert package.dumps is json.dumps
    assert vars(package)["dumps"] is json.dumps
    assert "dumps" in dir(package)
    with pytest.raises(AttributeError, match="'some_package' has no attribute 'loads'"):
        _ = package.loads


def test_importing_ctrpy_loads_no_client() -> None:
    assert "ctrpy.client" not in loaded_after("import ctrpy")


def test_naming_the_client_loads_it() -> None:
    assert "ctrpy.client" in loaded_after("from ctrpy import Client")


def test_a_submodule_of_archive_loads_none_of_its_siblings() -> None:
    loaded = loaded_after("import ctrpy.archive.pipeline")
    assert not {"ctrpy.archive.apply", "ctrpy.archive.tree", "ctrpy.archive.compression", "zstandard"} & loaded


def test_the_registry_errors_load_without_the_http_client() -> None:
    loaded = loaded_after("from ctrpy.remote.errors import RemoteError")
    assert "urllib3" not in loaded
    assert "ctrpy.remote.registry" not in loaded


def test_a_submodule_is_an_attribute_of_its_lazy_package() -> None:
    code = "import ctrpy.archive, ctrpy.archive.tar as t; assert ctrpy.archive.tar is t"
    loaded = loaded_after("import ctrpy.archive\nassert ctrpy.archive.tar.__name__ == 'ctrpy.archive.tar'")
    assert "ctrpy.archive.tar" in loaded
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_hashing_reader_is_still_found_where_it_was() -> None:
    from ctrpy.archive.compression import HashingReader as Old
    from ctrpy.streams import HashingReader

    assert Old is HashingReader


def test_a_dunder_a_tool_probes_for_is_no_attribute_and_no_import() -> None:
    import ctrpy.archive

    assert not hasattr(ctrpy.archive, "__wrapped__")
    assert "ctrpy.archive.__wrapped__" not in sys.modules
