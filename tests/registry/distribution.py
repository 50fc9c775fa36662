"""Debian's ``docker-registry`` (CNCF distribution 2.8) on 127.0.0.1, for one test session.

``DistributionRegistry`` writes a config under a temp dir (filesystem storage, deletes
enabled, ``http.secret`` always set), starts ``docker-registry serve`` in its own process
group on a free port, waits (bounded) until ``GET /v2/`` answers, and kills the group on
``stop()``.  Auth: ``htpasswd={"user": "pass"}`` (bcrypt, through ``htpasswd -Bbc``), or
``token=TokenAuth(...)`` for a token server.  TLS: ``tls=CertPair``, optionally with
``client_ca`` to require client certificates (``client_cert`` is then what the readiness
check and :meth:`connection` present).

Nothing here imports pytest (the fixtures are in ``tests.registry.fixtures``)::

    with DistributionRegistry(tmpdir) as reg:
        print(reg.url, reg.host)       # http://127.0.0.1:PORT, 127.0.0.1:PORT
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.peers import have, log_excerpt, run, spawn_daemon, stop_daemon, tail_of
from tests.registry.certs import CertPair

BINARY = "docker-registry"
START_TIMEOUT = 20.0
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


class RegistryStartError(RuntimeError):
    """The registry did not come up; the message ends with its log's tail."""


@dataclass(frozen=True)
class TokenAuth:
    """What distribution needs to trust a token server."""

    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _yaml_str(s: str | os.PathLike[str]) -> str:
    return json.dumps(os.fspath(s))  # a JSON string is a YAML string


class DistributionRegistry:
    def __init__(
        self,
        workdir: str | os.PathLike[str] | None = None,
        *,
        htpasswd: Mapping[str, str] | None = None,
        token: TokenAuth | None = None,
        tls: CertPair | None = None,
        client_ca: Path | None = None,
        client_cert: CertPair | None = None,
        binary: str = BINARY,
        start_timeout: float = START_TIMEOUT,
        log_level: str = "info",
    ) -> None:
        if htpasswd and token:
            raise ValueError("htpasswd and token auth are exclusive")
        self._own_dir = workdir is None
        self.dir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="distribution-"))
        self.htpasswd = dict(htpasswd or {})
        self.token = token
        self.tls = tls
        self.client_ca = client_ca
        self.client_cert = client_cert  # what connection() and the readiness check present
        self.binary = binary
        self.start_timeout = start_timeout
        self.log_level = log_level
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    # -- where -----------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "registry.log"

    @property
    def config_path(self) -> Path:
        return self.dir / "config.yml"

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.host}/{repo}:{tag}"

    # -- config ----------------------------------------------------------------------------------

    def config_yaml(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            f"  level: {self.log_level}",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {_yaml_str(self.data_dir)}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {_yaml_str('ctrpy-test-secret-' + os.urandom(8).hex())}",
        ]
        if self.tls:
            lines += [
                "  tls:",
                f"    certificate: {_yaml_str(self.tls.cert)}",
                f"    key: {_yaml_str(self.tls.key)}",
            ]
            if self.client_ca:
                lines += ["    clientcas:", f"      - {_yaml_str(self.client_ca)}"]
        if self.htpasswd:
            lines += [
                "auth:",
                "  htpasswd:",
                "    realm: ctrpy-test",
                f"    path: {_yaml_str(self.dir / 'htpasswd')}",
            ]
        elif self.token:
            lines += [
                "auth:",
                "  token:",
                f"    realm: {_yaml_str(self.token.realm)}",
                f"    service: {_yaml_str(self.token.service)}",
                f"    issuer: {_yaml_str(self.token.issuer)}",
                f"    rootcertbundle: {_yaml_str(self.token.rootcertbundle)}",
            ]
        return "\n".join(lines) + "\n"

    def _write_htpasswd(self) -> None:
        path = self.dir / "htpasswd"
        path.unlink(missing_ok=True)
        for i, (user, password) in enumerate(self.htpasswd.items()):
            flags = "-Bbc" if i == 0 else "-Bb"  # bcrypt is the only hash distribution takes
            run("htpasswd", flags, str(path), user, password)

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> DistributionRegistry:
        if self.proc is not None:
            raise RuntimeError("the registry is already running")
        if not have(self.binary):
            raise RegistryStartError(f"{self.binary} is not installed")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        if self.htpasswd:
            self._write_htpasswd()
        last: Exception | None = None
        for _ in range(3):  # the free port may be taken in between: try another
            self.port = free_port()
            self.config_path.write_text(self.config_yaml())
            try:
                self._spawn()
                self._wait_ready()
                return self
            except RegistryStartError as e:
                last = e
                self._kill()
                if "address already in use" not in self.log_tail().lower():
                    break
        self.stop()
        raise last or RegistryStartError("the registry did not start")

    def _spawn(self) -> None:
        self.proc = spawn_daemon([self.binary, "serve", str(self.config_path)], self.log_path)

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise RegistryStartError(
                    f"{self.binary} exited with status {self.proc.returncode} while starting{log_excerpt(self.log_path)}"
                )
            status = self.ping()
            if status in (200, 401):
                return
            if time.monotonic() > deadline:
                raise RegistryStartError(f"{self.binary} did not answer on {self.url} within {self.start_timeout:g}s{log_excerpt(self.log_path)}")
            time.sleep(0.05)

    def ping(self) -> int | None:
        """The status of ``GET /v2/``, or None when nothing answers."""
        try:
            conn = self.connection(timeout=2)
            try:
                conn.request("GET", "/v2/")
                return conn.getresponse().status
            finally:
                conn.close()
        except (OSError, http.client.HTTPException):
            return None

    def connection(self, timeout: float = 30) -> http.client.HTTPConnection:
        """A raw connection to the registry (for tests that build broken content by hand)."""
        if self.tls:
            ctx = ssl.create_default_context(cafile=str(self.tls.cert))
            if self.client_cert is not None:
                ctx.load_cert_chain(str(self.client_cert.cert), str(self.client_cert.key))
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def manifest_digest(self, repo: str, tag: str) -> str | None:
        """The digest the registry serves for ``repo:tag`` (None when it has none)."""
        conn = self.connection(timeout=10)
        try:
            conn.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT})
            resp = conn.getresponse()
            resp.read()
            return resp.getheader("Docker-Content-Digest") if resp.status == 200 else None
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        return tail_of(self.log_path, lines)

    def _kill(self) -> None:
        if self.proc is not None:
            stop_daemon(self.proc)
            self.proc = None

    def stop(self) -> None:
        self._kill()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> DistributionRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
