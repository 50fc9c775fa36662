"""``ctrpy images pull`` and ``ctrpy content fetch`` against a real registry: ctr's output,
the flags, and every failure as one line, exit 1, no image, the store unchanged and usable;
a pull killed with SIGKILL is resumed by the next one."""

from __future__ import annotations

import random
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from ctrpy.client import Client
from tests.builders import file, index_of
from tests.helpers import HOST, Cli, Processes, host_image, wait_until
from tests.registry.distribution import DistributionRegistry
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import BASIC_USERS
from tests.registry.images import Pushed, push_index_with_missing_child

pytestmark = pytest.mark.interop

Push = Callable[..., Pushed]


def pushed_host_image(push: Push, repo: str, *, layers: int = 2, size: int = 20_000, **kw: object) -> Pushed:
    rng = random.Random(repo)
    img = host_image(*[[file(f"f{i}.bin", rng.randbytes(size * (i + 1)))] for i in range(layers)])
    return push(img, repo, "v1", **kw)


def via(proxy: FaultProxy, pushed: Pushed) -> str:
    return f"{proxy.host}/{pushed.repo}:{pushed.tag}"


def chain_id(run: Cli, ref: str) -> str:
    client = Client(run.root)
    try:
        return client.layers(ref).chain_ids[-1]
    finally:
        client.close()


def rejects_pull(run: Cli, *args: str, match: str | tuple[str, ...] = ()) -> str:
    """The pull fails by the contract, changes nothing a user sees, and the store still works.

    Downloads it stopped stay as partial writes for a rerun to resume (named after its
    lease, which is gone): the next collection removes them, and then the store is as it was."""
    before = run.state()
    r = run.fails("images", "pull", *args, match=match, stdout=None)  # an unpack may have begun
    assert "done" not in r.stdout
    ingest = run.root / "content" / "ingest"
    left = [p.name for p in ingest.iterdir()] if ingest.is_dir() else []
    assert all(re.fullmatch(r"ctrpy-pull-[0-9a-f]{16}@pull-[0-9a-f]{64}", n) for n in left), left
    if left:
        run.ok("content", "prune")
    run.assert_unchanged(before)
    run.assert_store_works()
    return r.stderr


