"""Layer archives: compression sniffing (gzip, zstd), safe layer apply, tree tars.

Nothing here imports click or rich.  The names below load their module on first use, so
that a submodule (``pipeline``, ``treeops``) can be imported without the others.
"""

from typing import TYPE_CHECKING

from ctrpy import lazy as _lazy

if TYPE_CHECKING:
    from ctrpy.archive.apply import (
        ApplyOptions,
        ApplyResult,
        TarHeader,
        apply_layer,
        clean_path,
        iter_tar,
        resolve_in_root,
        safe_join,
    )
    from ctrpy.archive.compression import (
        Compression,
        compress_stream,
        open_decompressed,
        sniff,
    )
    from ctrpy.archive.tree import TreeNode, tree_manifest, write_tree_tar
    from ctrpy.streams import HashingReader

__getattr__, __dir__ = _lazy.exports(__name__, {
    "ctrpy.archive.apply": ("ApplyOptions", "ApplyResult", "TarHeader", "apply_layer", "clean_path", "iter_tar",
                            "resolve_in_root", "safe_join"),
    "ctrpy.archive.compression": ("Compression", "compress_stream", "open_decompressed", "sniff"),
    "ctrpy.archive.tree": ("TreeNode", "tree_manifest", "write_tree_tar"),
    "ctrpy.streams": ("HashingReader",),  # it lives beside the other readers
})

__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "Compression",
    "HashingReader",
    "TarHeader",
    "TreeNode",
    "apply_layer",
    "clean_path",
    "compress_stream",
    "iter_tar",
    "open_decompressed",
    "resolve_in_root",
    "safe_join",
    "sniff",
    "tree_manifest",
    "write_tree_tar",
]
