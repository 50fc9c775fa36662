"""The registry's own floor for a push: the smallest complete push of one stored image,
by curl (``python bench/floor.py REGISTRY/REPO:TAG BLOBS_DIR MANIFEST_DIGEST``).

The config and the layers are each POSTed and then PUT in one request, all at once (as
ctrpy, ctr and skopeo send them), then the manifest under the tag. No HEAD, no retry, no
verification: what is left is what the registry itself needs to receive the image, the
figure bench's ``push`` case reports beside ctr and skopeo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def _upload_url(base: str, repo: str) -> str:
    head = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-D", "-", "-X", "POST",
                           f"{base}/v2/{repo}/blobs/uploads/"], capture_output=True, text=True, check=True).stdout
    location = next(line.split(":", 1)[1].strip() for line in head.splitlines()
                    if line.lower().startswith("location:"))
    if location.startswith("/"):
        location = base + location
    return location + ("&" if "?" in location else "?")


def main(argv: list[str]) -> int:
    ref, blobs_dir, manifest_digest = argv
    host, _, rest = ref.partition("/")
    repo, _, tag = rest.rpartition(":")
    base = f"http://{host}"
    blobs = Path(blobs_dir)
    manifest = blobs / manifest_digest.removeprefix("sha256:")
    doc = json.loads(manifest.read_bytes())
    digests = [d["digest"] for d in [doc["config"], *doc["layers"]]]
    puts = [subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T",
                              str(blobs / d.removeprefix("sha256:")), f"{_upload_url(base, repo)}digest={d}"],
                             stdout=subprocess.PIPE, text=True) for d in digests]
    codes = [p.communicate()[0] for p in puts]
    code = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT", "-H",
                           f"Content-Type: {MANIFEST_TYPE}", "--data-binary", f"@{manifest}",
                           f"{base}/v2/{repo}/manifests/{tag}"], capture_output=True, text=True, check=True).stdout
    if any(c != "201" for c in [*codes, code]):
        print(f"bench.floor: the registry answered {codes} to the blobs and {code} to the manifest", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
