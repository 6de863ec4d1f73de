"""Encoded frames as the recorder sees them, and the packet-to-frame assemblers (recording rooms only).

The video assembler releases a VP8 frame the moment its marker-bit packet
completes it without a sequence gap (RFC 3550 5.1 marker bit, RFC 7741 4.2
start-of-partition), instead of waiting for the next frame's first packet.
A gap that NACK does not fill in time makes it skip to the next keyframe and
ask the publisher for one; a delta frame is never passed on after a loss.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

Kind = Literal["audio", "video"]


def uint16_gt(a: int, b: int) -> bool:
    """RFC 1982 serial number order on 16 bits."""
    return a != b and ((a - b) & 0xFFFF) < 0x8000


def uint16_add(a: int, b: int) -> int:
    return (a + b) & 0xFFFF


FrameKind = Literal["audio", "video", "text"]  # "text": a chat line the recorder keeps as a subtitle cue

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)
TEXT_TIME_BASE = fractions.Fraction(1, 1000)
AUDIO_TIME_BASE = fractions.Fraction(1, 48000)


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded frame from a publisher: what legs and recording taps receive.

    ``pts`` counts ``time_base`` units from the track's first frame (RTP
    timestamps unwrapped and rebased); ``arrival`` is the relay's monotonic clock.
    """

    participant_id: str
    kind: FrameKind
    codec: str
    data: bytes
    pts: int
    time_base: fractions.Fraction
    keyframe: bool
    arrival: float = field(default=0.0, compare=False)

    @property
    def timestamp(self) -> int:
        return self.pts

    def to_packet(self) -> object:
        """An ``av.Packet`` for muxing with PyAV (imported lazily: the relay itself never needs it)."""
        import av

        packet = av.Packet(self.data)
        packet.pts = self.pts
        packet.dts = self.pts
        packet.time_base = self.time_base
        packet.is_keyframe = self.keyframe
        return packet


def voice_cue(speaker: str, text: str) -> str:
    """A WebVTT cue payload that names who wrote it (``<v Sam>hello``), escaped so a chat line cannot
    inject markup into the recording's subtitle track."""

    def escape(value: str) -> str:
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    body = "\n".join(line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
                     if line.strip())  # a blank line would end the cue
    return f"<v {escape(' '.join(speaker.split()))}>{escape(body)}"


def vp8_is_keyframe(frame: bytes) -> bool:
    """RFC 6386 9.1: bit 0 of the frame tag is 0 for a key frame."""
    return len(frame) > 0 and not (frame[0] & 0x01)


class PacketUnit(NamedTuple):
    """One forwarded packet as the recording assembler needs it (VP8: ``data`` is after the descriptor)."""

    seq: int
    ts: int
    marker: bool
    start: bool  # VP8 S=1, PID=0: the first packet of a frame
    data: bytes
    ssrc: int
    keyframe: bool = False


Emit = Callable[[bytes, int, bool, int], None]  # data, rtp timestamp, keyframe, ssrc


class AudioAssembler:
    """Opus: one packet is one frame (RFC 7587); late or duplicate packets are dropped."""

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self._last: int | None = None
        self.late_packets = 0

    def add(self, unit: PacketUnit) -> bool:
        if self._last is not None and not uint16_gt(unit.seq, self._last):
            self.late_packets += 1
            return False
        self._last = unit.seq
        if unit.data:
            self._emit(unit.data, unit.ts, True, unit.ssrc)
        return False


