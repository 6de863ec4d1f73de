"""The batched forwarding loop: every few milliseconds, read every ready media socket to the end.

Why batches: on this kind of machine one event-loop wake-up costs tens of microseconds even with
nothing to do, and asyncio's datagram endpoint reads each datagram into a fresh 256 KiB buffer. So
once a participant's DTLS is up, the relay stops asyncio reading its ICE socket and reads it itself
(``recvfrom_into`` one reusable buffer) on a timer: one wake-up per ``interval`` for all connections
of the process, whatever the packet rate. STUN and DTLS datagrams go back to aioice as if asyncio had
read them; SRTP and SRTCP are handled here. Feedback timers (NACK retries, rate-limited PLIs, receiver
reports, REMB) run on the same ticks, so no per-packet or per-track timer exists.

Time comes from an injected ``MediaClock`` (real time even when the application's clock is fake):
the loop's own clock is never read here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import select
from collections.abc import Callable
from typing import Any, Protocol

from server.media.rtp import abs_send_time
from server.media.srtp import PacketBuffer
from server.media.streams import Source

log = logging.getLogger(__name__)

TICK = 0.005  # s between batches: inside the latency budget (p50 < 5 ms added), and few wake-ups
REPORT_INTERVAL = 1.0  # s between receiver reports / REMB refreshes per source
MAX_ROUNDS = 512  # datagrams read from one socket in one batch at most (the rest wait for the next)


class MediaClock(Protocol):
    """What the forwarding loop needs of time (``server.clock.SystemClock`` is one)."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class Drained(Protocol):
    """A bound connection, as the loop sees it (``server.media.connection.MediaConnection``)."""

    def drain(self, fd: int) -> None:
        """Read and handle one datagram from ``fd`` (epoll said it is readable)."""
        ...

    def drain_pending(self) -> None: ...

    def report(self, now: float) -> None: ...

    def unbind(self) -> None: ...


class MediaEngine:
    """One per process (or media worker): the bound connections, the buffers and the tick task."""

    def __init__(self, clock: MediaClock, *, interval: float = TICK) -> None:
        self.clock = clock
        self.interval = interval
        self.now = clock.monotonic()
        self.abs_send_time = abs_send_time(self.now)
        self.rx = PacketBuffer()
        self.tx = PacketBuffer()
        self._poll = select.epoll()
        self._by_fd: dict[int, Drained] = {}
        self._due: set[Source] = set()
        self._deferred: list[tuple[Callable[[Any], None], Any]] = []
        self._pending: set[Drained] = set()
        self._next_report = 0.0
        self.after_tick: list[Callable[[], None]] = []  # e.g. a media worker flushing what it queued
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        self.ticks = 0
        self.tick_errors = 0
        self.packets_in = 0
        self.packets_out = 0
        self.send_blocked = 0
        self.auth_failures = 0

    # -- connections --------------------------------------------------------------------------------

    def register(self, conn: Drained, fd: int) -> None:
        if self.closed:
            raise RuntimeError("the media engine is closed")
        self._poll.register(fd, select.EPOLLIN)
        self._by_fd[fd] = conn
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-engine")
            self._task.add_done_callback(self._ended)

    def unregister(self, fd: int) -> None:
        if self._by_fd.pop(fd, None) is not None:
            with contextlib.suppress(OSError, ValueError):
                self._poll.unregister(fd)

    @property
    def connections(self) -> int:
        return len(self._by_fd)

    # -- the loop ------------------------------------------------------------------------------------

    async def _run(self) -> None:
        """Tick while any connection is bound; then end (idle costs no wake-ups; ``register`` restarts it)."""
        while self._by_fd or self._pending:
            await self.clock.sleep(self.interval)
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the loop carries every room: log, count, carry on
                self.tick_errors += 1
                log.exception("media tick failed")

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:  # retrieved: tick() catches, so unexpected
            log.error("media loop ended: %r", task.exception())

    def tick(self) -> None:
        """One batch: drain ready sockets, assemble for recording, run due feedback, then reports."""
        now = self.now = self.clock.monotonic()
        self.abs_send_time = abs_send_time(now)
        self.ticks += 1
        # One datagram per ready socket per round, then ask epoll again: a socket is never read past its
        # last datagram (each such read is a failed syscall and an exception), and sockets take turns.
        poll, by_fd = self._poll.poll, self._by_fd
        for _ in range(MAX_ROUNDS):
            ready = poll(0)
            if not ready:
                break
            for fd, _ in ready:
                conn = by_fd.get(fd)
                if conn is not None:
                    try:
                        conn.drain(fd)
                    except Exception:  # noqa: BLE001 - one broken connection must not stop the others
                        self.tick_errors += 1
                        log.exception("media connection %s failed", conn)
        if self._pending:
            pending, self._pending = self._pending, set()
            for conn in pending:
                try:
                    conn.drain_pending()
                except Exception:  # noqa: BLE001 - as above
                    self.tick_errors += 1
                    log.exception("media connection %s failed", conn)
        if self._deferred:
            deferred, self._deferred = self._deferred, []
            for fn, arg in deferred:
                fn(arg)
        if self._due:
            for source in list(self._due):
                if not source.tick(now):
                    self._due.discard(source)
        if now >= self._next_report:
            self._next_report = now + REPORT_INTERVAL
            for conn in list(self._by_fd.values()):
                conn.report(now)
        for flush in self.after_tick:
            flush()

    # -- what sources ask of the loop (streams.Context) ---------------------------------------------------

    def pending(self, conn: Drained) -> None:
        """A callback port queued packets: process them on the next batch."""
        self._pending.add(conn)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="media-engine")
            self._task.add_done_callback(self._ended)

    def wake(self, source: Source) -> None:
        self._due.add(source)

    def defer(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Call ``fn(arg)`` after this batch has been forwarded (recording assembly: off the forwarding path)."""
        self._deferred.append((fn, arg))

    def forget(self, source: Source) -> None:
        self._due.discard(source)

    # -- life ----------------------------------------------------------------------------------------

    async def close(self) -> None:
        self.closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in list(self._by_fd.values()):
            conn.unbind()
        self._poll.close()

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self._by_fd),
            "ticks": self.ticks,
            "tick_errors": self.tick_errors,
            "packets_in": self.packets_in,
            "packets_out": self.packets_out,
            "send_blocked": self.send_blocked,
            "auth_failures": self.auth_failures,
        }
