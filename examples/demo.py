"""`make demo`: build the example archive, import it, list it, extract it, export it again.

Runs against a private root under ./demo-out, so it never touches a real store.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "demo-out"


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "ctrpy", "--root", str(OUT / "root"), *args]
    print(f"\n$ ctrpy {' '.join(shlex.quote(a) for a in args)}", flush=True)
    return subprocess.run(cmd, check=check)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    archive = OUT / "hello.tar"
    subprocess.run([sys.executable, str(HERE / "make_example.py"), str(archive)], check=True,
                   stdout=subprocess.DEVNULL)
    print(f"built {archive} ({archive.stat().st_size} bytes) with examples/make_example.py")
    snap = [] if os.geteuid() == 0 else ["--snapshotter", "native"]
    run("images", "import", "--oci-name", "example.com/demo/hello", *snap, str(archive))
    run("images", "ls")
    run("images", "check")
    run("images", "extract", "example.com/demo/hello:latest", str(OUT / "rootfs"))
    for p in sorted((OUT / "rootfs").rglob("*")):
        kind = "->" + os.readlink(p) if p.is_symlink() else ("/" if p.is_dir() else "")
        print(f"  rootfs/{p.relative_to(OUT / 'rootfs')}{kind}")
    run("images", "export", str(OUT / "hello-export.tar"), "example.com/demo/hello:latest")
    run("-n", "copy", "images", "import", "--no-unpack", str(OUT / "hello-export.tar"))
    run("-n", "copy", "images", "ls", "-q")
    if shutil.which("skopeo"):
        print("\n$ skopeo inspect --raw oci-archive:demo-out/hello-export.tar", flush=True)
        subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{OUT / 'hello-export.tar'}"], check=True)
        print()
    print(f"\ndemo done; everything is under {OUT}")


if __name__ == "__main__":
    main()
