"""A private loopback registry: Debian's ``docker-registry`` (CNCF distribution 2.8).

``Registry(data_dir).start()`` writes a config under a fresh dir inside ``data_dir``, serves
plain HTTP on ``127.0.0.1`` at a free port in its own process group and waits for
``GET /v2/``; ``stop()`` kills the group and removes the dir::

    with Registry(workdir) as reg:
        skopeo("copy", "--dest-tls-verify=false", "oci-archive:A:1", f"docker://{reg.host}/r:1")
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.measure import CaseFailed

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Registry:
    def __init__(self, data_dir: Path, *, binary: str = "docker-registry", start_timeout: float = 20.0) -> None:
        self.data_dir = data_dir
        self.binary = binary
        self.start_timeout = start_timeout
        self.dir: Path | None = None
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Registry:
        if shutil.which(self.binary) is None:
            raise CaseFailed(f"{self.binary} is not installed (apt-get install docker-registry)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="registry-", dir=self.data_dir))
        for _attempt in range(5):  # the free port may be taken before the registry binds it
            self.port = free_port()
            config = self.dir / "config.yml"
            config.write_text(
                "version: 0.1\n"
                "log: {level: warn, accesslog: {disabled: true}}\n"
                f"storage: {{filesystem: {{rootdirectory: {self.dir / 'data'}}}, delete: {{enabled: true}}}}\n"
                f"http: {{addr: '{self.host}', secret: {secrets.token_hex(16)}}}\n"
            )
            with (self.dir / "registry.log").open("ab") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
            if self._wait_ready():
                return self
            self._kill()
        tail = (self.dir / "registry.log").read_text(errors="replace")[-1500:]
        self.stop()
        raise CaseFailed(f"docker-registry did not come up: {tail}")

    def _wait_ready(self) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        return False

    def manifest_digest(self, repo: str, tag: str) -> str | None:
        """The digest the registry serves for ``repo:tag`` (None when it has none)."""
        req = urllib.request.Request(
            f"http://{self.host}/v2/{repo}/manifests/{tag}", method="HEAD", headers={"Accept": MANIFEST_ACCEPT}
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError:
            return None

    def _kill(self) -> None:
        if self.proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # anything else left in its group
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc = None

    def stop(self) -> None:
        self._kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