class VideoAssembler:
    """VP8 frames out of packets, as soon as each is complete (the recorder's input, not the forwarding path).

    ``max_wait`` bounds how long a gap may hold frames back for a retransmission
    before the assembler gives up and skips to the next keyframe.
    """

    def __init__(
        self,
        emit: Emit,
        now: Callable[[], float],
        *,
        max_wait: float = 0.25,
        max_packets: int = 400,
        pli_interval: float = 0.5,
    ) -> None:
        self._emit = emit
        self._now = now
        self._max_wait = max_wait
        self._max_packets = max_packets
        self._pli_interval = pli_interval
        self._packets: dict[int, PacketUnit] = {}
        self._next: int | None = None  # first sequence number of the next frame to release
        self._high: int | None = None
        self._gap_since: float | None = None
        self._need_key = True
        self._last_pli = -1e9
        self.frames_skipped = 0
        self.gaps_given_up = 0

    def add(self, unit: PacketUnit) -> bool:
        """Take one packet; True when a keyframe should be asked for."""
        seq = unit.seq
        if self._next is not None and uint16_gt(self._next, seq):
            return False  # late, or a duplicate of something already released
        if self._high is None or uint16_gt(seq, self._high):
            self._high = seq
        self._packets[seq] = unit
        return self._drain()

    def _order(self, seq: int) -> int:
        assert self._high is not None  # noqa: S101  (type narrowing: set by the first packet)
        return (seq - self._high + 0x8000) & 0xFFFF

    def _find_start(self) -> int | None:
        starts = [s for s, p in self._packets.items() if p.start]
        return min(starts, key=self._order) if starts else None

    def _take(self, start: int) -> tuple[list[PacketUnit], int] | None:
        first = self._packets.get(start)
        if first is None:
            return None
        parts = [first]
        seq = start
        while not parts[-1].marker:
            seq = uint16_add(seq, 1)
            nxt = self._packets.get(seq)
            if nxt is None:
                return None
            if nxt.ts != first.ts:  # sender set no marker: the frame ended before
                return parts, uint16_add(seq, -1)
            parts.append(nxt)
        return parts, seq

    def _drop_before(self, seq: int) -> None:
        for s in [s for s in self._packets if self._order(s) < self._order(seq)]:
            del self._packets[s]

    def _pli(self) -> bool:
        now = self._now()
        if now - self._last_pli < self._pli_interval:
            return False
        self._last_pli = now
        return True

    def _give_up(self) -> None:
        """The frame at ``_next`` will not complete: skip past it and wait for a keyframe."""
        assert self._next is not None  # noqa: S101  (type narrowing: only called with a frame pending)
        self.gaps_given_up += 1
        self._need_key = True
        stale = self._next
        self._next = None
        self._gap_since = None
        for s in [s for s in self._packets if not uint16_gt(s, stale)]:
            del self._packets[s]
        start = self._find_start()
        if start is not None:
            self._drop_before(start)
            self._next = start

    def _drain(self) -> bool:
        pli = False
        while True:
            if self._next is None:
                start = self._find_start()
                if start is None:
                    break
                self._drop_before(start)
                self._next = start
            taken = self._take(self._next)
            if taken is None:
                now = self._now()
                if self._gap_since is None:
                    self._gap_since = now
                if now - self._gap_since > self._max_wait or len(self._packets) > self._max_packets:
                    self._give_up()
                    pli = self._pli() or pli
                    continue
                break
            parts, end = taken
            self._gap_since = None
            for p in parts:
                del self._packets[p.seq]
            self._next = uint16_add(end, 1)
            data = b"".join(p.data for p in parts)
            key = vp8_is_keyframe(data)
            if self._need_key and not key:
                self.frames_skipped += 1
                pli = self._pli() or pli
                continue
            self._need_key = False
            self._emit(data, parts[0].ts, key, parts[0].ssrc)
        return pli


def make_assembler(kind: str, emit: Emit, now: Callable[[], float]) -> VideoAssembler | AudioAssembler:
    return VideoAssembler(emit, now) if kind == "video" else AudioAssembler(emit)


class TrackFrames:
    """One track's packets -> ``EncodedFrame``s for recording: assembled, timestamps unwrapped and rebased.

    Used where the recorder reads: in the relay's process after each batch (no media workers), or in the
    web process from the packets a media worker sends it, so the worker never assembles.
    """

    def __init__(self, participant_id: str, kind: Kind, codec: str, now: Callable[[], float],
                 emit: Callable[[EncodedFrame], None]) -> None:
        self.participant_id, self.kind, self.codec = participant_id, kind, codec
        self._now = now
        self._emit = emit
        self._time_base = VIDEO_TIME_BASE if kind == "video" else AUDIO_TIME_BASE
        self._assembler = make_assembler(kind, self._frame, now)
        self._first_ts: int | None = None
        self._last = 0
        self._cycles = 0

    def add(self, unit: PacketUnit) -> bool:
        """Take one packet; True when a keyframe should be asked for (a gap NACK did not repair)."""
        return self._assembler.add(unit)

    def _unwrap(self, ts: int) -> int:
        if self._first_ts is None:
            self._first_ts = self._last = ts
            return 0
        diff = (ts - self._last) & 0xFFFFFFFF
        if diff < 0x80000000:
            if ts < self._last:
                self._cycles += 1 << 32
            self._last = ts
            return self._cycles + ts - self._first_ts
        base = self._cycles - (1 << 32) if ts > self._last else self._cycles
        return base + ts - self._first_ts

    def _frame(self, data: bytes, rtp_ts: int, keyframe: bool, ssrc: int) -> None:
        self._emit(EncodedFrame(self.participant_id, self.kind, self.codec, data, self._unwrap(rtp_ts),
                                self._time_base, keyframe, arrival=self._now()))
