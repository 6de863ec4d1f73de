"""Fan-out of one publisher track to its subscriber legs and recording taps.

A ``TrackSource`` is one published track; a ``Leg`` is one subscriber's outgoing
copy of it, with its own SSRC, sequence numbers, VP8 picture ids and RTP
history (the aiortc sender's). Queues are bounded: a video leg that falls
behind flushes to the next keyframe and asks for one, and counts what it
dropped -- a delta frame is never dropped silently.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from server.media.frames import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame, Kind

log = logging.getLogger(__name__)

VIDEO_QUEUE_FRAMES = 60  # 2 s at 30 fps
AUDIO_QUEUE_FRAMES = 100  # 2 s of 20 ms Opus frames
KEYFRAME_INTERVAL = 0.5  # seconds between PLIs we send one publisher (RFC 4585 rate limiting)
REMB_CHANGE = 0.1  # send a new REMB upstream when the minimum moves by more than 10 %


class FrameQueue:
    """A bounded frame queue that never hands out a delta frame after dropping one.

    Audio frames stand alone, so an overflowing audio queue drops its oldest.
    An overflowing video queue is flushed and waits for a keyframe, calling
    ``want_keyframe`` so one comes soon.
    """

    def __init__(self, kind: Kind, maxlen: int, want_keyframe: Callable[[], None]) -> None:
        self.kind = kind
        self._maxlen = maxlen
        self._want_keyframe = want_keyframe
        self._frames: deque[EncodedFrame] = deque()
        self._ready = asyncio.Event()
        self.waiting_for_keyframe = kind == "video"
        self.closed = False
        self.frames_in = 0
        self.frames_dropped = 0
        self.flushes = 0

    def push(self, frame: EncodedFrame) -> None:
        if self.closed:
            return
        if self.waiting_for_keyframe:
            if not frame.keyframe:
                self.frames_dropped += 1
                return
            self.waiting_for_keyframe = False
        if len(self._frames) >= self._maxlen:
            if self.kind == "audio":
                self._frames.popleft()
                self.frames_dropped += 1
            else:
                self.flushes += 1
                self.frames_dropped += len(self._frames) + (0 if frame.keyframe else 1)
                log.info(
                    "video leg fell behind: flushed %d frames, waiting for a keyframe", len(self._frames)
                )
                self._frames.clear()
                if not frame.keyframe:
                    self.waiting_for_keyframe = True
                    self._want_keyframe()
                    return
        self._frames.append(frame)
        self.frames_in += 1
        self._ready.set()

    def restart(self) -> None:
        """A new source (or an unmute): drop what is queued and wait for a keyframe."""
        self.frames_dropped += len(self._frames)
        self._frames.clear()
        self.waiting_for_keyframe = self.kind == "video"

    def push_text(self, frame: EncodedFrame) -> None:
        """A chat line: kept in order with the media, whoever wrote it, and never dropped on overflow
        (it is tiny, and the recording's chat must be whole)."""
        if not self.closed:
            self._frames.append(frame)
            self._ready.set()

    async def get(self) -> EncodedFrame:
        while not self._frames:
            if self.closed:
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._frames.popleft()

    def close(self) -> None:
        self.closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._frames)


@dataclass(slots=True)
class OutFrame:
    """What a leg's track hands its sender: the packer reads ``data`` and ``timestamp``."""

    data: bytes
    timestamp: int


class RelayTrack(MediaStreamTrack):
    """The track a leg's RTCRtpSender reads: frames from whichever source the leg carries."""

    def __init__(self, leg: Leg) -> None:
        super().__init__()
        self.kind = leg.kind
        self._leg = leg

    async def recv(self) -> Any:  # returns OutFrame: the sender packs anything that is not an av.Frame
        if self.readyState != "live":
            raise MediaStreamError
        return await self._leg.next_frame()


