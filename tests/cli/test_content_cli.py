"""``ctrpy content``: ls, get, ingest, rm, label."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import Cli

HELLO = b"hello\n"
HELLO_DIGEST = "sha256:" + hashlib.sha256(HELLO).hexdigest()
OTHER = b"other bytes"
OTHER_DIGEST = "sha256:" + hashlib.sha256(OTHER).hexdigest()
ABSENT = "sha256:" + "0" * 64


GC_ROOT = "containerd.io/gc.root"


def own(labels: dict[str, str]) -> dict[str, str]:
    """A blob's labels without the gc.root that ``content ingest`` adds (see its help)."""
    return {k: v for k, v in labels.items() if k != GC_ROOT}


def cell_without_root(cell: str) -> str:
    return ",".join(p for p in cell.split(",") if not p.startswith(GC_ROOT + "=")) or "-"


def blob_file(root: Path, dgst: str) -> Path:
    return root / "content" / "blobs" / "sha256" / dgst.split(":", 1)[1]


@pytest.fixture
def hello(run: Cli) -> str:
    """A store holding HELLO in the default namespace."""
    run.ok("content", "ingest", "hello", input=HELLO)
    return HELLO_DIGEST


# --------------------------------------------------------------------------- ingest
def test_ingest_stores_stdin_and_prints_its_digest(run: Cli) -> None:
    r = run.ok("content", "ingest", "hello", input=HELLO)
    assert r.stdout == HELLO_DIGEST + "\n"
    assert r.stderr == ""
    assert run.digests() == [HELLO_DIGEST]


def test_ingest_with_the_right_expected_digest_and_size(run: Cli) -> None:
    r = run.ok(
        "content", "ingest", "--expected-digest", HELLO_DIGEST, "--expected-size", str(len(HELLO)), "ref",
        input=HELLO,
    )
    assert r.stdout == HELLO_DIGEST + "\n"
    assert run.digests() == [HELLO_DIGEST]


def test_ingest_with_a_wrong_expected_digest_fails_and_stores_nothing(run: Cli, hello: str, root: Path) -> None:
    before = run.state()
    run.fails("content", "ingest", "--expected-digest", ABSENT, "ref", input=OTHER, match=ABSENT)
    run.assert_unchanged(before)
    assert not blob_file(root, OTHER_DIGEST).exists()
    assert not blob_file(root, ABSENT).exists()
    assert list((root / "content" / "ingest").iterdir()) == []


def test_ingest_with_fewer_bytes_than_expected_fails(run: Cli, hello: str, root: Path) -> None:
    before = run.state()
    run.fails("content", "ingest", "--expected-size", str(len(OTHER) + 1), "ref", input=OTHER,
              match=str(len(OTHER) + 1))
    run.assert_unchanged(before)
    assert not blob_file(root, OTHER_DIGEST).exists()


def test_ingest_with_more_bytes_than_expected_fails(run: Cli, hello: str, root: Path) -> None:
    before = run.state()
    run.fails("content", "ingest", "--expected-size", str(len(OTHER) - 1), "ref", input=OTHER,
              match=str(len(OTHER) - 1))
    run.assert_unchanged(before)
    assert not blob_file(root, OTHER_DIGEST).exists()


@pytest.mark.parametrize("bad", ["sha256:../../x", "sha256:" + "A" * 64, "md5:" + "a" * 32, "nope"])
def test_ingest_with_an_invalid_expected_digest_fails(run: Cli, hello: str, bad: str) -> None:
    before = run.state()
    run.fails("content", "ingest", "--expected-digest", bad, "ref", input=OTHER, match="invalid digest")
    run.assert_unchanged(before)


def test_ingest_with_a_negative_expected_size_is_a_usage_error(run: Cli) -> None:
    run.usage_error("content", "ingest", "--expected-size", "-1", "ref", input=OTHER)


def test_ingest_of_bytes_already_stored_keeps_the_blob_file(run: Cli, hello: str, root: Path) -> None:
    st = blob_file(root, hello).stat()
    assert run.ok("content", "ingest", "again", input=HELLO).stdout == HELLO_DIGEST + "\n"
    assert blob_file(root, hello).stat().st_ino == st.st_ino
    assert blob_file(root, hello).stat().st_mtime_ns == st.st_mtime_ns
    assert run.digests() == [HELLO_DIGEST]


def test_ingest_with_labels(run: Cli) -> None:
    run.ok("content", "ingest", "--label", "a=1", "--label", "b=2", "ref", input=HELLO)
    (item,) = json.loads(run.ok("content", "ls", "--json").stdout)["items"]
    assert own(item["labels"]) == {"a": "1", "b": "2"}


