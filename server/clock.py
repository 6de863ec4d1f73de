"""One injected clock that reads time *and* schedules, so tests move time instead of sleeping.

Domain code never calls ``datetime.now``, ``time.time``, ``asyncio.sleep``, ``loop.call_later`` or
``loop.time`` (ruff's banned-api and ``tests/test_imports.py`` enforce it): it asks the ``Clock`` it was
given. Production uses ``SystemClock``; tests use ``FakeClock`` and ``advance()`` it past deadlines
(24-hour concerns, overdue visits, link expiry), which also runs what was due (timers, periodic work).

Periodic background work is a ``clock.every(interval, fn, name=...)`` (Synapse's ``looping_call``): one
owned task that calls ``fn``, logs a failure and carries on, and is stopped by whoever started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

log = logging.getLogger(__name__)


class Timer(Protocol):
    """A scheduled call that can still be called off."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """What the application needs to know about time, and how it waits."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, for intervals."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``; a fake clock returns when advanced far enough."""
        ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        """Call ``fn`` once, ``delay`` seconds from now (on the event loop)."""
        ...

    def every(self, interval: float, fn: Callable[[], Awaitable[object]], *, name: str,
              run_now: bool = False) -> LoopingCall:
        """Call ``fn`` every ``interval`` seconds until the returned call is stopped."""
        ...


@dataclass(frozen=True)
class Periodic:
    """Periodic work a domain declares in its ``tasks.py``; the composition root starts it with ``every``."""

    name: str
    interval: float  # seconds between runs
    run: Callable[[], Awaitable[object]]
    run_now: bool = False  # first run at start-up rather than one interval later


class LoopingCall:
    """Periodic work with one owner: a failed run is logged and the next one comes on time.

    ``runs`` counts finished runs (failed ones too) so tests can wait for one after advancing a fake clock
    (``await call.wait_runs(n)``) instead of polling.
    """

    def __init__(self, clock: Clock, interval: float, fn: Callable[[], Awaitable[object]], *, name: str,
                 run_now: bool) -> None:
        if interval <= 0:
            raise ValueError("a looping call needs a positive interval")
        self.name = name
        self.interval = interval
        self.runs = 0
        self.failures = 0
        self._clock = clock
        self._fn = fn
        self._ran = asyncio.Condition()
        # A deadline, not a duration: time that passes before the task first runs still counts (a test
        # may advance a fake clock right after starting the call).
        self._next = clock.monotonic() + (0.0 if run_now else interval)
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=name)

    async def _loop(self) -> None:
        while True:
            delay = self._next - self._clock.monotonic()
            if delay > 0:
                await self._clock.sleep(delay)
            try:
                await self._fn()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - periodic work never ends for good; the next run retries
                self.failures += 1
                log.exception("%s: run failed; trying again in %.0f s", self.name, self.interval)
            self.runs += 1
            self._next = self._clock.monotonic() + self.interval  # the next run an interval after this one
            async with self._ran:
                self._ran.notify_all()

    async def wait_runs(self, count: int) -> None:
        """Return once ``count`` runs have finished since this call started."""
        async with self._ran:
            await self._ran.wait_for(lambda: self.runs >= count)

    @property
    def running(self) -> bool:
        return not self._task.done()

    async def stop(self) -> None:
        """Cancel the loop and wait for it (a run in progress is cancelled too)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class SystemClock:
    """The real wall clock and the event loop's timers."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        return asyncio.get_running_loop().call_later(max(0.0, delay), fn)

    def every(self, interval: float, fn: Callable[[], Awaitable[object]], *, name: str,
              run_now: bool = False) -> LoopingCall:
        return LoopingCall(self, interval, fn, name=name, run_now=run_now)


class _FakeTimer:
    def __init__(self, when: float, fn: Callable[[], None]) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when a test advances it.

    ``sleep`` suspends until ``advance`` has moved the clock past the wake-up time, and ``call_later``
    timers fire from ``advance``, so background loops (outbox sender, retention job, visit alerts) are
    stepped deterministically.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._timers: list[_FakeTimer] = []

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
        """Move time forward, wake every sleeper whose time has come and fire due timers."""
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
        timers = sorted((t for t in self._timers if t.when <= self._mono), key=lambda t: t.when)
        self._timers = [t for t in self._timers if t.when > self._mono and not t.cancelled]
        for timer in timers:
            if not timer.cancelled:
                timer.fn()

    @property
    def waiting(self) -> int:
        """How many sleepers and timers are pending (tests wait for a loop to reach its sleep)."""
        return sum(1 for _, f in self._sleepers if not f.done()) + sum(1 for t in self._timers if not t.cancelled)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, fut))
        await fut

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer:
        timer = _FakeTimer(self._mono + max(0.0, delay), fn)
        self._timers.append(timer)
        return timer

    def every(self, interval: float, fn: Callable[[], Awaitable[object]], *, name: str,
              run_now: bool = False) -> LoopingCall:
        return LoopingCall(self, interval, fn, name=name, run_now=run_now)
