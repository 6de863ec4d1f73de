"""One injected clock, so tests move time instead of sleeping (STYLE.md #8).

Domain code never calls ``datetime.now`` or ``time.time``: it asks the ``Clock``
it was given. Production uses ``SystemClock``; tests use ``FakeClock`` and
``advance()`` it past deadlines (24-hour concerns, overdue visits, link expiry).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the application needs to know about time."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, for intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; a fake clock returns when advanced far enough."""
        ...


class SystemClock:
    """The real wall clock and event-loop sleep."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when a test advances it.

    ``sleep`` suspends until ``advance`` has moved the clock past the wake-up
    time, so background loops (outbox sender, retention job, visit alerts) can
    be stepped deterministically.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: datetime) -> None:
        """Jump to ``when`` (forward only, like real time)."""
        if when.tzinfo is None:
            raise ValueError("FakeClock.set needs an aware datetime")
        self.advance((when - self._now).total_seconds())

    def advance(self, seconds: float | timedelta) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        secs = seconds.total_seconds() if isinstance(seconds, timedelta) else float(seconds)
        if secs < 0:
            raise ValueError("time does not go backwards")
        self._now += timedelta(seconds=secs)
        self._mono += secs
        due = [s for s in self._sleepers if s[0] <= self._mono]
        self._sleepers = [s for s in self._sleepers if s[0] > self._mono]
        for _, fut in due:
            if not fut.done():
                fut.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut
