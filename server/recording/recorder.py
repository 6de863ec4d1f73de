"""One recording segment: frames from the relay's tap -> WebM muxer -> sealed writer (chunks every <= 2 s).

The recorder never decodes media. ``stop()`` closes the tap, finishes the WebM stream and seals the final
chunk; ``abort()`` ends without a final chunk (the stored recording then reads as interrupted). A gate that
closes ends the segment at once (``stop``), so nothing after that moment is stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from server.media.frames import EncodedFrame
from server.recording.muxer import Track, WebmMuxer
from server.recording.writer import SealedWriter

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, frames: AsyncIterator[EncodedFrame], writer: SealedWriter, tracks: Sequence[Track],
                 close_source: object = None) -> None:
        self._frames = frames
        self._writer = writer
        self._close_source = close_source  # e.g. the FrameTap's close(); called on stop
        self.muxer = WebmMuxer(tracks)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.error: Exception | None = None

    @property
    def failure(self) -> Exception | None:
        """Why this segment can no longer be stored (a full spool, a broken frame), or None."""
        return self.error or self._writer.error

    @property
    def frames_written(self) -> int:
        """Frames muxed so far: the recording's progress, for the session and for tests."""
        return self.muxer.frames_written

    def start(self) -> None:
        self._writer.start()
        self._task = asyncio.create_task(self._run(), name=f"recorder-{self._writer.recording_id}")

    async def _run(self) -> None:
        try:
            async for frame in self._frames:
                if self._stopping:
                    break
                data = self.muxer.add(frame)
                if data:
                    await self._writer.write(data)
        except Exception as exc:  # a full spool or a broken frame: keep what is sealed, report it
            self.error = exc
            log.warning("recording %s stopped: %s", self._writer.recording_id, exc)

    async def stop(self) -> None:
        """Stop taking frames now; finish the WebM stream and seal the last chunk."""
        self._stopping = True
        if callable(self._close_source):
            self._close_source()
        await self._end_task()
        tail = self.muxer.close()
        if tail and self.error is None:
            await self._writer.write(tail)
        await self._writer.close()

    async def abort(self) -> None:
        self._stopping = True
        if callable(self._close_source):
            self._close_source()
        await self._end_task()
        await self._writer.abort()

    async def _end_task(self) -> None:
        """Let the loop finish its current write (a closed tap ends it); cancel only if it hangs."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 1.0)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
