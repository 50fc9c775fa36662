"""Image records and walking image content."""

from ctrpy.images.store import Image, ImageRef, ImageStore
from ctrpy.images.walk import Config, Manifest, Walker

__all__ = ["Config", "Image", "ImageRef", "ImageStore", "Manifest", "Walker"]
