"""Mux the relay's encoded frames into a WebM stream with PyAV, without decoding or re-encoding.

The Matroska header lists every track up front, so the recorder declares the tracks first: one VP8 video
and one Opus audio track per participant. A VP8 track's size is read from its first keyframe (RFC 6386
9.1), so the header waits until every declared video track has sent one. Each track's timestamps are moved
onto a common timeline by the relay's arrival time of its first frame, so the participants stay in step.
"""

from __future__ import annotations

import fractions
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import av

from server.media.frames import EncodedFrame

COMMON_BASE = fractions.Fraction(1, 1000)  # WebM's own time base (milliseconds)


def vp8_size(keyframe: bytes) -> tuple[int, int]:
    """Width and height from a VP8 keyframe header (3-byte tag, start code 9d 01 2a, then 14-bit sizes)."""
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        raise ValueError("not a VP8 keyframe")
    return (int.from_bytes(keyframe[6:8], "little") & 0x3FFF, int.from_bytes(keyframe[8:10], "little") & 0x3FFF)


@dataclass(frozen=True)
class Track:
    participant_id: str
    kind: str  # "audio" | "video"


class _Sink(io.RawIOBase):
    """Collects what the muxer writes, for the caller to hand to the (async) sealed writer."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


class WebmMuxer:
    """Feed ``EncodedFrame``s with ``add``; each call returns the bytes the muxer produced (maybe none)."""

    def __init__(self, tracks: Sequence[Track]) -> None:
        self.tracks = tuple(tracks)
        self._sink = _Sink()
        self._container: Any = None
        self._streams: dict[Track, Any] = {}
        self._pending: list[EncodedFrame] = []
        self._sizes: dict[Track, tuple[int, int]] = {}
        self._offset: dict[Track, float] = {}  # seconds from the recording's first frame
        self._origin: float | None = None
        self._last_pts: dict[Track, int] = {}
        self.frames_written = 0
        self.frames_skipped = 0  # frames of undeclared tracks, or video before its first keyframe

    @property
    def started(self) -> bool:
        return self._container is not None

    def add(self, frame: EncodedFrame) -> bytes:
        track = Track(frame.participant_id, frame.kind)
        if track not in self.tracks:
            self.frames_skipped += 1
            return b""
        if self._origin is None:
            self._origin = frame.arrival
        if track not in self._offset:
            if frame.kind == "video" and not frame.keyframe:
                self.frames_skipped += 1
                return b""
            self._offset[track] = max(0.0, frame.arrival - self._origin) - float(frame.pts * frame.time_base)
            if frame.kind == "video":
                self._sizes[track] = vp8_size(frame.data)
        if not self.started:
            self._pending.append(frame)
            if all(t in self._sizes for t in self.tracks if t.kind == "video"):
                self._open()
                for waiting in self._pending:
                    self._mux(waiting)
                self._pending.clear()
            return self._sink.take()
        self._mux(frame)
        return self._sink.take()

    def close(self) -> bytes:
        """Finish the stream (cues and the last cluster); returns the remaining bytes."""
        if not self.started and self._pending:
            self.tracks = tuple(t for t in self.tracks if t.kind == "audio" or t in self._sizes)
            if self.tracks:
                self._open()
                for waiting in self._pending:
                    self._mux(waiting)
        if self._container is not None:
            self._container.close()
        return self._sink.take()

    def _open(self) -> None:
        # Short clusters, flushed at once: what is muxed reaches the sealed writer within about a second, so a
        # crash loses at most the unsealed 2 s (the WebM clusters before it stay playable).
        container = av.open(self._sink, "w", format="webm", buffer_size=4096,
                            options={"flush_packets": "1", "cluster_time_limit": "1000"})
        for track in self.tracks:
            stream: Any
            if track.kind == "video":
                stream = container.add_stream("libvpx", rate=30)
                stream.width, stream.height = self._sizes[track]
                stream.pix_fmt = "yuv420p"
            else:
                stream = container.add_stream("libopus", rate=48000)
                stream.layout = "stereo"
            stream.metadata["title"] = f"{track.participant_id} {track.kind}"
            self._streams[track] = stream
        container.start_encoding()
        self._container = container

    def _mux(self, frame: EncodedFrame) -> None:
        track = Track(frame.participant_id, frame.kind)
        seconds = float(frame.pts * frame.time_base) + self._offset[track]
        pts = max(round(seconds / COMMON_BASE), self._last_pts.get(track, -1) + 1)
        self._last_pts[track] = pts
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.time_base = COMMON_BASE
        packet.is_keyframe = frame.keyframe
        packet.stream = self._streams[track]
        self._container.mux(packet)
        self.frames_written += 1
