"""Mux the relay's encoded frames into a WebM stream with PyAV, without decoding or re-encoding.

The Matroska header lists every track up front, so the recorder declares the tracks first: one VP8 video
and one Opus audio track per participant, and one WebVTT subtitle track for the session chat. A VP8 track's
size is read from its first keyframe (RFC 6386 9.1), so the header waits until every declared video track
has sent one. Each track's timestamps are moved onto a common timeline by the relay's arrival time of its
first frame, so the participants stay in step; when a track's timestamps start again (someone rejoined after
a network drop, a new sender), it is re-anchored by arrival time, so the rejoin lands where it happened.
Chat lines are cues timed by their arrival on the same clock, shown for ``CUE_SECONDS``.
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
CUE_SECONDS = 5.0
# A track's own clock may differ from arrival times by network jitter and bursts after a stall, never by
# this much forwards; backwards never (a restarted sender, or a rejoin with a new track).
RESTART_JUMP = 5.0


def vp8_size(keyframe: bytes) -> tuple[int, int]:
    """Width and height from a VP8 keyframe header (3-byte tag, start code 9d 01 2a, then 14-bit sizes)."""
    if len(keyframe) < 10 or keyframe[3:6] != b"\x9d\x01\x2a":
        raise ValueError("not a VP8 keyframe")
    return (int.from_bytes(keyframe[6:8], "little") & 0x3FFF, int.from_bytes(keyframe[8:10], "little") & 0x3FFF)


@dataclass(frozen=True)
class Track:
    participant_id: str
    kind: str  # "audio" | "video" | "text"


CHAT = Track("chat", "text")


def _webvtt_template() -> Any:
    """A WebVTT stream to copy the subtitle track's parameters from. PyAV cannot open a subtitle encoder
    for WebM, but like ``ffmpeg -c copy`` it can mux packets into a stream made from another's parameters,
    and a WebVTT cue packet is just the cue's text."""
    source = av.open(io.BytesIO(b"WEBVTT\n\n00:00.000 --> 00:01.000\n-\n"), format="webvtt")
    return source.streams[0]


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
        self._last_seen: dict[Track, tuple[float, float]] = {}  # track -> (media seconds, arrival)
        self.frames_written = 0
        self.frames_skipped = 0  # frames of undeclared tracks, or video before its first keyframe

    @property
    def started(self) -> bool:
        return self._container is not None

    def add(self, frame: EncodedFrame) -> bytes:
        track = CHAT if frame.kind == "text" else Track(frame.participant_id, frame.kind)
        if track not in self.tracks and track != CHAT:
            self.frames_skipped += 1
            return b""
        if self._origin is None:
            self._origin = frame.arrival
        if track != CHAT and (track not in self._offset or self._restarted(track, frame)):
            if frame.kind == "video" and not frame.keyframe:
                self.frames_skipped += 1
                return b""
            self._offset[track] = max(0.0, frame.arrival - self._origin) - float(frame.pts * frame.time_base)
            if frame.kind == "video" and track not in self._sizes:
                self._sizes[track] = vp8_size(frame.data)
        if track != CHAT:
            self._last_seen[track] = (float(frame.pts * frame.time_base), frame.arrival)
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

    def _restarted(self, track: Track, frame: EncodedFrame) -> bool:
        """Did this track's clock start again (it went backwards, or leapt far beyond the time that passed)?"""
        last_media, last_arrival = self._last_seen[track]
        step = float(frame.pts * frame.time_base) - last_media
        return step < 0 or step - (frame.arrival - last_arrival) > RESTART_JUMP

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
        # Short clusters, flushed at once: what is muxed reaches the sealed writer within about 0.6 s, so a
        # crash loses little more than the unsealed 2 s (the WebM clusters before it stay playable). The
        # interleaver holds packets back at most 0.1 s, or a chat track with no cue yet would hold everything
        # back (with 1 s clusters and 0.3 s, a kill -9 5 s in sometimes kept only 2.1 s; now 4.4 s, 5 runs).
        container = av.open(self._sink, "w", format="webm", buffer_size=4096,
                            options={"flush_packets": "1", "cluster_time_limit": "500",
                                     "max_interleave_delta": "100000"})
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
        chat = container.add_stream_from_template(_webvtt_template())
        chat.metadata["title"] = "chat"
        self._streams[CHAT] = chat
        container.start_encoding()
        self._container = container

    def _mux(self, frame: EncodedFrame) -> None:
        if frame.kind == "text":
            track = CHAT
            seconds = max(0.0, frame.arrival - (self._origin or frame.arrival))
        else:
            track = Track(frame.participant_id, frame.kind)
            seconds = float(frame.pts * frame.time_base) + self._offset[track]
        pts = max(round(seconds / COMMON_BASE), self._last_pts.get(track, -1) + 1)
        self._last_pts[track] = pts
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.time_base = COMMON_BASE
        packet.is_keyframe = frame.keyframe
        if track == CHAT:
            packet.duration = round(CUE_SECONDS / COMMON_BASE)
        packet.stream = self._streams[track]
        self._container.mux(packet)
        self.frames_written += 1
