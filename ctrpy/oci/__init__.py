"""OCI vocabulary: media types, descriptors, platforms, references, digests."""

from ctrpy.oci import digest, mediatypes, reference
from ctrpy.oci.descriptor import Descriptor
from ctrpy.oci.platform import Matcher, Platform

__all__ = ["Descriptor", "Matcher", "Platform", "digest", "mediatypes", "reference"]
