"""RTP and RTCP on the forwarding path: read only what the relay needs, write headers and feedback by hand.

aiortc's ``RtpPacket.parse``/``serialize`` build objects and copy every packet several times; the relay
reads the fixed header with one ``struct.unpack_from`` on the receive buffer, finds the payload and (for
VP8) the payload descriptor, and writes each leg's header straight into the send buffer. RTCP is rarer
and built here as bytes (RFC 3550 6.4 SR/RR, RFC 4585 6.2.1 NACK, 6.3.1 PLI, RFC 5104 4.3.1 FIR,
draft-alvestrand-rmcat-remb).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import NamedTuple

URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
URI_ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"

RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_RTPFB, RTCP_PSFB = 200, 201, 202, 203, 205, 206
FB_NACK, FB_PLI, FB_FIR, FB_REMB = 1, 1, 4, 15

HEADER = struct.Struct("!BBHII")
_HH = struct.Struct("!HH")
_H = struct.Struct("!H")
_I = struct.Struct("!I")


def is_rtcp(second_byte: int) -> bool:
    """RFC 5761 4: with rtcp-mux, RTCP packet types 192-223 sit where RTP has marker+payload type."""
    return 192 <= second_byte <= 223


class Vp8Info(NamedTuple):
    """What the relay reads from a VP8 payload descriptor (RFC 7741 4.2)."""

    start: bool  # S=1 and PID=0: the first packet of a frame
    keyframe: bool  # ... and that frame is a key frame (RFC 6386 9.1)
    pid_offset: int  # offset of the picture id in the payload, 0 when absent
    pid_bits: int  # 0 (absent), 7 or 15
    tl0_offset: int  # offset of TL0PICIDX, 0 when absent
    size: int  # descriptor length: the VP8 data starts here
    picture_id: int  # -1 when absent
    tl0: int  # -1 when absent


NO_VP8 = Vp8Info(False, False, 0, 0, 0, 0, -1, -1)


def vp8_info(payload: bytes) -> Vp8Info:
    """Parse a VP8 payload descriptor; a malformed one reads as 'not a frame start', never raises."""
    n = len(payload)
    if n < 1:
        return NO_VP8
    b0 = payload[0]
    pos = 1
    pid_offset = pid_bits = tl0_offset = 0
    picture_id = tl0 = -1
    if b0 & 0x80:
        if n < 2:
            return NO_VP8
        x = payload[1]
        pos = 2
        if x & 0x80:
            if n <= pos:
                return NO_VP8
            pid_offset = pos
            if payload[pos] & 0x80:
                if n < pos + 2:
                    return NO_VP8
                pid_bits = 15
                picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                pos += 2
            else:
                pid_bits = 7
                picture_id = payload[pos] & 0x7F
                pos += 1
        if x & 0x40:
            if n <= pos:
                return NO_VP8
            tl0_offset = pos
            tl0 = payload[pos]
            pos += 1
        if x & 0x30:
            pos += 1
    if pos >= n:
        return Vp8Info(False, False, pid_offset, pid_bits, tl0_offset, pos, picture_id, tl0)
    start = bool(b0 & 0x10) and (b0 & 0x0F) == 0
    key = start and not (payload[pos] & 0x01)
    return Vp8Info(start, key, pid_offset, pid_bits, tl0_offset, pos, picture_id, tl0)


def write_picture_id(buf: memoryview, offset: int, bits: int, value: int) -> None:
    if bits == 15:
        _H.pack_into(buf, offset, 0x8000 | (value & 0x7FFF))
    elif bits == 7:
        buf[offset] = value & 0x7F


def one_byte_extension(buf: memoryview | bytes, start: int, end: int, ext_id: int) -> int:
    """The first data byte of one-byte header extension ``ext_id`` (RFC 8285 4.2), or -1."""
    pos = start
    while pos < end:
        b = buf[pos]
        if b == 0:
            pos += 1
            continue
        eid, length = b >> 4, (b & 0x0F) + 1
        if eid == 15:
            return -1
        if eid == ext_id:
            return buf[pos + 1] if pos + 1 < end else -1
        pos += 1 + length
    return -1


class ExtensionLayout(NamedTuple):
    """One leg's header extension block and where its per-packet values go (offsets from the RTP start)."""

    block: bytes
    abs_send_time: int  # offset of the 3 bytes, 0 = not negotiated
    audio_level: int  # offset of the byte, 0 = not negotiated


