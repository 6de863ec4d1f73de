"""The storage end of a recording: takes the muxer's bytes, seals a chunk when it is big enough or 2 s old,
and hands sealed chunks to the spool (docs/consent-and-recording.md: "seals it in chunks at least every 2 seconds ...
a crash loses at most the last unsealed chunk").

``begin_recording`` makes the per-recording data key and header and wraps the key; the caller stores the
``WrappedKey`` and header bytes with the recording's database row *before* the first chunk is written, so
no sealed media ever exists without a key record (and erasing the key erases the media).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass

from server.clock import Clock
from server.recording.keywrap import KeyWrapper, WrappedKey
from server.recording.sealing import (
    DEFAULT_CHUNK_SIZE_HINT,
    ChunkSealer,
    RecordingHeader,
    SealingError,
    new_data_key,
)
from server.recording.spool import Spool

MAX_SEAL_INTERVAL = 2.0


@dataclass(frozen=True)
class NewRecording:
    recording_id: uuid.UUID
    header: RecordingHeader
    wrapped_key: WrappedKey
    sealer: ChunkSealer


def begin_recording(
    recording_id: uuid.UUID, wrapper: KeyWrapper, *, chunk_size_hint: int = DEFAULT_CHUNK_SIZE_HINT
) -> NewRecording:
    """A fresh data key (kept only inside the sealer), its wrapped form, and the header."""
    data_key = new_data_key()
    header = RecordingHeader.new(recording_id, chunk_size_hint=chunk_size_hint)
    wrapped = wrapper.wrap(data_key, recording_id)
    return NewRecording(recording_id, header, wrapped, ChunkSealer(data_key, header))


class SealedWriter:
    """Buffers plaintext; seals at ``chunk_size_hint`` bytes or every ``max_interval`` seconds.

    The owner calls ``start()`` (a ticker task on the injected clock), ``write`` for each muxer output, and
    ``close()`` at the end, which seals the final chunk (last flag) and waits for nothing else: the spool
    uploads in the background. ``abort()`` stops without a final chunk (the recording reads "interrupted").
    """

    def __init__(
        self,
        recording_id: uuid.UUID,
        sealer: ChunkSealer,
        spool: Spool,
        clock: Clock,
        *,
        max_interval: float = MAX_SEAL_INTERVAL,
    ) -> None:
        self.recording_id = recording_id
        self._sealer = sealer
        self._spool = spool
        self._clock = clock
        self._max_interval = max_interval
        self._limit = max(1, sealer.header.chunk_size_hint)
        self._buf = bytearray()
        self._buf_since: float | None = None
        self._lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._closed = False
        self.error: Exception | None = None  # a failure of the background ticker (e.g. SpoolFull)

    @property
    def chunks_sealed(self) -> int:
        return self._sealer.next_index

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name=f"seal-ticker-{self.recording_id}")

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise SealingError("the recording is closed")
        if self.error is not None:
            raise self.error
        if not data:
            return
        if self._buf_since is None:
            self._buf_since = self._clock.monotonic()
        self._buf += data
        while len(self._buf) >= self._limit:
            await self._seal(self._limit)

    async def flush(self) -> None:
        """Seal whatever is buffered now (e.g. on pause, so nothing waits in memory)."""
        if self._buf:
            await self._seal(len(self._buf))

    async def close(self) -> None:
        """Seal the rest as the final chunk (last flag)."""
        if self._closed:
            return
        self._closed = True
        await self._stop_ticker()
        async with self._lock:
            index, blob = self._sealer.finish(bytes(self._buf))
            self._buf.clear()
            await self._spool.write_chunk(self.recording_id, index, blob)

    async def abort(self) -> None:
        """Stop without a final chunk; buffered bytes are lost (as in a crash)."""
        self._closed = True
        await self._stop_ticker()
        self._buf.clear()

    async def _seal(self, size: int) -> None:
        async with self._lock:
            if not self._buf:
                return
            size = min(size, len(self._buf))
            part = bytes(self._buf[:size])
            del self._buf[:size]
            self._buf_since = self._clock.monotonic() if self._buf else None
            index, blob = self._sealer.seal(part)
            await self._spool.write_chunk(self.recording_id, index, blob)

    async def _tick(self) -> None:
        while True:
            since = self._buf_since
            if since is None:
                await self._clock.sleep(self._max_interval)
                continue
            due = since + self._max_interval - self._clock.monotonic()
            if due > 0:
                await self._clock.sleep(due)
                continue
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - kept and raised to the owner on its next write
                self.error = exc
                return

    async def _stop_ticker(self) -> None:
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
