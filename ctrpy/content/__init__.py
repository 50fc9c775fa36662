"""The content store: verified blobs addressed by digest."""

from ctrpy.content.blobs import MAX_JSON, BlobStore, BlobWriter
from ctrpy.content.store import ContentStore, Info, RawContent, VerifyingReader

__all__ = ["MAX_JSON", "BlobStore", "BlobWriter", "ContentStore", "Info", "RawContent", "VerifyingReader"]