def extension_layout(mid: str | None, ids: dict[str, int], kind: str) -> ExtensionLayout:
    """Build a leg's one-byte extension block (RFC 8285) from the ids *its* connection negotiated."""
    body = bytearray()
    ast_at = level_at = 0
    mid_id = ids.get(URI_MID)
    if mid_id and mid and 0 < len(mid) <= 16:
        body += bytes([(mid_id << 4) | (len(mid) - 1)]) + mid.encode()
    ast_id = ids.get(URI_ABS_SEND_TIME)
    if ast_id and kind == "video":
        body += bytes([(ast_id << 4) | 2])
        ast_at = 12 + 4 + len(body)
        body += b"\0\0\0"
    level_id = ids.get(URI_AUDIO_LEVEL)
    if level_id and kind == "audio":
        body += bytes([level_id << 4])
        level_at = 12 + 4 + len(body)
        body += b"\x7f"
    if not body:
        return ExtensionLayout(b"", 0, 0)
    while len(body) % 4:
        body += b"\0"
    return ExtensionLayout(b"\xbe\xde" + _H.pack(len(body) // 4) + bytes(body), ast_at, level_at)


def abs_send_time(now: float) -> bytes:
    """abs-send-time: 6.18 fixed-point seconds, 24 bits (only differences matter to the receiver)."""
    value = int(now * (1 << 18)) & 0xFFFFFF
    return bytes(((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF))


# ---------------------------------------------------------------------------------------------- RTCP


class Rtcp(NamedTuple):
    packet_type: int
    fmt: int  # report count or feedback message type
    sender: int
    media: int  # media source SSRC of feedback; 0 for reports
    body: bytes  # after the sender SSRC (reports) or the media SSRC (feedback)


def parse_rtcp(data: bytes) -> Iterator[Rtcp]:
    """The packets of a compound RTCP packet; stops quietly at the first malformed one."""
    pos, n = 0, len(data)
    while pos + 8 <= n:
        b0, pt, words = data[pos], data[pos + 1], _H.unpack_from(data, pos + 2)[0]
        end = pos + 4 + 4 * words
        if (b0 >> 6) != 2 or end > n:
            return
        sender = _I.unpack_from(data, pos + 4)[0]
        if pt in (RTCP_RTPFB, RTCP_PSFB):
            if end < pos + 12:
                return
            yield Rtcp(pt, b0 & 0x1F, sender, _I.unpack_from(data, pos + 8)[0], data[pos + 12 : end])
        else:
            yield Rtcp(pt, b0 & 0x1F, sender, 0, data[pos + 8 : end])
        pos = end


def nack_sequence_numbers(fci: bytes) -> list[int]:
    """RFC 4585 6.2.1: each (PID, BLP) pair names PID and up to 16 following lost packets."""
    seqs: list[int] = []
    for i in range(0, len(fci) - 3, 4):
        pid, blp = _HH.unpack_from(fci, i)
        seqs.append(pid)
        for bit in range(16):
            if blp & (1 << bit):
                seqs.append((pid + bit + 1) & 0xFFFF)
    return seqs


def remb_bitrate(fci: bytes) -> tuple[int, list[int]] | None:
    """(bitrate in bit/s, SSRCs) of a REMB message, or None when it is not one."""
    if len(fci) < 8 or fci[:4] != b"REMB":
        return None
    count, b1, b2, b3 = fci[4], fci[5], fci[6], fci[7]
    bitrate = ((b1 & 0x03) << 16 | b2 << 8 | b3) << (b1 >> 2)
    ssrcs = [_I.unpack_from(fci, 8 + 4 * i)[0] for i in range(count) if 12 + 4 * i <= len(fci)]
    return bitrate, ssrcs


def fir_ssrcs(fci: bytes) -> list[int]:
    return [_I.unpack_from(fci, i)[0] for i in range(0, len(fci) - 7, 8)]


def sender_info(body: bytes) -> tuple[int, int] | None:
    """(64-bit NTP timestamp, RTP timestamp) of a sender report body."""
    if len(body) < 20:
        return None
    ntp_hi, ntp_lo, rtp_ts = struct.unpack_from("!III", body, 0)
    return (ntp_hi << 32) | ntp_lo, rtp_ts


def _header(count: int, pt: int, length_bytes: int) -> bytes:
    return struct.pack("!BBH", 0x80 | count, pt, length_bytes // 4 - 1)


def build_sr(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    return _header(0, RTCP_SR, 28) + struct.pack(
        "!IIIIII", ssrc, (ntp >> 32) & 0xFFFFFFFF, ntp & 0xFFFFFFFF, rtp_ts & 0xFFFFFFFF,
        packets & 0xFFFFFFFF, octets & 0xFFFFFFFF,
    )


class ReportBlock(NamedTuple):
    ssrc: int
    fraction_lost: int  # 0-255
    lost: int
    highest: int  # extended highest sequence number received
    lsr: int
    dlsr: int


def build_rr(ssrc: int, blocks: list[ReportBlock]) -> bytes:
    body = b"".join(
        struct.pack(
            "!IIIIII", b.ssrc, (b.fraction_lost & 0xFF) << 24 | (max(-0x800000, min(0x7FFFFF, b.lost)) & 0xFFFFFF),
            b.highest & 0xFFFFFFFF, 0, b.lsr & 0xFFFFFFFF, b.dlsr & 0xFFFFFFFF,
        )
        for b in blocks[:31]
    )
    return _header(len(blocks[:31]), RTCP_RR, 8 + len(body)) + _I.pack(ssrc) + body


def build_nack(sender: int, media: int, seqs: list[int]) -> bytes:
    pairs: list[tuple[int, int]] = []
    for seq in sorted(set(seqs), key=lambda s: (s - seqs[0]) & 0xFFFF):
        if pairs and 0 < ((seq - pairs[-1][0]) & 0xFFFF) <= 16:
            pid, blp = pairs[-1]
            pairs[-1] = (pid, blp | 1 << (((seq - pid) & 0xFFFF) - 1))
        else:
            pairs.append((seq, 0))
    fci = b"".join(_HH.pack(p, b) for p, b in pairs)
    return _header(FB_NACK, RTCP_RTPFB, 12 + len(fci)) + struct.pack("!II", sender, media) + fci


def build_pli(sender: int, media: int) -> bytes:
    return _header(FB_PLI, RTCP_PSFB, 12) + struct.pack("!II", sender, media)


def build_remb(sender: int, bitrate: int, ssrcs: list[int]) -> bytes:
    exp = 0
    mantissa = max(0, int(bitrate))
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exp += 1
    fci = b"REMB" + bytes((len(ssrcs), (exp << 2) | (mantissa >> 16), (mantissa >> 8) & 0xFF, mantissa & 0xFF))
    fci += b"".join(_I.pack(s) for s in ssrcs)
    return _header(FB_REMB, RTCP_PSFB, 12 + len(fci)) + struct.pack("!II", sender, 0) + fci