class Leg:
    """One subscriber's outgoing copy of a track; reused for another source of the same kind."""

    def __init__(self, kind: Kind, subscriber_id: str, maxlen: int | None = None) -> None:
        self.kind = kind
        self.subscriber_id = subscriber_id
        self.source: TrackSource | None = None
        self.queue = FrameQueue(
            kind,
            maxlen or (VIDEO_QUEUE_FRAMES if kind == "video" else AUDIO_QUEUE_FRAMES),
            self.request_keyframe,
        )
        self.track = RelayTrack(self)
        self.transceiver: Any = None
        self.remb: int | None = None
        self.frames_sent = 0
        self.keyframe_requests = 0
        self._ts_offset: int | None = None
        self._last_ts = 0
        self._started = False

    @property
    def mid(self) -> str | None:
        return self.transceiver.mid if self.transceiver is not None else None

    def attach(self, source: TrackSource) -> None:
        self.detach()
        self.source = source
        self.queue.restart()
        self._ts_offset = None
        source.legs.add(self)
        self.request_keyframe()

    def detach(self) -> None:
        if self.source is not None:
            self.source.legs.discard(self)
            self.source.leg_remb_changed(self, None)
            self.source = None
        self.remb = None

    def request_keyframe(self) -> None:
        """A PLI/FIR from the subscriber, a new subscription, or an overflow: ask the publisher."""
        self.keyframe_requests += 1
        if self.source is not None:
            self.source.request_keyframe()

    def on_remb(self, bitrate: int) -> None:
        self.remb = bitrate
        if self.source is not None:
            self.source.leg_remb_changed(self, bitrate)

    async def next_frame(self) -> OutFrame:
        if not self._started:
            self._started = True
            if self.queue.waiting_for_keyframe:
                self.request_keyframe()  # the sender just started: make video appear now
        frame = await self.queue.get()
        step = 3000 if self.kind == "video" else 960
        if self._ts_offset is None:
            # Keep this leg's RTP timestamps moving forward across a change of source.
            self._ts_offset = (self._last_ts + step if self.frames_sent else 0) - frame.pts
        ts = (frame.pts + self._ts_offset) & 0xFFFFFFFF
        self._last_ts = frame.pts + self._ts_offset
        self.frames_sent += 1
        return OutFrame(frame.data, ts)

    def close(self) -> None:
        self.detach()
        self.queue.close()
        self.track.stop()

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subscriber": self.subscriber_id,
            "source": self.source.participant_id if self.source else None,
            "mid": self.mid,
            "frames_sent": self.frames_sent,
            "frames_dropped": self.queue.frames_dropped,
            "flushes": self.queue.flushes,
            "queued": len(self.queue),
            "keyframe_requests": self.keyframe_requests,
            "remb": self.remb,
        }


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
        self._seen: dict[str, TrackSource] = {}
        self._ready = asyncio.Event()
        self.frames_dropped = 0
        self.closed = False

    def wants(self, participant_id: str) -> bool:
        return self.participant_ids is None or participant_id in self.participant_ids

    def push(self, source: TrackSource, frame: EncodedFrame) -> None:
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