def test_ingest_labels_the_blob_a_gc_root_so_collections_keep_it(run: Cli) -> None:
    digest = run.ok("content", "ingest", "ref", input=HELLO).stdout.strip()
    (item,) = json.loads(run.ok("content", "ls", "--json").stdout)["items"]
    assert set(item["labels"]) == {GC_ROOT}
    run.ok("content", "prune", "--older-than", "0s")
    assert run.ok("content", "get", digest).stdout_bytes == HELLO


def test_ingest_with_an_empty_gc_root_label_leaves_the_blob_collectable(run: Cli) -> None:
    digest = run.ok("content", "ingest", "--label", f"{GC_ROOT}=", "ref", input=HELLO).stdout.strip()
    assert run.ok("content", "prune", "--older-than", "0s").stdout.split() == [digest]
    assert run.digests() == []


def test_ingest_with_a_label_without_a_key_is_a_usage_error(run: Cli) -> None:
    run.usage_error("content", "ingest", "--label", "=value", "ref", input=HELLO)
    assert run.digests() == []


def test_ingest_with_a_label_without_a_value_labels_it_key_true_as_in_ctr(run: Cli) -> None:
    run.ok("content", "ingest", "--label", "novalue", "ref", input=HELLO)
    (item,) = json.loads(run.ok("content", "ls", "--json").stdout)["items"]
    assert own(item["labels"]) == {"novalue": "true"}


def test_ingest_without_a_ref_is_a_usage_error(run: Cli) -> None:
    run.usage_error("content", "ingest", input=HELLO)


def test_ingest_of_empty_stdin_stores_the_empty_blob(run: Cli) -> None:
    empty = "sha256:" + hashlib.sha256(b"").hexdigest()
    assert run.ok("content", "ingest", "empty", input=b"").stdout == empty + "\n"


# --------------------------------------------------------------------------- ls
def test_ls_table_has_digest_size_age_labels(run: Cli) -> None:
    run.ok("content", "ingest", "--label", "k=v", "ref", input=HELLO)
    header, row = run.ok("content", "ls").stdout.splitlines()
    assert header.split() == ["DIGEST", "SIZE", "AGE", "LABELS"]
    cells = row.split()
    assert cells[0] == HELLO_DIGEST
    assert cells[1] == f"{len(HELLO)}B"
    assert cell_without_root(cells[-1]) == "k=v"


def test_ls_is_tab_separated_as_ctr_prints_it(run: Cli) -> None:
    run.ok("content", "ingest", "--label", f"{GC_ROOT}=", "ref", input=HELLO)
    header, row = run.ok("content", "ls").stdout.splitlines()
    assert header == "DIGEST" + "\t" * 9 + "SIZE\tAGE" + "\t" * 3 + "LABELS"
    assert re.fullmatch(re.escape(HELLO_DIGEST) + r"\t6B\t(Less than a second|\d seconds?)\t-", row)


def test_ls_columns_are_what_awk_sees_with_a_tab_separator(run: Cli) -> None:
    run.ok("content", "ingest", "--label", "k=v", "ref", input=HELLO)
    run.ok("content", "ingest", "--label", "k=v", "ref", input=b"x" * 1_500_000)
    for line in run.ok("content", "ls").stdout.splitlines():
        cells = [c for c in line.split("\t") if c]
        assert len(cells) == 4, line
    sizes = [line.split("\t")[1] for line in run.ok("content", "ls").stdout.splitlines()[1:]]
    assert sorted(sizes) == ["1.5MB", "6B"]


def test_ls_shows_a_dash_for_no_labels(run: Cli) -> None:
    run.ok("content", "ingest", "--label", f"{GC_ROOT}=", "ref", input=HELLO)
    _header, row = run.ok("content", "ls").stdout.splitlines()
    assert row.split()[-1] == "-"


def test_ls_quiet_prints_only_digests_sorted(run: Cli) -> None:
    run.ok("content", "ingest", "a", input=OTHER)
    run.ok("content", "ingest", "b", input=HELLO)
    assert run.ok("content", "ls", "-q").stdout == "".join(d + "\n" for d in sorted([HELLO_DIGEST, OTHER_DIGEST]))


