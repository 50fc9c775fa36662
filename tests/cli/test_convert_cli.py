"""``ctrpy images convert``: ctr's flags (``--oci``, ``--uncompress``, ``--platform``,
``--all-platforms``) and ctrpy's (``--gzip``, ``--zstd``, ``--level``), through the CLI."""

from __future__ import annotations

import pytest

from tests.builders import (
    MT_DOCKER_MANIFEST,
    MT_OCI_LAYER,
    MT_OCI_LAYER_ZSTD,
    MT_OCI_MANIFEST,
    decompress,
    file,
    index_of,
)
from tests.helpers import (
    APP,
    HOST,
    OTHER_ARCH,
    Cli,
    app_image,
    arch_image,
    blob_path,
    docker_archive,
    host_image,
    parse_table,
    tamper,
)

DST = "docker.io/library/app:converted"


def test_convert_prints_the_digest_of_the_new_target(run: Cli) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    out = run.ok("images", "convert", "--uncompress", APP, DST)
    assert out.stdout == run.image(DST)["target"]["digest"] + "\n"
    assert out.stderr == ""


def test_convert_of_a_docker_image_with_oci_lists_the_oci_type(run: Cli) -> None:
    run.ok("images", "import", "--no-unpack", "-", input=docker_archive((app_image(), ["app:v1"])))
    assert run.image(APP)["target"]["mediaType"] == MT_DOCKER_MANIFEST
    run.ok("images", "convert", "--oci", APP, DST)
    assert run.image(DST)["target"]["mediaType"] == MT_OCI_MANIFEST


def test_the_converted_image_checks_complete_and_unpacked(run: Cli) -> None:
    run.imported(app_image(), APP, "--snapshotter", "native")
    run.ok("images", "convert", "--zstd", "--level", "5", APP, DST)
    rows = {r["REF"]: r for r in parse_table(run.ok("images", "check", "--snapshotter", "native").stdout)}
    assert rows[DST]["STATUS"] == "complete (3/3)"
    assert rows[DST]["UNPACKED"] == "true"


def test_zstd_layers_hold_the_same_tars(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    run.ok("images", "convert", "--zstd", APP, DST)
    layers = run.inspect(DST)["manifest"]["layers"]
    assert [x["mediaType"] for x in layers] == [MT_OCI_LAYER_ZSTD] * 2
    tars = [decompress(run.ok("content", "get", x["digest"]).stdout_bytes) for x in layers]
    assert tars == [decompress(b.data) for b in img.layers]


def test_uncompress_gives_tar_layers_named_by_their_diff_ids(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    run.ok("images", "convert", "--uncompress", APP, DST)
    layers = run.inspect(DST)["manifest"]["layers"]
    assert [(x["mediaType"], x["digest"]) for x in layers] == [(MT_OCI_LAYER, d) for d in img.diff_ids]


def test_a_platform_alone_is_a_conversion(run: Cli) -> None:
    host, other = arch_image(HOST.architecture, HOST.variant or None), arch_image(OTHER_ARCH)
    run.imported(index_of([host, other]), APP, "--no-unpack", "--all-platforms")
    run.ok("images", "convert", "--platform", f"linux/{OTHER_ARCH}", APP, DST)
    assert run.image(DST)["platforms"] == [f"linux/{OTHER_ARCH}"]


def test_an_existing_destination_is_replaced(run: Cli) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    run.imported(host_image([file("other")]).build(), DST, "--no-unpack")
    run.ok("images", "convert", "--uncompress", APP, DST)
    assert run.inspect(DST)["manifest"]["layers"][0]["digest"] == app_image().diff_ids[0]


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "flags",
    [[], ["--all-platforms"], ["--uncompress", "--gzip"], ["--gzip", "--zstd"], ["--level", "3"],
     ["--gzip", "--level", "9"], ["--zstd", "--level", "0"], ["--level", "x", "--zstd"]],
    ids=["none", "all-platforms-alone", "uncompress-gzip", "gzip-zstd", "level-alone", "gzip-9", "zstd-0",
         "level-not-a-number"],
)
def test_conversions_that_mean_nothing_or_contradict_are_usage_errors(run: Cli, flags: list[str]) -> None:
    run.imported(app_image(), APP, "--no-unpack")
    run.usage_error("images", "convert", *flags, APP, DST)
    assert DST not in run.names()


def test_a_missing_source_is_one_error_line_naming_it(run: Cli) -> None:
    run.fails("images", "convert", "--oci", "nothing:1", DST, match="'nothing:1'")


def test_a_platform_the_image_lacks_fails_with_the_platform_hint(run: Cli) -> None:
    run.imported(index_of([app_image()]), APP, "--no-unpack")
    run.fails("images", "convert", "--platform", "linux/riscv64", APP, DST,
              match=("linux/riscv64", "--platform or --all-platforms"))
    assert DST not in run.names()


def test_a_corrupt_layer_fails_and_leaves_the_store_as_it_was(run: Cli) -> None:
    img = run.imported(app_image(), APP, "--no-unpack")
    tamper(blob_path(run.root, img.layers[0].digest))
    before = run.state()
    run.fails("images", "convert", "--zstd", APP, DST, match=img.layers[0].digest)
    run.assert_unchanged(before)
