"""Packet forwarding: one ``Source`` per published track, one ``Leg`` per subscriber's copy of it.

A source keeps each received packet once (its payload bytes, for retransmissions) and hands it to its
legs. A leg rewrites the header for its subscriber: its own SSRC, and sequence numbers, timestamps and
VP8 picture ids shifted by a per-*segment* offset. A segment starts on a keyframe (video) or any packet
(audio) and continues the leg's numbering by one step, so a subscriber sees small forward steps only
(its rollover guess, RFC 3711 3.3.1, never breaks) and sees every upstream loss as a gap it can NACK.
Retransmissions go out on RTX only (RFC 4588), so no SRTP index is ever used twice.

Nothing here touches sockets or aiortc: a source talks to its publisher through ``Upstream`` and a leg
to its subscriber through ``Downstream`` (``server/media/connection.py``), so the traps of packet
forwarding are tested on bytes (tests/media/test_streams.py).
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from server.media.frames import Kind
from server.media.rtp import (
    HEADER,
    NO_VP8,
    ReportBlock,
    Vp8Info,
    build_nack,
    build_pli,
    build_remb,
    build_rr,
    build_sr,
    vp8_info,
)

log = logging.getLogger(__name__)

KEYFRAME_INTERVAL = 0.5  # s between PLIs to one publisher (RFC 4585 3.4: feedback is rate limited)
REMB_CHANGE = 0.1  # a new REMB upstream when the minimum moves by more than 10 % ...
REMB_REFRESH = 1.0  # ... and at least this often while subscribers report one
NACK_REORDER = 0.01  # s a gap may be reordering before it is NACKed
NACK_RETRY = 0.04  # s between NACKs of one packet
NACK_TRIES = 3  # then the packet is given up (video: a keyframe is asked for)
MAX_MISSING = 128  # a longer gap is not NACKed packet by packet: the source asks for a keyframe
MAX_JUMP = 1000  # a leg never moves its sequence numbers further in one step
RTX_RATE = 200.0  # retransmissions per second one leg may send (token bucket) ...
RTX_BURST = 100.0  # ... with this burst
RTX_PER_PACKET = 2  # times one packet is retransmitted to one leg
HISTORY = {"video": 1024, "audio": 256}  # packets kept per source for retransmission
CLOCK_RATE = {"video": 90000, "audio": 48000}


class Context(Protocol):
    """The forwarding loop's state that sources and legs read (the engine)."""

    now: float
    abs_send_time: bytes

    def wake(self, source: Source) -> None:
        """Run ``source.tick()`` on the next batch (NACK retries, a rate-limited PLI)."""
        ...


# Where a recorded source's packets go: (source, seq, ts, marker, VP8 info, payload, SSRC). The in-process
# room defers them to be assembled after the batch; a media worker appends them to its pipe to the web
# process. Either costs one call per packet on the forwarding path, nothing more.
Recorder = Callable[["Source", int, int, int, Vp8Info, bytes, int], None]


class Upstream(Protocol):
    """The publisher's connection, as a source sees it."""

    rtcp_ssrc: int

    def send_rtcp(self, packet: bytes) -> None: ...


class Downstream(Protocol):
    """The subscriber's connection, as a leg sees it: write a packet into ``tx``, then ``send_rtp``."""

    rtcp_ssrc: int
    tx: memoryview

    def send_rtp(self, length: int) -> bool:
        """Protect and send ``tx[:length]``; False when the socket would block (the leg is behind)."""
        ...

    def send_rtcp(self, packet: bytes) -> None: ...


class Stored(NamedTuple):
    seq: int
    ts: int
    marker: bool
    payload: bytes
    vp8: Vp8Info


