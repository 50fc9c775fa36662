"""``ctrpy images push``: ctr's flags and output, errors as one line, against a real
registry (distribution 2.8: plain, basic auth, TLS, tokens) and the fault proxy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctrpy.push import SOURCE_LABEL
from tests.builders import BuiltImage, file
from tests.helpers import APP, OTHER_ARCH, Cli, host_image
from tests.peers import run as run_tool
from tests.registry.distribution import DistributionRegistry
from tests.registry.faults import FaultProxy, Rule
from tests.registry.fixtures import BASIC_USERS, TOKEN_USERS, require

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("no_user_credentials")]

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


def image(seed: str) -> BuiltImage:
    return host_image([file("a.txt", seed.encode() * 300)], [file("b.txt", seed.encode() * 700)]).build()


def manifest_at(registry: DistributionRegistry, repo: str, ref: str) -> bytes | None:
    conn = registry.connection()
    try:
        conn.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
        resp = conn.getresponse()
        body = resp.read()
        return body if resp.status == 200 else None
    finally:
        conn.close()


def table(img: BuiltImage, status: str = "done") -> list[tuple[str, str]]:
    refs = [f"manifest-{img.manifest.digest}", f"config-{img.config.digest}", *[f"layer-{b.digest}" for b in img.layers]]
    return [(r, status) for r in refs]


def rows(stdout: str) -> list[tuple[str, str]]:
    out = []
    for line in stdout.splitlines():
        ref, _, status = line.partition(": ")
        out.append((ref, status.strip()))
    return out


# --------------------------------------------------------------------------- output
def test_push_prints_ctrs_final_table_once(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    r = run.ok("images", "push", f"{plain_registry.host}/{repo}:v1", APP)
    assert rows(r.stdout) == table(img)
    assert r.stderr == ""
    assert manifest_at(plain_registry, repo, "v1") == img.manifest.data


def test_the_table_lines_up_as_ctrs_tabwriter_does(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    run.imported(image(repo))
    lines = run.ok("images", "push", f"{plain_registry.host}/{repo}:v1", APP).stdout.splitlines()
    assert len({line.rindex(" ") for line in lines}) == 1  # every status starts in one column
    assert all(line.startswith(("manifest-sha256:", "config-sha256:", "layer-sha256:")) for line in lines)


def test_a_second_push_says_exists_for_everything(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    run.ok("images", "push", f"{plain_registry.host}/{repo}:v1", APP)
    r = run.ok("images", "push", f"{plain_registry.host}/{repo}:v1", APP)
    assert rows(r.stdout) == table(img, "exists")


@pytest.mark.parametrize("quiet", [("-q",), ("images", "push", "-q")], ids=["global", "command"])
def test_quiet_prints_nothing(run: Cli, plain_registry: DistributionRegistry, repo: str, quiet: tuple[str, ...]) -> None:
    img = run.imported(image(repo))
    args = ("-q", "images", "push") if quiet == ("-q",) else quiet
    r = run.ok(*args, f"{plain_registry.host}/{repo}:v1", APP)
    assert (r.stdout, r.stderr) == ("", "")
    assert manifest_at(plain_registry, repo, "v1") == img.manifest.data


def test_local_defaults_to_remote(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    remote = f"{plain_registry.host}/{repo}:v3"
    img = run.imported(image(repo), remote)
    run.ok("images", "push", remote)
    assert manifest_at(plain_registry, repo, "v3") == img.manifest.data


def test_mounted_blobs_say_mounted(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    run.ok("images", "push", f"{plain_registry.host}/{repo}-src:v1", APP)
    for b in (img.config, *img.layers):
        run.ok("content", "label", b.digest, f"{SOURCE_LABEL}{plain_registry.host}={repo}-src")
    r = run.ok("images", "push", f"{plain_registry.host}/{repo}-dst:v1", APP)
    assert [s for _, s in rows(r.stdout)] == ["done", "mounted", *["mounted"] * len(img.layers)]


# --------------------------------------------------------------------------- flags
def test_platform_pushes_that_platforms_manifest(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    from tests.builders import OCILayout, index_of

    other = host_image([file("o", repo.encode())], architecture=OTHER_ARCH, variant=None).build()
    index = index_of([image(repo), other])
    layout = OCILayout()
    layout.add_manifest(index, {"io.containerd.image.name": APP})
    run.ok("images", "import", "--all-platforms", run.write(layout.tar_bytes()))
    r = run.ok("images", "push", "--platform", f"linux/{OTHER_ARCH}", f"{plain_registry.host}/{repo}:o", APP)
    assert rows(r.stdout)[0] == (f"manifest-{other.manifest.digest}", "done")
    assert manifest_at(plain_registry, repo, "o") == other.manifest.data


def test_manifest_and_manifest_type(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    run.ok("images", "push", "--manifest", img.manifest.digest, "--manifest-type", img.manifest.media_type,
           f"{plain_registry.host}/{repo}:m")
    assert manifest_at(plain_registry, repo, "m") == img.manifest.data


def test_chunk_size_and_one_upload_at_a_time(run: Cli, fault_proxy: FaultProxy, repo: str) -> None:
    run.imported(image(repo))
    run.ok("images", "push", "--chunk-size", "1000", "--max-concurrent-uploaded-layers", "1",
           f"{fault_proxy.host}/{repo}:v1", APP)
    assert fault_proxy.count("PATCH") >= 3
    assert fault_proxy.max_in_flight == 1


@pytest.mark.parametrize("args", [("--max-concurrent-uploaded-layers", "0"), ("--chunk-size", "0"),
                                  ("--max-concurrent-uploaded-layers", "x")])
def test_bad_numbers_are_usage_errors(run: Cli, args: tuple[str, ...]) -> None:
    run.usage_error("images", "push", *args, "127.0.0.1:1/x:1", APP)


def test_a_remote_is_required(run: Cli) -> None:
    run.usage_error("images", "push")


# --------------------------------------------------------------------------- errors
def test_an_unknown_image_is_one_line(run: Cli, fault_proxy: FaultProxy, repo: str) -> None:
    run.imported(image(repo))
    run.fails("images", "push", f"{fault_proxy.host}/{repo}:v1", "docker.io/library/nope:1", match="nope")
    assert fault_proxy.count() == 0


def test_a_failure_mid_push_is_one_line_and_leaves_no_tag(
    run: Cli, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str
) -> None:
    run.imported(image(repo))
    before = run.state()
    fault_proxy.add(Rule("PUT", "/blobs/uploads/", nth=2, status=400, headers={"Content-Type": "application/json"},
                         body=b'{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"refused"}]}'))
    run.fails("images", "push", "--max-concurrent-uploaded-layers", "1", f"{fault_proxy.host}/{repo}:v1", APP,
              match="BLOB_UPLOAD_INVALID")
    assert manifest_at(plain_registry, repo, "v1") is None
    run.assert_unchanged(before)


def test_wrong_credentials_are_one_line(run: Cli, basic_registry: DistributionRegistry, repo: str) -> None:
    run.imported(image(repo))
    run.fails("images", "push", "-u", "alice:wrong", f"{basic_registry.host}/{repo}:v1", APP, match="alice")


def test_no_credentials_for_a_registry_that_wants_them_is_one_line(
    run: Cli, basic_registry: DistributionRegistry, repo: str
) -> None:
    run.imported(image(repo))
    run.fails("images", "push", f"{basic_registry.host}/{repo}:v1", APP)


def test_an_absent_platform_is_one_line_with_a_hint(run: Cli, fault_proxy: FaultProxy, repo: str) -> None:
    run.imported(image(repo))
    r = run.fails("images", "push", "--platform", f"linux/{OTHER_ARCH}", f"{fault_proxy.host}/{repo}:v1", APP,
                  match=("--platform", OTHER_ARCH))
    assert "--all-platforms" not in r.stderr  # push has no such flag
    assert fault_proxy.count() == 0


def test_tls_without_its_ca_is_one_line_with_a_hint(run: Cli, tls_registry: DistributionRegistry, repo: str) -> None:
    run.imported(image(repo))
    run.fails("images", "push", f"{tls_registry.host}/{repo}:v1", APP, match="--tlscacert")


# --------------------------------------------------------------------------- auth and TLS
def skopeo_raw(ref: str, *args: str) -> bytes:
    require("skopeo")
    out: bytes = run_tool("skopeo", "inspect", "--raw", *args, f"docker://{ref}", text=False).stdout
    return out


def test_user_and_password(run: Cli, basic_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    user, password = next(iter(BASIC_USERS.items()))
    run.ok("images", "push", "-u", f"{user}:{password}", f"{basic_registry.host}/{repo}:v1", APP)
    assert skopeo_raw(f"{basic_registry.host}/{repo}:v1", "--tls-verify=false", "--creds",
                      f"{user}:{password}") == img.manifest.data


def test_password_stdin(run: Cli, basic_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    user, password = next(iter(BASIC_USERS.items()))
    run.ok("images", "push", "-u", user, "--password-stdin", f"{basic_registry.host}/{repo}:v1", APP,
           input=password + "\n")
    assert skopeo_raw(f"{basic_registry.host}/{repo}:v1", "--tls-verify=false", "--creds",
                      f"{user}:{password}") == img.manifest.data


def test_docker_config_credentials(run: Cli, basic_registry: DistributionRegistry, repo: str, tmp_path: Path) -> None:
    import base64

    img = run.imported(image(repo))
    user, password = next(iter(BASIC_USERS.items()))
    docker = tmp_path / "home" / ".docker"
    docker.mkdir()
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))
    run.ok("images", "push", f"{basic_registry.host}/{repo}:v1", APP)
    assert skopeo_raw(f"{basic_registry.host}/{repo}:v1", "--tls-verify=false", "--creds",
                      f"{user}:{password}") == img.manifest.data


def test_tlscacert(run: Cli, tls_registry: DistributionRegistry, repo: str, tmp_path: Path) -> None:
    img = run.imported(image(repo))
    assert tls_registry.tls is not None
    cert = tls_registry.tls.cert
    run.ok("images", "push", "--tlscacert", str(cert), f"{tls_registry.host}/{repo}:v1", APP)
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(cert.read_bytes())
    assert skopeo_raw(f"{tls_registry.host}/{repo}:v1", "--cert-dir", str(certs)) == img.manifest.data


def test_skip_verify(run: Cli, tls_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    run.ok("images", "push", "-k", f"{tls_registry.host}/{repo}:v1", APP)
    assert skopeo_raw(f"{tls_registry.host}/{repo}:v1", "--tls-verify=false") == img.manifest.data


def test_token_auth(run: Cli, token_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    user, password = next(iter(TOKEN_USERS.items()))
    r = run.ok("images", "push", "-u", f"{user}:{password}", f"{token_registry.host}/{repo}:v1", APP)
    assert rows(r.stdout) == table(img)
    assert skopeo_raw(f"{token_registry.host}/{repo}:v1", "--tls-verify=false", "--creds",
                      f"{user}:{password}") == img.manifest.data


def test_token_auth_with_a_wrong_password_is_one_line(run: Cli, token_registry: DistributionRegistry, repo: str) -> None:
    run.imported(image(repo))
    user = next(iter(TOKEN_USERS))
    run.fails("images", "push", "-u", f"{user}:wrong", f"{token_registry.host}/{repo}:v1", APP, match=user)


def test_bars_on_stderr_and_the_same_table_on_stdout(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    r = run.ok("images", "push", f"{plain_registry.host}/{repo}:v1", APP, env={"FORCE_COLOR": "1"})
    assert rows(r.stdout) == table(img)
    for b in img.layers:  # a bar per blob, named as ctr names it, ended in its state
        assert f"layer-{b.digest}"[:20] in r.stderr
    assert "done" in r.stderr


def test_plain_progress_writes_nothing_but_the_table(run: Cli, plain_registry: DistributionRegistry, repo: str) -> None:
    img = run.imported(image(repo))
    r = run.ok("--progress", "plain", "images", "push", f"{plain_registry.host}/{repo}:v1", APP)
    assert rows(r.stdout) == table(img) and r.stderr == ""


def test_hosts_dir_sends_the_push_to_the_server_it_names(
    run: Cli, fault_proxy: FaultProxy, plain_registry: DistributionRegistry, repo: str, tmp_path: Path
) -> None:
    img = run.imported(image(repo))
    d = tmp_path / "hosts.d" / "registry.test"
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text(f'server = "http://{fault_proxy.host}"\n[header]\n  x-pushed-by = "ctrpy-test"\n')
    run.ok("images", "push", "--hosts-dir", str(tmp_path / "hosts.d"), f"registry.test/{repo}:v1", APP)
    assert manifest_at(plain_registry, repo, "v1") == img.manifest.data
    assert {r.header("x-pushed-by") for r in fault_proxy.requests} == {"ctrpy-test"}


def test_a_docker_image_is_pushed_with_its_media_types(
    run: Cli, plain_registry: DistributionRegistry, repo: str
) -> None:
    img = run.imported(host_image([file("d", repo.encode())], media_types="docker").build())
    r = run.ok("images", "push", f"{plain_registry.host}/{repo}:v1", APP)
    assert rows(r.stdout) == table(img)
    conn = plain_registry.connection()
    try:
        conn.request("GET", f"/v2/{repo}/manifests/v1",
                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
        resp = conn.getresponse()
        assert (resp.getheader("Content-Type"), resp.read()) == (
            "application/vnd.docker.distribution.manifest.v2+json", img.manifest.data)
    finally:
        conn.close()
