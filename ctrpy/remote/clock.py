"""Time, behind a protocol so that tests can run retries and token expiry without waiting."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (for deadlines and expiry)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (for ``Retry-After`` dates and ``issued_at``)."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)
