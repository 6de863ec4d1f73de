"""RTP/VP8 packets made by hand, and fakes of the forwarding loop's surroundings, for the packet tests."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from server.media.rtp import HEADER, Rtcp, parse_rtcp, vp8_info
from server.media.streams import Source

KEY_DATA = b"\x10\x02\x00\x9d\x01\x2a" + bytes(30)  # VP8 frame tag with bit 0 = 0: a key frame
DELTA_DATA = b"\x11" + bytes(30)


def vp8_payload(picture_id: int, tl0: int, *, start: bool, key: bool, data: bytes | None = None) -> bytes:
    """A VP8 payload: descriptor with X, I (15-bit picture id), L (TL0PICIDX), then the VP8 bytes."""
    b0 = 0x80 | (0x10 if start else 0)
    descriptor = bytes([b0, 0xC0]) + struct.pack("!H", 0x8000 | picture_id) + bytes([tl0])
    body = data if data is not None else (KEY_DATA if key else DELTA_DATA)
    return descriptor + (body if start else bytes(20))


def rtp(seq: int, ts: int, payload: bytes, *, pt: int = 96, ssrc: int = 0x1111, marker: bool = False,
        extensions: bytes = b"", padding: int = 0) -> bytes:
    b0 = 0x80 | (0x10 if extensions else 0) | (0x20 if padding else 0)
    head = HEADER.pack(b0, (0x80 if marker else 0) | pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc)
    pad = (bytes(padding - 1) + bytes([padding])) if padding else b""
    return head + extensions + payload + pad


def one_byte_extensions(*elements: tuple[int, bytes]) -> bytes:
    body = b"".join(bytes([(eid << 4) | (len(data) - 1)]) + data for eid, data in elements)
    body += bytes(-len(body) % 4)
    return b"\xbe\xde" + struct.pack("!H", len(body) // 4) + body


@dataclass
class Out:
    """A packet as a subscriber receives it."""

    b0: int
    marker: bool
    pt: int
    seq: int
    ts: int
    ssrc: int
    extensions: dict[int, bytes]
    payload: bytes

    @property
    def picture_id(self) -> int:
        return vp8_info(self.payload).picture_id

    @property
    def tl0(self) -> int:
        return vp8_info(self.payload).tl0


def read_rtp(data: bytes) -> Out:
    b0, b1, seq, ts, ssrc = HEADER.unpack_from(data, 0)
    off = 12 + 4 * (b0 & 0x0F)
    ext: dict[int, bytes] = {}
    if b0 & 0x10:
        words = struct.unpack_from("!H", data, off + 2)[0]
        pos, end = off + 4, off + 4 + 4 * words
        while pos < end:
            if data[pos] == 0:
                pos += 1
                continue
            eid, length = data[pos] >> 4, (data[pos] & 0x0F) + 1
            ext[eid] = data[pos + 1 : pos + 1 + length]
            pos += 1 + length
        off = end
    end = len(data) - data[-1] if b0 & 0x20 else len(data)
    return Out(b0, bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc, ext, data[off:end])


@dataclass
class FakeContext:
    """The engine as sources and legs see it; ``run()`` is one batch's feedback step."""

    now: float = 100.0
    abs_send_time: bytes = b"\x01\x02\x03"
    due: set[Source] = field(default_factory=set)

    def wake(self, source: Source) -> None:
        self.due.add(source)

    def run(self, advance: float = 0.0) -> None:
        self.now += advance
        for source in list(self.due):
            if not source.tick(self.now):
                self.due.discard(source)


@dataclass
class FakeUpstream:
    rtcp_ssrc: int = 0xAAAA
    sent: list[Rtcp] = field(default_factory=list)

    def send_rtcp(self, packet: bytes) -> None:
        self.sent.extend(parse_rtcp(packet))

    def of_type(self, packet_type: int, fmt: int) -> list[Rtcp]:
        return [p for p in self.sent if p.packet_type == packet_type and p.fmt == fmt]


class FakeDownstream:
    """A subscriber connection: records each packet as written (before SRTP); can refuse to send."""

    def __init__(self) -> None:
        self.rtcp_ssrc = 0xBBBB
        self.tx = memoryview(bytearray(2048))
        self.packets: list[Out] = []
        self.rtcp: list[Rtcp] = []
        self.blocked = False

    def send_rtp(self, length: int) -> bool:
        if self.blocked:
            return False
        self.packets.append(read_rtp(bytes(self.tx[:length])))
        return True

    def send_rtcp(self, packet: bytes) -> None:
        self.rtcp.extend(parse_rtcp(packet))
