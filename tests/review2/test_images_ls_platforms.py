"""``images ls`` PLATFORMS: ctr 1.6 prints each platform once, sorted (a set of
``platforms.Format``); ctrpy (``Walker.platforms`` via ``Client.summarize``) repeats one per index
entry, so the index of a docker archive of two images (``--index-name``) lists
``linux/amd64,linux/amd64`` where ctr shows ``linux/amd64``."""

from __future__ import annotations

import json

from tests.builders import file
from tests.review2._helpers import HOST, Run, docker_archive, host_image


def test_the_index_of_two_same_platform_images_lists_its_platform_once(run: Run) -> None:
    a = host_image([[file("a", b"a")]])
    b = host_image([[file("b", b"b")]])
    run.ok("images", "import", "--no-unpack", "--index-name", "idx:1", "-",
           input=docker_archive((a, ["a:1"]), (b, ["b:1"])))
    items = {i["name"]: i for i in json.loads(run.ok("images", "ls", "--json").stdout)["items"]}
    assert items["idx:1"]["platforms"] == [str(HOST)]
    row = next(line for line in run.ok("images", "ls").stdout.splitlines() if line.startswith("idx:1 "))
    assert f"{HOST},{HOST}" not in row