class TrackSource:
    """One published track: turns the publisher's frames into ``EncodedFrame``s and fans them out."""

    def __init__(
        self,
        participant_id: str,
        kind: Kind,
        codec: str,
        now: Callable[[], float],
        send_pli: Callable[[int], None],
        send_remb: Callable[[int, int], None],
        taps: Callable[[], list[FrameTap]],
    ) -> None:
        self.participant_id = participant_id
        self.kind = kind
        self.codec = codec
        self.legs: set[Leg] = set()
        self.assembler: Any = None
        self.muted = False
        self.ended = False
        self._now = now
        self._send_pli = send_pli
        self._send_remb = send_remb
        self._taps = taps
        self._ssrc: int | None = None
        self._time_base = VIDEO_TIME_BASE if kind == "video" else AUDIO_TIME_BASE
        self._first_ts: int | None = None
        self._unwrap_last = 0
        self._unwrap_cycles = 0
        self._last_pli = -1e9
        self._pli_pending: asyncio.TimerHandle | None = None
        self._own_remb: int | None = None
        self._sent_remb: int | None = None
        self._leg_remb: dict[int, int] = {}
        self.frames_in = 0
        self.keyframes_in = 0
        self.frames_forwarded = 0
        self.keyframe_requests_sent = 0

    def _unwrap(self, ts: int) -> int:
        if self._first_ts is None:
            self._first_ts = self._unwrap_last = ts
            return 0
        diff = (ts - self._unwrap_last) & 0xFFFFFFFF
        if diff < 0x80000000:
            if ts < self._unwrap_last:
                self._unwrap_cycles += 1 << 32
            self._unwrap_last = ts
            return self._unwrap_cycles + ts - self._first_ts
        base = self._unwrap_cycles - (1 << 32) if ts > self._unwrap_last else self._unwrap_cycles
        return base + ts - self._first_ts

    def on_frame(self, data: bytes, rtp_ts: int, keyframe: bool, ssrc: int) -> None:
        """Called by the assembler on the event loop for every complete frame."""
        self._ssrc = ssrc
        self.frames_in += 1
        if keyframe and self.kind == "video":
            self.keyframes_in += 1
        if self.muted or self.ended:
            return
        frame = EncodedFrame(
            participant_id=self.participant_id,
            kind=self.kind,
            codec=self.codec,
            data=data,
            pts=self._unwrap(rtp_ts),
            time_base=self._time_base,
            keyframe=keyframe,
            arrival=self._now(),
        )
        for leg in self.legs:
            leg.queue.push(frame)
            self.frames_forwarded += 1
        for tap in self._taps():
            if tap.wants(self.participant_id):
                tap.push(self, frame)

    def request_keyframe(self) -> None:
        """Send a PLI upstream now, or once the rate limit allows (RFC 4585 3.4)."""
        if self.kind != "video" or self.ended:
            return
        wait = self._last_pli + KEYFRAME_INTERVAL - self._now()
        if wait <= 0:
            self._pli_now()
        elif self._pli_pending is None:
            self._pli_pending = asyncio.get_running_loop().call_later(wait, self._pli_now)

    def _pli_now(self) -> None:
        self._pli_pending = None
        if self._ssrc is None or self.ended:
            return  # nothing received yet: the publisher's first frame is a keyframe anyway
        self._last_pli = self._now()
        self.keyframe_requests_sent += 1
        self._send_pli(self._ssrc)

    def cap_remb(self, own_estimate: int) -> int:
        """Our receiver's own estimate, capped by the slowest subscriber (REMB = min of all)."""
        self._own_remb = own_estimate
        return min([own_estimate, *self._leg_remb.values()])

    def leg_remb_changed(self, leg: Leg, bitrate: int | None) -> None:
        if bitrate is None:
            self._leg_remb.pop(id(leg), None)
        else:
            self._leg_remb[id(leg)] = bitrate
        candidates = list(self._leg_remb.values())
        if self._own_remb is not None:
            candidates.append(self._own_remb)
        if not candidates or self._ssrc is None:
            return
        target = min(candidates)
        if self._sent_remb is None or abs(target - self._sent_remb) > REMB_CHANGE * self._sent_remb:
            self._sent_remb = target
            self._send_remb(target, self._ssrc)

    @property
    def remb(self) -> int | None:
        return self._sent_remb

    def end(self) -> None:
        self.ended = True
        if self._pli_pending is not None:
            self._pli_pending.cancel()
            self._pli_pending = None
        for leg in list(self.legs):
            leg.detach()

    def stats(self) -> dict[str, Any]:
        return {
            "participant": self.participant_id,
            "kind": self.kind,
            "codec": self.codec,
            "muted": self.muted,
            "frames_in": self.frames_in,
            "keyframes_in": self.keyframes_in,
            "frames_forwarded": self.frames_forwarded,
            "keyframe_requests_sent": self.keyframe_requests_sent,
            "legs": len(self.legs),
            "remb_sent": self._sent_remb,
        }