class Source:
    """One published track: receive statistics, history, upstream NACK/PLI/REMB, fan-out to legs."""

    def __init__(self, participant_id: str, kind: Kind, codec: str, ctx: Context) -> None:
        self.participant_id = participant_id
        self.kind = kind
        self.codec = codec
        self.ctx = ctx
        self.upstream: Upstream | None = None
        self.legs: list[Leg] = []
        self.ssrc: int | None = None
        self.nack_allowed = kind == "video"  # set from the negotiated rtcp-fb when bound
        self.muted = False
        self.ended = False
        self.recording = False
        self.recorder: Recorder | None = None
        self._mask = HISTORY[kind] - 1
        self._history: list[Stored | None] = [None] * HISTORY[kind]
        self._missing: dict[int, list[float]] = {}  # seq -> [next NACK at, tries]
        self._highest = -1  # extended highest sequence number, -1 before the first packet
        self._base = 0
        self._received = 0
        self._prior_expected = 0
        self._prior_received = 0
        self._last_pli = -1e9
        self._pli_pending = False
        self._sr: tuple[int, int, float] | None = None  # (ntp, rtp, arrival) of the last sender report
        self._sent_remb: int | None = None
        self._remb_at = -1e9
        self.packets_in = 0
        self.frames_in = 0
        self.keyframes_in = 0
        self.frames_forwarded = 0
        self.packets_forwarded = 0
        self.keyframe_requests_sent = 0
        self.nacks_sent = 0
        self.rtx_in = 0
        self.lost_unrepaired = 0

    # -- receiving -------------------------------------------------------------------------------

    def on_packet(self, payload: bytes, seq: int, ts: int, marker: int, ssrc: int, level: int, rtx: bool) -> None:
        """One packet from the publisher, unprotected and unwrapped from RTX (called per packet)."""
        if rtx:
            self.rtx_in += 1
            if self._missing.pop(seq, None) is None:
                stored = self._history[seq & self._mask]
                if stored is not None and stored.seq == seq:
                    return  # the original came after all
        else:
            if ssrc != self.ssrc:
                self._new_stream(ssrc, seq)
            highest = self._highest
            d = (seq - highest) & 0xFFFF
            if d == 0:
                return  # duplicate
            if d < 0x8000:
                if d > 1:
                    self._gap(seq, d - 1)
                self._highest = highest + d
            elif self._missing.pop(seq, None) is None:
                stored = self._history[seq & self._mask]
                if stored is not None and stored.seq == seq:
                    return  # duplicate of an old packet
            self._received += 1
        self.packets_in += 1
        vp8 = vp8_info(payload) if self.kind == "video" else NO_VP8
        self._history[seq & self._mask] = Stored(seq, ts, bool(marker), payload, vp8)
        if marker or self.kind == "audio":
            self.frames_in += 1
        if vp8.keyframe:
            self.keyframes_in += 1
        if self.muted or self.ended:
            return
        for leg in self.legs:
            leg.forward(seq, ts, marker, payload, vp8, level)
        if self.recorder is not None:
            self.recorder(self, seq, ts, marker, vp8, payload, ssrc)

    def _new_stream(self, ssrc: int, seq: int) -> None:
        """The first packet, or the publisher restarted its stream: every leg starts a new segment."""
        first = self.ssrc is None
        self.ssrc = ssrc
        self._highest = (seq - 1) & 0xFFFF
        self._base = seq
        self._received = self._prior_expected = self._prior_received = 0
        self._missing.clear()
        self._history = [None] * len(self._history)
        if not first:
            for leg in self.legs:
                leg.restart()

    def _gap(self, seq: int, count: int) -> None:
        if count > MAX_MISSING:
            self.lost_unrepaired += count
            self.request_keyframe()  # too much to repair packet by packet
            return
        if not self.nack_allowed:
            self.lost_unrepaired += count
            return
        due = self.ctx.now + NACK_REORDER
        for i in range(1, count + 1):
            self._missing[(seq - i) & 0xFFFF] = [due, 0.0]
        self.ctx.wake(self)

    def on_sr(self, ntp: int, rtp_ts: int) -> None:
        """A sender report: kept for our receiver reports and passed to each leg on its own timeline."""
        self._sr = (ntp, rtp_ts, self.ctx.now)
        for leg in self.legs:
            leg.send_sr(ntp, rtp_ts)

    def stored(self, seq: int) -> Stored | None:
        stored = self._history[seq & self._mask]
        return stored if stored is not None and stored.seq == seq else None

    # -- feedback to the publisher ----------------------------------------------------------------

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe now, or as soon as the rate limit allows (coalesced)."""
        if self.kind != "video" or self.ended:
            return
        self._pli_pending = True
        self.ctx.wake(self)

    def tick(self, now: float) -> bool:
        """NACK retries and a pending PLI; True while there is more to do on later batches."""
        more = False
        if self._missing:
            due = [seq for seq, state in self._missing.items() if state[0] <= now]
            ask: list[int] = []
            for seq in due:
                state = self._missing[seq]
                if state[1] >= NACK_TRIES:
                    del self._missing[seq]
                    self.lost_unrepaired += 1
                    self.request_keyframe()
                    continue
                state[0] = now + NACK_RETRY
                state[1] += 1
                ask.append(seq)
            if ask and self.upstream is not None and self.ssrc is not None:
                self.nacks_sent += 1
                self.upstream.send_rtcp(build_nack(self.upstream.rtcp_ssrc, self.ssrc, ask[:64]))
            more = bool(self._missing)
        if self._pli_pending:
            if self.upstream is None or self.ssrc is None:
                more = True  # nothing received yet: ask once the publisher's stream is known
            elif now - self._last_pli >= KEYFRAME_INTERVAL:
                self._pli_pending = False
                self._last_pli = now
                self.keyframe_requests_sent += 1
                self.upstream.send_rtcp(build_pli(self.upstream.rtcp_ssrc, self.ssrc))
            else:
                more = True
        return more

    def leg_remb_changed(self) -> None:
        self._send_remb(force=False)

    def _send_remb(self, *, force: bool) -> None:
        rates = [leg.remb for leg in self.legs if leg.remb is not None]
        if not rates or self.upstream is None or self.ssrc is None:
            return
        target = min(rates)
        sent = self._sent_remb
        if force or sent is None or abs(target - sent) > REMB_CHANGE * sent:
            self._sent_remb = target
            self._remb_at = self.ctx.now
            self.upstream.send_rtcp(build_remb(self.upstream.rtcp_ssrc, target, [self.ssrc]))

    def report(self, now: float) -> None:
        """Once a second: a receiver report (loss, LSR/DLSR for the publisher's RTT) and the REMB."""
        if self.upstream is None or self.ssrc is None or self._highest < 0:
            return
        expected = self._highest - self._base + 1
        lost = expected - self._received
        interval_expected = expected - self._prior_expected
        interval_lost = interval_expected - (self._received - self._prior_received)
        self._prior_expected, self._prior_received = expected, self._received
        fraction = (interval_lost << 8) // interval_expected if interval_expected > 0 and interval_lost > 0 else 0
        lsr = dlsr = 0
        if self._sr is not None:
            lsr = (self._sr[0] >> 16) & 0xFFFFFFFF
            dlsr = int((now - self._sr[2]) * 65536)
        block = ReportBlock(self.ssrc, min(255, fraction), lost, self._highest, lsr, dlsr)
        self.upstream.send_rtcp(build_rr(self.upstream.rtcp_ssrc, [block]))
        if now - self._remb_at >= REMB_REFRESH:
            self._send_remb(force=True)

    @property
    def remb(self) -> int | None:
        return self._sent_remb

    # -- recording (off the forwarding path) ----------------------------------------------------------

    def set_recorder(self, recorder: Recorder | None) -> None:
        """Hand this source's forwarded packets to ``recorder`` (None: not recorded, no cost)."""
        self.recorder = recorder
        self.recording = recorder is not None

    # -- life -----------------------------------------------------------------------------------------

    def end(self) -> None:
        """The publisher left: legs are detached, nothing more is sent upstream."""
        self.ended = True
        self._pli_pending = False
        self._missing.clear()
        for leg in list(self.legs):
            leg.detach()
        self.upstream = None
        self.set_recorder(None)

    def stats(self) -> dict[str, Any]:
        return {
            "participant": self.participant_id,
            "kind": self.kind,
            "codec": self.codec,
            "muted": self.muted,
            "packets_in": self.packets_in,
            "frames_in": self.frames_in,
            "keyframes_in": self.keyframes_in,
            "frames_forwarded": self.frames_forwarded,
            "packets_forwarded": self.packets_forwarded,
            "keyframe_requests_sent": self.keyframe_requests_sent,
            "nacks_sent": self.nacks_sent,
            "rtx_in": self.rtx_in,
            "lost_unrepaired": self.lost_unrepaired,
            "legs": len(self.legs),
            "remb_sent": self._sent_remb,
        }


class Segment(NamedTuple):
    """Offsets from a source's numbering to a leg's, from ``src_start`` on."""

    src_start: int
    out_start: int
    seq_off: int
    ts_off: int
    pid_off: int
    tl0_off: int


class Leg:
    """One subscriber's copy of a track; reused (re-attached) for the next publisher of its kind."""

    def __init__(self, kind: Kind, subscriber_id: str, ctx: Context) -> None:
        self.kind = kind
        self.subscriber_id = subscriber_id
        self.ctx = ctx
        self.source: Source | None = None
        self.down: Downstream | None = None
        self.mid: str | None = None
        self.ssrc = 0
        self.rtx_ssrc = 0
        self.pt = 0
        self.rtx_pt: int | None = None
        self.ext_block = b""
        self.ast_at = 0
        self.level_at = 0
        self.waiting = True  # for the start of a segment (video: a keyframe)
        self.remb: int | None = None
        self._rate = CLOCK_RATE[kind]
        self._segments: deque[Segment] = deque(maxlen=4)
        self._seg: Segment | None = None
        self._seg_max = -1
        self._started = False
        self._last_seq = random.getrandbits(16)
        self._last_ts = random.getrandbits(32)
        self._last_pid = random.getrandbits(15)
        self._last_tl0 = random.getrandbits(8)
        self._last_at = 0.0
        self._rtx_seq = random.getrandbits(16)
        self._rtx_tokens = RTX_BURST
        self._rtx_at = 0.0
        self._rtx_count: dict[int, int] = {}
        self.packets_sent = 0
        self.octets_sent = 0
        self.frames_sent = 0
        self.frames_dropped = 0
        self.rtx_sent = 0
        self.nacks_received = 0
        self.nacks_unanswered = 0
        self.keyframe_requests = 0
        self.flushes = 0

    # -- set-up ---------------------------------------------------------------------------------------

    def connect(self, down: Downstream, *, mid: str | None, ssrc: int, rtx_ssrc: int, pt: int, rtx_pt: int | None,
                ext_block: bytes, ast_at: int, level_at: int) -> None:
        """The subscriber's SRTP is ready and this m-line negotiated: packets can go out now."""
        self.down, self.mid, self.ssrc, self.rtx_ssrc, self.pt, self.rtx_pt = down, mid, ssrc, rtx_ssrc, pt, rtx_pt
        self.ext_block, self.ast_at, self.level_at = ext_block, ast_at, level_at
        self.restart()  # any keyframe forwarded before now was lost to this subscriber: ask for one

    def attach(self, source: Source) -> None:
        self.detach()
        self.source = source
        source.legs.append(self)
        self.restart()

    def detach(self) -> None:
        source, self.source = self.source, None
        if source is not None:
            if self in source.legs:
                source.legs.remove(self)
            source.leg_remb_changed()
        self.remb = None
        self.waiting = True

    def restart(self) -> None:
        """Wait for the next segment start; video asks for a keyframe (never left to chance)."""
        self.waiting = True
        if self.kind == "video" and self.source is not None and self.down is not None:
            self.keyframe_requests += 1
            self.source.request_keyframe()

    def close(self) -> None:
        self.detach()
        self.down = None

    # -- forwarding (per packet) ------------------------------------------------------------------------

    def forward(self, seq: int, ts: int, marker: int, payload: bytes, vp8: Vp8Info, level: int) -> None:
        if self.down is None:
            return
        if self.waiting:
            if self.kind == "video" and not vp8.keyframe:
                if marker:
                    self.frames_dropped += 1
                return
            self._start_segment(seq, ts, vp8)
        seg = self._seg
        assert seg is not None  # noqa: S101  (set by _start_segment)
        d = (seq - seg.src_start) & 0xFFFF
        if d >= 0x8000:
            return  # from before this segment
        if d > self._seg_max + MAX_JUMP:
            self.restart()  # the source jumped: never let the subscriber's numbering jump with it
            if self.kind == "video":
                return
            self._start_segment(seq, ts, vp8)
            seg = self._seg
            assert seg is not None  # noqa: S101
            d = 0
        out_seq = (seq + seg.seq_off) & 0xFFFF
        out_ts = (ts + seg.ts_off) & 0xFFFFFFFF
        if not self._send(self.pt, out_seq, out_ts, self.ssrc, marker, payload, vp8, level, seg, -1):
            if self.kind == "video":
                self._fall_behind()
            return
        if d > self._seg_max:
            self._seg_max = d
            self._last_seq = out_seq
            self._last_ts = out_ts
            self._last_at = self.ctx.now
            if vp8.pid_bits:
                self._last_pid = (vp8.picture_id + seg.pid_off) & 0x7FFF
            if vp8.tl0_offset:
                self._last_tl0 = (vp8.tl0 + seg.tl0_off) & 0xFF
        self.packets_sent += 1
        self.octets_sent += len(payload)
        if self.source is not None:
            self.source.packets_forwarded += 1
            if marker or self.kind == "audio":
                self.frames_sent += 1
                self.source.frames_forwarded += 1

    def _start_segment(self, seq: int, ts: int, vp8: Vp8Info) -> None:
        """Continue this leg's numbering one step after the last packet it sent (or at random first)."""
        if self._started:
            seq_off = (self._last_seq + 1 - seq) & 0xFFFF
            step = max(1, int((self.ctx.now - self._last_at) * self._rate))
            ts_off = (self._last_ts + step - ts) & 0xFFFFFFFF
        else:
            seq_off = (self._last_seq - seq) & 0xFFFF
            ts_off = (self._last_ts - ts) & 0xFFFFFFFF
        pid_off = tl0_off = 0
        if vp8.pid_bits:
            pid_off = (self._last_pid + 1 - vp8.picture_id) & 0x7FFF
        if vp8.tl0_offset:
            tl0_off = (self._last_tl0 + 1 - vp8.tl0) & 0xFF
        self._seg = Segment(seq, (seq + seq_off) & 0xFFFF, seq_off, ts_off, pid_off, tl0_off)
        self._segments.appendleft(self._seg)
        self._seg_max = -1
        self._started = True
        self.waiting = False

    def _send(self, pt: int, seq: int, ts: int, ssrc: int, marker: int, payload: bytes, vp8: Vp8Info, level: int,
              seg: Segment, osn: int) -> bool:
        down = self.down
        if down is None:
            return False
        tx = down.tx
        block = self.ext_block
        pos = 12 + len(block)
        plen = len(payload)
        b0 = 0x90 if block else 0x80
        if plen == 0 and osn < 0:
            b0 |= 0x20  # a padding-only packet stays one, so the subscriber's numbering has no hole
        HEADER.pack_into(tx, 0, b0, (0x80 if marker else 0) | pt, seq, ts, ssrc)
        if block:
            tx[12:pos] = block
            if self.ast_at:
                tx[self.ast_at : self.ast_at + 3] = self.ctx.abs_send_time
            if self.level_at and level >= 0:
                tx[self.level_at] = level
        if osn >= 0:
            tx[pos] = osn >> 8
            tx[pos + 1] = osn & 0xFF
            pos += 2
        if plen:
            tx[pos : pos + plen] = payload
            bits = vp8.pid_bits
            if bits == 15:
                pid = (vp8.picture_id + seg.pid_off) & 0x7FFF
                at = pos + vp8.pid_offset
                tx[at] = 0x80 | (pid >> 8)
                tx[at + 1] = pid & 0xFF
            elif bits:
                tx[pos + vp8.pid_offset] = (vp8.picture_id + seg.pid_off) & 0x7F
            if vp8.tl0_offset:
                tx[pos + vp8.tl0_offset] = (vp8.tl0 + seg.tl0_off) & 0xFF
            pos += plen
        elif osn < 0:
            tx[pos] = 1
            pos += 1
        return down.send_rtp(pos)

    def _fall_behind(self) -> None:
        """The subscriber cannot take what we send: drop to the next keyframe and ask for it at once."""
        if not self.waiting:
            self.flushes += 1
            log.info("leg %s/%s fell behind: waiting for a keyframe", self.subscriber_id, self.kind)
        self.restart()

    # -- feedback from the subscriber -------------------------------------------------------------------

    def on_nack(self, seqs: list[int]) -> None:
        """Answer from history, as RTX only; bounded per packet and per second."""
        self.nacks_received += len(seqs)
        source = self.source
        if self.rtx_pt is None or source is None or not self._segments:
            self.nacks_unanswered += len(seqs)
            return
        now = self.ctx.now
        self._rtx_tokens = min(RTX_BURST, self._rtx_tokens + (now - self._rtx_at) * RTX_RATE)
        self._rtx_at = now
        if len(self._rtx_count) > 1024:
            self._rtx_count.clear()
        for out_seq in seqs:
            seg = next((s for s in self._segments if ((out_seq - s.out_start) & 0xFFFF) < 0x8000), None)
            stored = source.stored((out_seq - seg.seq_off) & 0xFFFF) if seg is not None else None
            count = self._rtx_count.get(out_seq, 0)
            if seg is None or stored is None or count >= RTX_PER_PACKET:
                self.nacks_unanswered += 1
                continue
            if self._rtx_tokens < 1:
                self.nacks_unanswered += 1
                if self.kind == "video":
                    self._fall_behind()  # asking for more than it can repair: a keyframe is cheaper
                return
            self._rtx_tokens -= 1
            self._rtx_count[out_seq] = count + 1
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            out_ts = (stored.ts + seg.ts_off) & 0xFFFFFFFF
            if self._send(self.rtx_pt, self._rtx_seq, out_ts, self.rtx_ssrc, stored.marker, stored.payload,
                          stored.vp8, -1, seg, out_seq):
                self.rtx_sent += 1

    def on_keyframe_request(self) -> None:
        self.keyframe_requests += 1
        if self.source is not None:
            self.source.request_keyframe()

    def on_remb(self, bitrate: int) -> None:
        self.remb = bitrate
        if self.source is not None:
            self.source.leg_remb_changed()

    def send_sr(self, ntp: int, rtp_ts: int) -> None:
        """The publisher's sender report moved onto this leg's timestamps (lip sync per leg)."""
        if self.down is None or self._seg is None or self.waiting:
            return
        out_ts = (rtp_ts + self._seg.ts_off) & 0xFFFFFFFF
        self.down.send_rtcp(build_sr(self.ssrc, ntp, out_ts, self.packets_sent, self.octets_sent))

    def stats(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "subscriber": self.subscriber_id,
            "source": self.source.participant_id if self.source else None,
            "mid": self.mid,
            "packets_sent": self.packets_sent,
            "frames_sent": self.frames_sent,
            "frames_dropped": self.frames_dropped,
            "flushes": self.flushes,
            "rtx_sent": self.rtx_sent,
            "nacks_received": self.nacks_received,
            "nacks_unanswered": self.nacks_unanswered,
            "keyframe_requests": self.keyframe_requests,
            "remb": self.remb,
        }