def test_ls_json_is_a_versioned_envelope(run: Cli, hello: str) -> None:
    out = json.loads(run.ok("content", "ls", "--json").stdout)
    assert out["schemaVersion"] == 1
    assert out["kind"] == "ContentList"
    assert [(i["digest"], i["size"], own(i["labels"])) for i in out["items"]] == [(HELLO_DIGEST, len(HELLO), {})]


def test_ls_of_an_empty_store_prints_only_the_header(run: Cli) -> None:
    assert run.ok("content", "ls").stdout.split() == ["DIGEST", "SIZE", "AGE", "LABELS"]
    assert run.ok("content", "ls", "-q").stdout == ""


def test_list_is_an_alias_of_ls(run: Cli, hello: str) -> None:
    assert run.ok("content", "list", "-q").stdout == run.ok("content", "ls", "-q").stdout


def test_ls_shows_only_this_namespace(run: Cli, hello: str) -> None:
    run.ok("-n", "other", "content", "ingest", "x", input=OTHER)
    assert run.digests() == [HELLO_DIGEST]
    assert run.digests("other") == [OTHER_DIGEST]


# --------------------------------------------------------------------------- get
def test_get_writes_the_raw_bytes_to_stdout(run: Cli, hello: str) -> None:
    r = run.ok("content", "get", hello)
    assert r.stdout_bytes == HELLO
    assert r.stderr == ""


def test_get_of_a_large_blob_is_byte_exact(run: Cli) -> None:
    data = bytes(range(256)) * 9000  # more than one read chunk
    dgst = run.ok("content", "ingest", "big", input=data).stdout.strip()
    assert run.ok("content", "get", dgst).stdout_bytes == data


def test_get_of_a_missing_blob_fails(run: Cli, hello: str) -> None:
    run.fails("content", "get", ABSENT, match=(ABSENT, "not found"))


def test_get_of_a_blob_of_another_namespace_fails(run: Cli, hello: str) -> None:
    run.fails("-n", "other", "content", "get", hello, match="not found")


@pytest.mark.parametrize("bad", ["sha256:../../../etc/passwd", "sha256:" + "A" * 64, "../metadata.db"])
def test_get_of_an_invalid_digest_fails(run: Cli, hello: str, bad: str) -> None:
    run.fails("content", "get", bad, match="invalid digest")


def test_get_of_a_corrupted_blob_fails(run: Cli, hello: str, root: Path) -> None:
    path = blob_file(root, hello)
    path.chmod(0o644)
    path.write_bytes(b"HELLO\n")
    run.fails("content", "get", hello, match=(hello, "corrupt"))


# --------------------------------------------------------------------------- rm
def test_rm_removes_the_blob_and_prints_its_digest(run: Cli, hello: str, root: Path) -> None:
    r = run.ok("content", "rm", hello)
    assert r.stdout == hello + "\n"
    assert run.digests() == []
    assert not blob_file(root, hello).exists()


def test_rm_of_several_blobs(run: Cli, hello: str) -> None:
    run.ok("content", "ingest", "x", input=OTHER)
    run.ok("content", "rm", hello, OTHER_DIGEST)
    assert run.digests() == []


@pytest.mark.parametrize("alias", ["remove", "delete", "del"])
def test_rm_aliases(run: Cli, hello: str, alias: str) -> None:
    run.ok("content", alias, hello)
    assert run.digests() == []


def test_rm_keeps_the_bytes_another_namespace_still_has(run: Cli, hello: str, root: Path) -> None:
    run.ok("-n", "other", "content", "ingest", "x", input=HELLO)
    run.ok("content", "rm", hello)
    assert blob_file(root, hello).exists()
    assert run.ok("-n", "other", "content", "get", hello).stdout_bytes == HELLO
    run.ok("-n", "other", "content", "rm", hello)
    assert not blob_file(root, hello).exists()


def test_rm_of_a_missing_blob_fails_and_changes_nothing(run: Cli, hello: str) -> None:
    before = run.state()
    run.fails("content", "rm", ABSENT, match=(ABSENT, "not found"))
    run.assert_unchanged(before)


def test_rm_of_an_invalid_digest_fails_before_removing_anything(run: Cli, hello: str) -> None:
    before = run.state()
    run.fails("content", "rm", hello, "sha256:../../metadata.db", match="invalid digest")
    run.assert_unchanged(before)


def test_rm_without_a_digest_is_a_usage_error(run: Cli) -> None:
    run.usage_error("content", "rm")


# --------------------------------------------------------------------------- label
def test_label_sets_labels_and_prints_them_all(run: Cli, hello: str) -> None:
    assert cell_without_root(run.ok("content", "label", hello, "b=2", "a=1").stdout.strip()) == "a=1,b=2"