# --------------------------------------------------------------------------- output
def test_pull_prints_ctrs_unpacking_line_and_nothing_else(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    r = run.ok("images", "pull", pushed.ref)
    assert r.stdout == f"unpacking {HOST.normalized()} {pushed.digest}...done\n"
    assert r.stderr == ""
    assert run.names() == [pushed.ref]


def test_quiet_prints_the_image_name_only(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    r = run.ok("images", "pull", "-q", pushed.ref)
    assert (r.stdout, r.stderr) == (f"{pushed.ref}\n", "")


def test_print_chainid_prints_the_top_chain_id(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    r = run.ok("images", "pull", "--print-chainid", pushed.ref)
    assert r.stdout.splitlines()[-1] == f"image chain ID: {chain_id(run, pushed.ref)}"


def test_progress_none_prints_the_name(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    assert run.ok("--progress", "none", "images", "pull", pushed.ref).stdout == f"{pushed.ref}\n"


def test_label_and_snapshotter_are_applied(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    run.ok("images", "pull", "--label", "team=infra", "--snapshotter", "native", pushed.ref)
    assert run.image(pushed.ref)["labels"] == {"team": "infra"}
    assert chain_id(run, pushed.ref) in run.snapshot_keys("native")


def test_local_is_accepted(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    run.ok("images", "pull", "--local", "-q", pushed.ref)
    assert run.names() == [pushed.ref]


def test_max_concurrent_downloads_bounds_the_requests_in_flight(run: Cli, push: Push, repo: str,
                                                                fault_proxy: FaultProxy) -> None:
    pushed = pushed_host_image(push, repo, layers=3)
    run.ok("images", "pull", "-q", "--max-concurrent-downloads", "1", via(fault_proxy, pushed))
    assert fault_proxy.max_in_flight == 1


def test_platform_and_all_platforms_together_are_a_usage_error(run: Cli) -> None:
    run.usage_error("images", "pull", "--platform", "linux/amd64", "--all-platforms", "127.0.0.1:1/x:1")


def test_no_concurrent_downloads_is_a_usage_error(run: Cli) -> None:
    run.usage_error("images", "pull", "--max-concurrent-downloads", "0", "127.0.0.1:1/x:1")


def test_all_metadata_fetches_the_other_platforms_configs(run: Cli, push: Push, repo: str) -> None:
    other = "arm64" if HOST.architecture != "arm64" else "amd64"
    theirs = host_image([file("t.txt", repo.encode())], architecture=other, variant=None)
    pushed = push(index_of([host_image([file("m.txt", repo.encode())]), theirs]), repo, "v1")
    run.ok("images", "pull", "-q", "--all-metadata", pushed.ref)
    config = pushed.images[1].config.digest
    assert config in run.digests()
    assert not any(b.digest in run.digests() for b in pushed.images[1].layers)


def test_skip_metadata_overrides_all_metadata(run: Cli, push: Push, repo: str) -> None:
    other = "arm64" if HOST.architecture != "arm64" else "amd64"
    theirs = host_image([file("t.txt", repo.encode())], architecture=other, variant=None)
    pushed = push(index_of([host_image([file("m.txt", repo.encode())]), theirs]), repo, "v1")
    run.ok("images", "pull", "-q", "--all-metadata", "--skip-metadata", pushed.ref)
    assert pushed.images[1].config.digest not in run.digests()


# --------------------------------------------------------------------------- content fetch
def test_content_fetch_records_the_image_without_unpacking(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    r = run.ok("content", "fetch", pushed.ref)
    assert r.stdout == f"{pushed.ref}\n"
    assert run.names() == [pushed.ref]
    assert run.snapshot_keys() == []
    assert all(d.digest in run.digests() for d in pushed.layer_descriptors())


def test_content_fetch_metadata_only_fetches_no_layer(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    run.ok("content", "fetch", "--metadata-only", "--label", "k=v", pushed.ref)
    digests = run.digests()
    assert pushed.digest in digests and pushed.config_descriptor().digest in digests
    assert not any(d.digest in digests for d in pushed.layer_descriptors())
    assert run.image(pushed.ref)["labels"] == {"k": "v"}


# --------------------------------------------------------------------------- credentials and TLS
def test_user_with_password_stdin(run: Cli, push: Push, repo: str, basic_registry: DistributionRegistry) -> None:
    user, password = next(iter(BASIC_USERS.items()))
    pushed = pushed_host_image(push, repo, registry=basic_registry, creds=f"{user}:{password}")
    run.ok("images", "pull", "-q", "-u", user, "--password-stdin", pushed.ref, input=password + "\n")
    assert run.names() == [pushed.ref]


def test_wrong_credentials_fail_with_a_hint(populated: Cli, push: Push, repo: str,
                                            basic_registry: DistributionRegistry) -> None:
    user, password = next(iter(BASIC_USERS.items()))
    pushed = pushed_host_image(push, repo, registry=basic_registry, creds=f"{user}:{password}")
    err = rejects_pull(populated, "-u", f"{user}:n0t-the-p4ss", pushed.ref, match=(basic_registry.host, "-u USER"))
    assert "n0t-the-p4ss" not in err


def test_no_credentials_for_a_registry_that_wants_them_give_the_hint_once(
    populated: Cli, push: Push, repo: str, basic_registry: DistributionRegistry
) -> None:
    user, password = next(iter(BASIC_USERS.items()))
    pushed = pushed_host_image(push, repo, registry=basic_registry, creds=f"{user}:{password}")
    err = rejects_pull(populated, pushed.ref, match=(basic_registry.host, "user name and password", "-u USER"))
    assert err.count("-u USER") == 1


def test_a_user_without_a_password_off_a_terminal_is_told_how_to_give_it(
    populated: Cli, push: Push, repo: str, basic_registry: DistributionRegistry
) -> None:
    user, password = next(iter(BASIC_USERS.items()))
    pushed = pushed_host_image(push, repo, registry=basic_registry, creds=f"{user}:{password}")
    rejects_pull(populated, "-u", user, pushed.ref, match=(f"a password for user {user!r}", "--password-stdin"))


def test_a_tls_registry_on_loopback_needs_its_ca(populated: Cli, push: Push, repo: str,
                                                tls_registry: DistributionRegistry) -> None:
    pushed = pushed_host_image(push, repo, registry=tls_registry)
    rejects_pull(populated, pushed.ref, match="--tlscacert")
    assert tls_registry.tls is not None
    populated.ok("images", "pull", "-q", "--tlscacert", str(tls_registry.tls.cert), pushed.ref)


# --------------------------------------------------------------------------- failures
def test_a_missing_tag_fails_by_the_contract(populated: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    rejects_pull(populated, f"{pushed.registry_host}/{repo}:nope", match=f"{repo}:nope")


def test_a_missing_digest_fails_by_the_contract(populated: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    missing = "sha256:" + "2" * 64
    rejects_pull(populated, f"{pushed.registry_host}/{repo}@{missing}", match=missing)


def test_a_corrupt_blob_fails_by_the_contract(populated: Cli, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = pushed_host_image(push, repo)
    layer = pushed.layer_descriptors()[1]
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", corrupt=True))
    rejects_pull(populated, via(fault_proxy, pushed), match=layer.digest)


def test_a_deleted_layer_fails_by_the_contract(populated: Cli, push: Push, repo: str,
                                              plain_registry: DistributionRegistry) -> None:
    pushed = pushed_host_image(push, repo)
    layer = pushed.layer_descriptors()[0]
    conn = plain_registry.connection()
    conn.request("DELETE", f"/v2/{repo}/blobs/{layer.digest}")
    assert conn.getresponse().status == 202
    conn.close()
    rejects_pull(populated, pushed.ref, match=layer.digest)


def test_a_deleted_child_manifest_fails_by_the_contract(populated: Cli, repo: str,
                                                       plain_registry: DistributionRegistry) -> None:
    index = index_of([host_image([file("a.txt", repo.encode())]).build()])
    gone = push_index_with_missing_child(plain_registry, repo, "idx", index)
    rejects_pull(populated, f"{plain_registry.host}/{repo}:idx", match=gone.manifest.digest)


def test_a_wrong_docker_content_digest_fails_by_the_contract(populated: Cli, push: Push, repo: str,
                                                            fault_proxy: FaultProxy) -> None:
    pushed = pushed_host_image(push, repo)
    fault_proxy.add(Rule("HEAD", "/manifests/", status=405))
    fault_proxy.add(Rule("GET", "/manifests/", set_headers={"Docker-Content-Digest": "sha256:" + "3" * 64}))
    rejects_pull(populated, via(fault_proxy, pushed), match="sha256:" + "3" * 64)


def test_a_rate_limit_is_waited_out(run: Cli, push: Push, repo: str, fault_proxy: FaultProxy) -> None:
    pushed = pushed_host_image(push, repo)
    fault_proxy.add(Rule("GET", "/blobs/", nth=1, status=429, headers={"Retry-After": "1"}))
    run.ok("images", "pull", "-q", via(fault_proxy, pushed))
    assert run.names() == [via(fault_proxy, pushed)]


def test_an_unreachable_registry_fails_by_the_contract(populated: Cli) -> None:
    from tests.registry.distribution import free_port

    rejects_pull(populated, f"127.0.0.1:{free_port()}/nothing:here", match="127.0.0.1")


# --------------------------------------------------------------------------- kill -9
def test_a_killed_pull_is_resumed_by_the_next(procs: Processes, root: Path, push: Push, repo: str,
                                              fault_proxy: FaultProxy) -> None:
    pushed = pushed_host_image(push, repo, layers=1, size=2_000_000)
    (layer,) = pushed.layer_descriptors()
    cut = 700_000
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", nth=1, cut_after=cut))
    fault_proxy.add(Rule("GET", f"/blobs/{layer.digest}", nth=2, delay=60))  # the resume hangs: kill it there
    ref = via(fault_proxy, pushed)
    proc = procs.start("images", "pull", ref)
    ingest = root / "content" / "ingest"

    def partial_holds_the_cut() -> bool:
        files = list(ingest.glob("*@pull-*")) if ingest.is_dir() else []
        return len(files) == 1 and files[0].stat().st_size == cut and fault_proxy.count("GET", f"/blobs/{layer.digest}") == 2

    wait_until(partial_holds_the_cut, "the partial download holding the bytes before the cut", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    fault_proxy.clear()
    done = procs.run("images", "pull", "-q", ref)
    assert done.returncode == 0, str(done)
    assert [r.header("range") for r in fault_proxy.matching("GET", f"/blobs/{layer.digest}")] == [f"bytes={cut}-"]
    assert list(ingest.iterdir()) == []
    check = procs.run("images", "check")
    assert "complete (2/2)" in check.stdout, str(check)


def test_with_bars_stdout_carries_the_same_line(run: Cli, push: Push, repo: str) -> None:
    pushed = pushed_host_image(push, repo)
    r = run.ok("images", "pull", pushed.ref, env={"FORCE_COLOR": "1"})
    assert r.stdout == f"unpacking {HOST.normalized()} {pushed.digest}...done\n"
    assert f"layer-{pushed.layer_descriptors()[0].digest}"[:20] in r.stderr  # a bar per blob on stderr


def test_two_pulls_of_one_image_at_once_both_succeed(procs: Processes, push: Push, repo: str,
                                                      fault_proxy: FaultProxy) -> None:
    pushed = pushed_host_image(push, repo, layers=2, size=500_000)
    layers = "|".join(d.digest for d in pushed.layer_descriptors())
    fault_proxy.add(Rule("GET", f"/blobs/({layers})", barrier=2, barrier_timeout=10))  # both download at once
    ref = via(fault_proxy, pushed)
    first, second = procs.start("images", "pull", "-q", ref), procs.start("images", "pull", "-q", ref)
    for proc in (first, second):
        done = procs.wait(proc)
        assert (done.returncode, done.stdout) == (0, f"{ref}\n"), str(done)
    check = procs.run("images", "check")
    assert "complete (3/3)" in check.stdout, str(check)
