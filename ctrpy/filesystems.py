"""An image's root filesystem as a directory (``extract``), one tar (``flatten``) or a
mount (``mount``/``unmount``): the part of the Client that makes trees from layers."""

from __future__ import annotations

import os
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from ctrpy.errors import FailedPrecondition, NotFound
from ctrpy.oci import Matcher
from ctrpy.util import Output, writable

if TYPE_CHECKING:
    from ctrpy.content import ContentStore
    from ctrpy.images import Image, ImageRef
    from ctrpy.metadata.leases import Held
    from ctrpy.progress import Sink
    from ctrpy.root import Root
    from ctrpy.snapshots import Snapshotter
    from ctrpy.unpack import ImageLayers


class RootFilesystems:
    """Mixed into :class:`ctrpy.client.Client`."""

    if TYPE_CHECKING:  # what the Client provides
        root: Root
        namespace: str
        progress: Sink

        @property
        def content(self) -> ContentStore: ...
        def image(self, image: ImageRef) -> Image: ...
        def lease(self, purpose: str) -> AbstractContextManager[Held]: ...
        def snapshotter(self, name: str | None = None) -> Snapshotter: ...
        def unpack(self, image: ImageRef, matcher: Matcher | None = None, snapshotter: str | None = None) -> str: ...

    def extract(self, image: ImageRef, dest: str | os.PathLike[str], matcher: Matcher | None = None) -> ImageLayers:
        """Write the image's flattened root filesystem into ``dest`` (new or empty)."""
        from ctrpy.archive.treeops import empty_tree, remove_tree
        from ctrpy.unpack import extract as extract_layers

        img = self.image(image)
        path = Path(dest)
        existed = path.exists()
        if existed and (not path.is_dir() or any(path.iterdir())):
            raise FailedPrecondition(f"{path} exists and is not an empty directory")
        try:
            return extract_layers(self.content, img.name, img.target, matcher or Matcher.default(), path, self.progress)
        except BaseException:  # failed or interrupted: no half tree is left behind
            if existed:
                empty_tree(path)
            else:
                remove_tree(path, best_effort=True)
            raise

    def flatten(self, image: ImageRef, out: Output, matcher: Matcher | None = None) -> None:
        """The image's flattened root filesystem as one tar, to a stream or a path.

        The layers are extracted (the same safe apply as ``extract``) into a private
        directory under ``ROOT/tmp``, which is then written as a deterministic tar and
        removed: the tar is exactly the tree ``extract`` makes, so it can never name a path
        through a symlink or a hardlink outside itself."""
        from ctrpy.archive.tree import write_tree_tar
        from ctrpy.archive.treeops import remove_tree
        from ctrpy.unpack import extract as extract_layers
        from ctrpy.unpack import require_layers

        img = self.image(image)
        require_layers(self.content, img.name, img.target, matcher or Matcher.default())
        self.root.ensure()
        scratch = self.root.path / "tmp"
        scratch.mkdir(mode=0o700, exist_ok=True)
        with self.lease("flatten") as held, writable(out) as f:  # OUT checked first, written last
            work = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{held.tag}flatten-"))
            try:
                rootfs = work / "rootfs"
                extract_layers(self.content, img.name, img.target, matcher or Matcher.default(), rootfs, self.progress)
                write_tree_tar(rootfs, f)
            finally:
                remove_tree(work, best_effort=True)

    def mount(
        self,
        image: ImageRef,
        target: str | os.PathLike[str],
        *,
        rw: bool = False,
        matcher: Matcher | None = None,
        snapshotter: str | None = None,
    ) -> str:
        """Mount the image's root filesystem on ``target`` (unpacking first if needed)."""
        from ctrpy.snapshots.mounts import mount_snapshot, require_root
        from ctrpy.unpack import require_layers

        require_root("mounting")
        where = Path(os.path.abspath(target))  # the mount runs from another directory
        if not where.is_dir():
            raise NotFound(f"mount target {target} is not a directory")
        sn = self.snapshotter(snapshotter)
        img = self.image(image)
        require_layers(self.content, img.name, img.target, matcher or Matcher.default())
        top = self.unpack(img, matcher, sn.name)
        mount_snapshot(sn, top, where, rw=rw)
        return str(target)

    def unmount(self, target: str | os.PathLike[str], *, remove: bool = False, snapshotter: str | None = None) -> None:
        from ctrpy import snapshots as _snapshots
        from ctrpy.snapshots.mounts import mount_key, require_root, unmount_snapshot

        require_root("unmounting")
        where = Path(os.path.abspath(target))
        key = mount_key(where)
        candidates = [snapshotter] if snapshotter else _snapshots.names()
        base = self.root.path / "snapshots"
        owner = None
        for name in candidates:  # the snapshotter that holds this target's mount snapshot
            sn = _snapshots.get(name, base, self.root.db, self.namespace)
            if sn.find(key) is not None:
                owner = sn
                break
        unmount_snapshot(owner, where, remove=remove)
