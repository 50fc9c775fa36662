"""Layer archives: compression sniffing (gzip, zstd), safe layer apply, tree tars.

Nothing here imports click or rich.
"""

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
    HashingReader,
    compress_stream,
    open_decompressed,
    sniff,
)
from ctrpy.archive.tree import TreeNode, tree_manifest, write_tree_tar

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
