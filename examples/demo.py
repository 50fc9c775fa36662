"""`make demo`: build the example archive, import it, list it, extract it, export it again.

Runs against a private root under ./demo-out, so it never touches a real store.  The commands
run as they would in your shell: in a terminal, imports and exports show progress bars on
stderr; piped or in CI, only ctr's plain lines.
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


def ctrpy(*args: str) -> list[str]:
    return [sys.executable, "-m", "ctrpy", "--root", str(OUT / "root"), *args]


def shown(args: tuple[str, ...]) -> str:
    return "ctrpy " + " ".join(shlex.quote(a) for a in args)


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    print(f"\n$ {shown(args)}", flush=True)
    return subprocess.run(ctrpy(*args), check=check)


def pipe(left: tuple[str, ...], right: tuple[str, ...]) -> None:
    """``ctrpy LEFT | ctrpy RIGHT``: data on stdout, progress (if any) on stderr."""
    print(f"\n$ {shown(left)} | {shown(right)}", flush=True)
    producer = subprocess.Popen(ctrpy(*left), stdout=subprocess.PIPE)
    assert producer.stdout is not None
    consumer = subprocess.run(ctrpy(*right), stdin=producer.stdout, check=False)
    producer.stdout.close()
    if producer.wait() != 0 or consumer.returncode != 0:
        raise SystemExit(f"demo: pipe failed ({producer.returncode}, {consumer.returncode})")


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
    # a script's view: export to stdout, import from stdin, -q prints only the image names
    pipe(("images", "export", "-", "example.com/demo/hello:latest"),
         ("-q", "-n", "piped", "images", "import", *snap, "-"))
    if shutil.which("skopeo"):
        print("\n$ skopeo inspect --raw oci-archive:demo-out/hello-export.tar", flush=True)
        subprocess.run(["skopeo", "inspect", "--raw", f"oci-archive:{OUT / 'hello-export.tar'}"], check=True)
        print()
    print(f"\ndemo done; everything is under {OUT}")


if __name__ == "__main__":
    main()
