"""The recording sink: a bounded async iterator of a room's complete encoded frames.

Frames are assembled from the packet stream only while a tap wants a participant (off the forwarding
path, after each batch is sent: see ``Source.set_recording``). On overflow the whole backlog is dropped
(counted), and each video track waits for its next keyframe, which is asked for at once, so a
recording never holds a delta frame whose reference is missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Protocol

from server.media.frames import EncodedFrame

log = logging.getLogger(__name__)


class KeyframeSource(Protocol):
    """The track a frame came from, as far as a tap needs it."""

    def request_keyframe(self) -> None: ...


class FrameTap:
    """A bounded async iterator of every forwarded frame of a room: the recorder's input.

    On overflow the whole backlog is dropped (counted in ``frames_dropped``);
    each video track then waits for its next keyframe, which is asked for at
    once, so a recording never holds a delta frame whose reference is missing.
    """

    def __init__(
        self, maxlen: int, participant_ids: set[str] | None, on_close: Callable[[FrameTap], None]
    ) -> None:
        self.participant_ids = participant_ids
        self._on_close = on_close
        self._maxlen = maxlen
        self._frames: deque[EncodedFrame] = deque()
        self._waiting: set[str] = set()  # participant ids whose video waits for a keyframe
        self._seen: dict[str, KeyframeSource] = {}
        self._ready = asyncio.Event()
        self.frames_dropped = 0
        self.closed = False

    def wants(self, participant_id: str) -> bool:
        return self.participant_ids is None or participant_id in self.participant_ids

    def push(self, source: KeyframeSource, frame: EncodedFrame) -> None:
        if self.closed:
            return
        if frame.kind == "video":
            if frame.participant_id not in self._seen:
                self._seen[frame.participant_id] = source
                self._waiting.add(frame.participant_id)
            if frame.participant_id in self._waiting:
                if not frame.keyframe:
                    self.frames_dropped += 1
                    source.request_keyframe()
                    return
                self._waiting.discard(frame.participant_id)
        if len(self._frames) >= self._maxlen:
            log.warning("recording tap fell behind: dropped %d frames", len(self._frames))
            self.frames_dropped += len(self._frames)
            self._frames.clear()
            for pid, src in self._seen.items():
                if not (frame.kind == "video" and frame.participant_id == pid and frame.keyframe):
                    self._waiting.add(pid)
                    src.request_keyframe()
            if frame.kind == "video" and frame.participant_id in self._waiting:
                self.frames_dropped += 1
                return
        self._frames.append(frame)
        self._ready.set()

    def push_text(self, frame: EncodedFrame) -> None:
        """A chat line: kept in order with the media, whoever wrote it, and never dropped on overflow
        (it is tiny, and the recording's chat must be whole)."""
        if not self.closed:
            self._frames.append(frame)
            self._ready.set()

    async def get(self) -> EncodedFrame:
        while not self._frames:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def __aiter__(self) -> FrameTap:
        return self

    async def __anext__(self) -> EncodedFrame:
        return await self.get()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._ready.set()
            self._on_close(self)
