"""The one exception hierarchy of ctrpy.

Every error the library raises on purpose is a :class:`CtrpyError`.  The CLI turns it into
one line on stderr and exit code 1 in exactly one place (``ctrpy.cli.main``), and adds the
hints that name its flags there: the library never names a flag.

**The error policy.**  An error is raised where the fault is found, with the data that
describes it (a digest mismatch carries both digests).  Each layer it passes through on the
way out may say *where* it happened, once, with :meth:`CtrpyError.within` ("archive member
'blobs/sha256/ab..'", "layer 2 (sha256:..) of docker.io/library/x:1"): the context is
prepended to the message, and the error keeps its class and its data.  Nothing re-raises
an error as another class just to add words.
"""

from __future__ import annotations

from typing import Self

NAME_SHOWN = 256
"""How many characters of a name (a tar entry, an archive member) a message shows: an
attacker's 4 KB path becomes its start and its end around ``...``."""

_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))} | {
    0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r", 0x2028: "\\u2028", 0x2029: "\\u2029",
}


def printable(text: str) -> str:
    """``text`` with control characters and line breaks escaped, so that a name from an
    archive can never split a one-line message."""
    return text.translate(_ESCAPES)


def shorten(text: str, limit: int = NAME_SHOWN) -> str:
    """``text`` when it has at most ``limit`` characters, else its start and end around
    ``...`` (``limit`` characters in all)."""
    if len(text) <= limit:
        return text
    tail = limit // 3
    return f"{text[: limit - tail - 3]}...{text[-tail:]}"


class CtrpyError(Exception):
    """Base of every error ctrpy raises deliberately."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.context: list[str] = []  # outermost first

    def within(self, where: str) -> Self:
        """Say where the error happened (added by each layer it passes, outermost last,
        printed first).  Returns the error itself: ``raise err.within("...")``.  A place
        already said, just inside or at the start of the message, is not said again."""
        if where and (not self.context or self.context[0] != where) and not (
            not self.context and self.message.startswith(where + " ")
        ):
            self.context.insert(0, where)
        return self

    def __str__(self) -> str:
        return ": ".join([*self.context, self.message])


class InvalidArgument(CtrpyError):
    """A value given by the caller is malformed (digest, name, label, platform...)."""


class FilterError(InvalidArgument):
    """A filter (containerd's syntax, :mod:`ctrpy.filters`) does not parse: ``filter`` is
    its text, ``position`` the character offset where parsing stopped, ``where`` that
    place marked as containerd marks it (``[name >|=|< x]``)."""

    def __init__(self, text: str, position: int, reason: str) -> None:
        if position < len(text):  # containerd's marker around the offending character
            where = f"[{text[:position]} >|{text[position]}|< {text[position + 1:]}]"
        else:
            where = f"[{text}]"
        super().__init__(f"filter {text!r}: {reason} at {where}")
        self.filter = text
        self.position = position
        self.reason = reason
        self.where = where


class NotFound(CtrpyError):
    """A named thing (image, blob, namespace, snapshot) does not exist."""


class ImageNotFound(NotFound):
    """No image record has this name (nor its normalised form)."""

    def __init__(self, name: str, suggestions: list[str] | None = None) -> None:
        super().__init__(f"image {name!r} not found")
        self.name = name
        self.suggestions = list(suggestions or [])


class ContentNotFound(NotFound):
    """The store holds no blob with this digest (in this namespace)."""

    def __init__(self, digest: str, what: str = "content", message: str | None = None) -> None:
        super().__init__(message or f"{what} {digest} not found")
        self.digest = digest
        self.what = what


class PlatformNotFound(NotFound):
    """An image (or an archive) offers no manifest for the selected platforms."""

    def __init__(self, subject: str, platforms: str, noun: str = "manifest") -> None:
        super().__init__(f"{subject} has no {noun} for {platforms}")
        self.subject = subject
        self.platforms = platforms


class PlatformContentMissing(ContentNotFound):
    """A selected platform's manifest is named by an index but not held by the store
    (the image was imported or pulled for other platforms)."""

    def __init__(self, image: str, digest: str, platform: str, *, all_platforms: bool) -> None:
        super().__init__(digest, "manifest", f"image {image}: manifest {digest} for {platform} is not in the store")
        self.image = image
        self.platform = platform
        self.all_platforms = all_platforms


class AlreadyExists(CtrpyError):
    """A thing that must be new already exists."""


class ImageExists(AlreadyExists):
    """An image record with this name exists (and replacing it was not asked for)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"image {name!r} already exists")
        self.name = name


class FailedPrecondition(CtrpyError):
    """The store is not in a state that allows the operation (e.g. namespace not empty)."""


class InvalidArchive(CtrpyError):
    """An archive or layer is malformed, truncated, unsafe or inconsistent."""


class MissingFromArchive(ContentNotFound, InvalidArchive):
    """An archive names a blob it does not carry (and the store does not hold it)."""

    def __init__(self, digest: str, what: str = "blob") -> None:
        super().__init__(digest, what, f"archive is missing {what} {digest}")


class DigestMismatch(InvalidArchive):
    """Bytes do not hash to the digest they were announced with."""

    def __init__(self, expected: str, actual: str, what: str = "content", *, text: str | None = None) -> None:
        super().__init__(f"digest mismatch: {text or f'{what} has digest {actual}, expected {expected}'}")
        self.expected = expected
        self.actual = actual
        self.what = what


class SizeMismatch(InvalidArchive):
    """Bytes are not as long as they were announced to be (``actual`` None: more than
    ``expected``, and reading stopped there)."""

    def __init__(self, expected: int, actual: int | None, what: str = "content") -> None:
        if actual is None:
            text = f"size mismatch: {what} has more than the expected {expected} bytes"
        else:
            text = f"size mismatch: {what} has {actual} bytes, expected {expected}"
        super().__init__(text)
        self.expected = expected
        self.actual = actual
        self.what = what


class UnsupportedFormat(CtrpyError):
    """An archive format, media type or compression that ctrpy cannot handle."""


class UnsupportedDigest(UnsupportedFormat, InvalidArgument):
    """A well-formed digest of an algorithm other than sha256 (ctrpy stores sha256 only):
    unsupported content in an archive, and a bad argument when a user types one."""

    def __init__(self, digest: str) -> None:
        algorithm = digest.partition(":")[0]
        super().__init__(
            f"invalid digest {digest!r}: digest algorithm {algorithm} is not supported (ctrpy stores sha256 content)"
        )
        self.digest = digest
        self.algorithm = algorithm


class StoreError(CtrpyError):
    """The store on disk cannot be opened or written (permissions, missing parent, ...)."""


class SnapshotterUnavailable(InvalidArgument):
    """A snapshotter exists but cannot be used here (overlayfs without root)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"the {name} snapshotter {reason}")
        self.name = name
        self.reason = reason


class UnpackError(CtrpyError):
    """A layer could not be applied to a snapshot."""


class MountError(CtrpyError):
    """A mount or unmount was refused or failed."""


class MountBusy(FailedPrecondition):
    """A kept writable snapshot of another image stands where a mount is asked for."""

    def __init__(self, target: str, key: str) -> None:
        super().__init__(f"a writable snapshot {key!r} of another image exists for {target}")
        self.target = target
        self.key = key
