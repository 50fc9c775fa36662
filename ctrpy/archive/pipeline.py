"""Decompression and hashing of a layer on a second thread, ahead of the applier.

Applying a layer is two kinds of work: inflating and hashing the stream (C code in isa-l,
zstd and hashlib, which release the GIL on large buffers) and creating the entries (Python,
one syscall after another).  :class:`Prefetched` runs the first kind on its own thread and
hands the applier large chunks through a small bounded queue, so both proceed at once and
memory stays bounded (``depth`` chunks in the queue, one being produced, one being read).

Errors of the producing side (a corrupt gzip stream, a store blob that does not match its
digest, an I/O error) are raised by the consumer's next ``read``, and again by every read
after it: a failed stream never looks like a clean end.  :meth:`Prefetched.close` (or
leaving the ``with`` block) stops the thread and waits for it, whatever state it is in, so
the source may be closed right after.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import BinaryIO, Final

from ctrpy.streams import CHUNK, HashingReader

DEPTH: Final = 8
"""Chunks the producer may be ahead of the applier (8 MiB with the default chunk): it fills
up during a run of small files, where the applier is the slower side, and is what the
applier writes from during a run of large files, where decompression is."""

_POLL: Final = 0.05  # seconds a blocked producer waits before looking at the stop flag again

_Item = bytes | BaseException | None  # data, the producer's failure, or the end


def _ignore(data: bytes) -> None:
    pass


class Prefetched(HashingReader):
    """Reads ``stream`` to its end on a second thread, hashing every byte (like
    :class:`HashingReader`, whose ``digest``, ``size`` and ``drain`` it keeps), and returns
    the bytes to ``read`` in order.

    ``finish`` runs on the producing thread after the stream's end and before the end is
    reported (to read a compressed blob to its last byte, so that its own verification
    happens there too); what it raises is the consumer's error.  ``digest`` and ``size``
    are complete once ``read`` has returned ``b""``."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        finish: Callable[[], None] | None = None,
        chunk: int = CHUNK,
        depth: int = DEPTH,
        hashing: bool = True,
    ) -> None:
        super().__init__(stream)
        self._hashing = hashing  # False: the stream verifies itself (a store blob's reader)
        self._finish = finish
        self._chunk = chunk
        self._queue: queue.Queue[_Item] = queue.Queue(depth)
        self._stop = threading.Event()
        self._buf = b""
        self._pos = 0
        self._ended = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._produce, name="ctrpy-layer-reader", daemon=True)
        self._thread.start()

    # -- the producing thread -------------------------------------------------------
    def _produce(self) -> None:
        last: _Item = None
        try:
            read, update = self._stream.read, (self._hash.update if self._hashing else _ignore)
            while True:
                if self._stop.is_set():
                    return
                data = read(self._chunk)
                if not data:
                    break
                update(data)
                self.size += len(data)
                if not self._put(data):
                    return
            if self._finish is not None:
                self._finish()
        except BaseException as exc:  # handed to the consumer, raised there
            last = exc
        self._put(last)

    def _put(self, item: _Item) -> bool:
        """Queue ``item``, waiting for room; False when told to stop meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    # -- the consumer -----------------------------------------------------------------
    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while data := self.read(self._chunk):
                parts.append(data)
            return b"".join(parts)
        while self._pos >= len(self._buf):
            if self._error is not None:
                raise self._error
            if self._ended:
                return b""
            item = self._queue.get()
            if item is None or isinstance(item, BaseException):
                self._thread.join()
                if item is None:
                    self._ended = True
                else:
                    self._error = item
                continue
            self._buf, self._pos = item, 0
        if self._pos == 0 and size >= len(self._buf):
            data, self._buf = self._buf, b""  # the whole chunk: no copy
            return data
        data = self._buf[self._pos : self._pos + size]
        self._pos += len(data)
        return data

    def drain(self) -> int:
        """Read everything left; return how many bytes that was (here, not as hashed: the
        producer hashes ahead of the reader)."""
        left = len(self._buf) - self._pos
        self._buf, self._pos = b"", 0
        while data := self.read(self._chunk):
            left += len(data)
        return left

    def close(self) -> None:
        """Stop the producing thread (it finishes the chunk it is on) and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(_POLL)
        self._buf = b""
        super().close()

    def __enter__(self) -> Prefetched:
        return self