def test_label_merges_with_existing_labels(run: Cli, hello: str) -> None:
    run.ok("content", "label", hello, "a=1")
    assert cell_without_root(run.ok("content", "label", hello, "b=2").stdout.strip()) == "a=1,b=2"


def test_label_with_an_empty_value_removes_it(run: Cli, hello: str) -> None:
    run.ok("content", "label", hello, "a=1", "b=2")
    assert cell_without_root(run.ok("content", "label", hello, "a=").stdout.strip()) == "b=2"
    assert run.ok("content", "label", hello, "b=", f"{GC_ROOT}=").stdout == "-\n"


def test_labels_show_in_ls(run: Cli, hello: str) -> None:
    run.ok("content", "label", hello, "containerd.io/gc.root=keep")
    _header, row = run.ok("content", "ls").stdout.splitlines()
    assert row.split()[-1] == "containerd.io/gc.root=keep"


def test_label_of_a_missing_blob_fails(run: Cli, hello: str) -> None:
    before = run.state()
    run.fails("content", "label", ABSENT, "a=1", match="not found")
    run.assert_unchanged(before)


def test_label_of_an_invalid_digest_fails(run: Cli, hello: str) -> None:
    run.fails("content", "label", "sha256:../x", "a=1", match="invalid digest")


def test_a_label_without_a_key_is_a_usage_error(run: Cli, hello: str) -> None:
    before = run.state()
    run.usage_error("content", "label", hello, "=value")
    run.assert_unchanged(before)


def test_a_label_without_a_value_is_key_true_as_in_ctr(run: Cli, hello: str) -> None:
    assert cell_without_root(run.ok("content", "label", hello, "novalue").stdout.strip()) == "novalue=true"


def test_label_too_long_fails(run: Cli, hello: str) -> None:
    before = run.state()
    run.fails("content", "label", hello, "k=" + "v" * 4096, match="4096")
    run.assert_unchanged(before)


# --------------------------------------------------------------------------- prune
def _orphan(run: Cli, root: Path, data: bytes) -> str:
    """A blob only namespace `gone` held, left behind as bytes by removing its row."""
    dgst = run.ok("-n", "gone", "content", "ingest", "r", input=data).stdout.strip()
    with sqlite3.connect(root / "metadata.db") as conn:
        conn.execute("DELETE FROM content WHERE namespace = 'gone'")
    return dgst


def test_prune_deletes_bytes_no_namespace_holds(run: Cli, root: Path) -> None:
    orphan = _orphan(run, root, b"orphan")
    kept = run.ok("content", "ingest", "k", input=b"kept").stdout.strip()
    r = run.ok("content", "prune", "--older-than", "0s")
    assert r.stdout.split() == [orphan]
    assert "pruned 1 blobs" in r.stderr
    assert not (root / "content" / "blobs" / "sha256" / orphan[7:]).exists()
    assert run.ok("content", "get", kept).stdout_bytes == b"kept"


def test_prune_removes_unheld_bytes_whatever_their_age(run: Cli, root: Path) -> None:
    """Leases protect what operations in flight write, so stored blobs need no grace
    period; --older-than is about partial writes only."""
    orphan = _orphan(run, root, b"recent")
    assert run.ok("content", "prune").stdout.split() == [orphan]
    assert not (root / "content" / "blobs" / "sha256" / orphan[7:]).exists()


def test_prune_removes_old_partial_writes(run: Cli, root: Path) -> None:
    run.ok("content", "ingest", "k", input=b"x")
    leftover = root / "content" / "ingest" / "ingest-leftover"
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    r = run.ok("content", "prune")
    assert not leftover.exists()
    assert "1 partial writes" in r.stderr


def test_prune_takes_go_style_durations(run: Cli) -> None:
    run.ok("content", "ingest", "k", input=b"x")
    run.ok("content", "prune", "--older-than", "1h30m")
    assert run.usage_error("content", "prune", "--older-than", "soon").exit_code == 2


def test_ingesting_bytes_already_stored_does_not_rewrite_them(run: Cli, root: Path) -> None:
    orphan = _orphan(run, root, b"again")
    path = root / "content" / "blobs" / "sha256" / orphan[7:]
    os.utime(path, (0, 0))
    inode = path.stat().st_ino
    run.ok("content", "ingest", "--expected-digest", orphan, "r", input=b"again")
    assert (path.stat().st_ino, path.stat().st_mtime) == (inode, 0)
    assert orphan in run.digests()
