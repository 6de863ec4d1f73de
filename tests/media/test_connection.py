"""One batch of the real packet path: UDP sockets, real SRTP (AEAD_AES_128_GCM), ticks run by the test."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from packets import Out, one_byte_extensions, read_rtp, rtp, vp8_payload
from pylibsrtp import Policy, Session

from server.media.connection import Codec, MediaConnection, MediaPath, Port, RtpParams
from server.media.engine import MediaEngine
from server.media.rtp import (
    FB_NACK,
    FB_PLI,
    FB_REMB,
    RTCP_PSFB,
    RTCP_RTPFB,
    RTCP_SR,
    URI_ABS_SEND_TIME,
    URI_AUDIO_LEVEL,
    URI_MID,
    Rtcp,
    build_nack,
    build_pli,
    build_remb,
    build_sr,
    is_rtcp,
    parse_rtcp,
    remb_bitrate,
)
from server.media.streams import Leg, Source

pytestmark = pytest.mark.asyncio
GCM = Policy.SRTP_PROFILE_AEAD_AES_128_GCM


class StoppedClock:
    """The test runs each batch itself: the loop's own sleep never ends."""

    def __init__(self) -> None:
        self.t = 50.0

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


def session(key: bytes, direction: int) -> Session:
    policy = Policy(key=key, ssrc_type=direction, srtp_profile=GCM)
    policy.allow_repeat_tx = True
    return Session(policy)


@dataclass
class FakeProtocol:
    received: list[bytes] = field(default_factory=list)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.append(data)


class FakeTransport:
    def __init__(self) -> None:
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return False


class Peer:
    """The far end of one connection: its own socket and SRTP sessions (keys shared with the relay's)."""

    def __init__(self, engine: MediaEngine, name: str, candidates: int = 1) -> None:
        up, down = os.urandom(28), os.urandom(28)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self._relay_socks = []
        for _ in range(candidates):  # the relay's local ICE candidates, one socket each
            relay_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            relay_sock.bind(("127.0.0.1", 0))
            relay_sock.setblocking(False)
            self._relay_socks.append(relay_sock)
        self.relay_addr = self._relay_socks[0].getsockname()
        self.tx, self.rx = session(up, Policy.SSRC_ANY_OUTBOUND), session(down, Policy.SSRC_ANY_INBOUND)
        self.protocol, self.transport = FakeProtocol(), FakeTransport()
        self.conn = MediaConnection(engine, name)
        ports = [Port(s, self.protocol, self.transport) for s in self._relay_socks]
        self.conn.bind(MediaPath(ports, 0, self.sock.getsockname(),
                                 session(up, Policy.SSRC_ANY_INBOUND), session(down, Policy.SSRC_ANY_OUTBOUND)))
        self.came_from: set[tuple[str, int]] = set()

    def send(self, packet: bytes) -> None:
        protected = self.tx.protect_rtcp(packet) if is_rtcp(packet[1]) else self.tx.protect(packet)
        self.sock.sendto(protected, self.relay_addr)

    def receive(self) -> tuple[list[Out], list[Rtcp]]:
        packets: list[Out] = []
        rtcp: list[Rtcp] = []
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except BlockingIOError:
                return packets, rtcp
            self.came_from.add(addr)
            if is_rtcp(data[1]):
                rtcp.extend(parse_rtcp(self.rx.unprotect_rtcp(data)))
            else:
                packets.append(read_rtp(self.rx.unprotect(data)))

    def close(self) -> None:
        self.conn.unbind()
        self.sock.close()
        for relay_sock in self._relay_socks:
            relay_sock.close()


VIDEO_IN = RtpParams([Codec(96, "vp8", nack=True), Codec(97, "rtx", apt=96)],
                     {URI_MID: 4, URI_ABS_SEND_TIME: 2}, "0")
AUDIO_IN = RtpParams([Codec(111, "opus")], {URI_MID: 4, URI_AUDIO_LEVEL: 1}, "1")
VIDEO_OUT = RtpParams([Codec(100, "vp8", nack=True), Codec(101, "rtx", apt=100)],
                      {URI_MID: 9, URI_ABS_SEND_TIME: 5}, "3")
AUDIO_OUT = RtpParams([Codec(109, "opus")], {URI_MID: 9, URI_AUDIO_LEVEL: 7}, "4")


@dataclass
class Wire:
    engine: MediaEngine
    clock: StoppedClock
    pub: Peer
    sub: Peer
    video: Source
    audio: Source
    video_leg: Leg
    audio_leg: Leg

    def tick(self, advance: float = 0.01) -> tuple[list[Out], list[Rtcp], list[Rtcp]]:
        """One batch; what the subscriber then received (RTP, RTCP) and the RTCP the publisher got."""
        self.clock.t += advance
        self.engine.tick()
        packets, rtcp = self.sub.receive()
        return packets, rtcp, self.pub.receive()[1]


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    clock = StoppedClock()
    engine = MediaEngine(clock)
    pub, sub = Peer(engine, "pub"), Peer(engine, "sub", candidates=2)
    video, audio = Source("pub", "video", "VP8", engine), Source("pub", "audio", "opus", engine)
    pub.conn.add_source(video, VIDEO_IN)
    pub.conn.add_source(audio, AUDIO_IN)
    video_leg, audio_leg = Leg("video", "sub", engine), Leg("audio", "sub", engine)
    video_leg.attach(video)
    audio_leg.attach(audio)
    sub.conn.add_leg(video_leg, VIDEO_OUT, 0x5151, 0x5252)
    sub.conn.add_leg(audio_leg, AUDIO_OUT, 0x6161, 0x6262)
    yield Wire(engine, clock, pub, sub, video, audio, video_leg, audio_leg)
    pub.close()
    sub.close()
    await engine.close()


def send_keyframe(wire: Wire, seq: int, ts: int, pid: int) -> None:
    ext = one_byte_extensions((4, b"0"), (2, b"\x00\x00\x01"))
    for i in range(3):
        wire.pub.send(rtp(seq + i, ts, vp8_payload(pid, 1, start=i == 0, key=True), marker=i == 2, extensions=ext))


async def test_each_packet_is_unprotected_once_rewritten_for_the_leg_and_protected_again(wire: Wire) -> None:
    assert not wire.pub.transport.reading, "asyncio no longer reads the socket: the batch loop does"
    send_keyframe(wire, 1000, 90000, 77)
    packets, _, _ = wire.tick()
    assert len(packets) == 3
    assert {(p.pt, p.ssrc) for p in packets} == {(100, 0x5151)}
    assert [p.seq for p in packets] == [(packets[0].seq + i) & 0xFFFF for i in range(3)]
    assert [p.marker for p in packets] == [False, False, True]
    first = packets[0]
    assert first.extensions[9] == b"3", "mid under the subscriber's id, with the subscriber's mid"
    assert first.extensions[5] == wire.engine.abs_send_time, "abs-send-time rebuilt at send"
    assert 4 not in first.extensions and 2 not in first.extensions, "no publisher ids leak through"
    assert first.payload[5:] == vp8_payload(77, 1, start=True, key=True)[5:], "the VP8 data is untouched"
    assert wire.engine.packets_out == 3


async def test_the_audio_level_is_passed_on_under_the_subscribers_id(wire: Wire) -> None:
    ext = one_byte_extensions((4, b"1"), (1, bytes([0x80 | 23])))
    wire.pub.send(rtp(5, 960, b"\xfc" + bytes(60), pt=111, ssrc=0x3333, marker=True, extensions=ext))
    packets, _, _ = wire.tick()
    (out,) = packets
    assert (out.pt, out.ssrc) == (109, 0x6161)
    assert out.extensions[7] == bytes([0x80 | 23]) and out.extensions[9] == b"4"
    assert out.payload == b"\xfc" + bytes(60), "Opus passes untouched (stereo or not)"


async def test_incoming_rtx_is_unwrapped_and_padding_only_probes_are_dropped(wire: Wire) -> None:
    send_keyframe(wire, 1000, 90000, 77)
    wire.tick()
    ext = one_byte_extensions((4, b"0"))
    wire.pub.send(rtp(1004, 93000, vp8_payload(78, 1, start=False, key=False), marker=True, extensions=ext))
    packets, _, _ = wire.tick()
    base = packets[0].seq - 1004
    repaired = vp8_payload(78, 1, start=True, key=False)
    wire.pub.send(rtp(40, 93000, (1003).to_bytes(2, "big") + repaired, pt=97, ssrc=0x9999, extensions=ext))
    wire.pub.send(rtp(41, 93000, b"", pt=97, ssrc=0x9999, padding=200, extensions=ext))  # a bandwidth probe
    packets, _, _ = wire.tick()
    (out,) = packets
    assert out.seq == (1003 + base) & 0xFFFF and out.pt == 100 and out.ssrc == 0x5151
    assert out.payload[5:] == repaired[5:], "the original packet, under its own sequence number"
    assert wire.pub.conn.padding_dropped == 1


async def test_stun_and_dtls_datagrams_go_back_to_aioice(wire: Wire) -> None:
    stun = b"\x00\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)
    dtls = b"\x16\xfe\xfd" + bytes(20)
    wire.pub.sock.sendto(stun, wire.pub.relay_addr)
    wire.pub.sock.sendto(dtls, wire.pub.relay_addr)
    packets, _, _ = wire.tick()
    assert wire.pub.protocol.received == [stun, dtls]
    assert packets == []


async def test_a_packet_that_does_not_authenticate_is_dropped(wire: Wire) -> None:
    forged = bytearray(wire.pub.tx.protect(rtp(1, 0, vp8_payload(1, 1, start=True, key=True))))
    forged[-1] ^= 0xFF
    wire.pub.sock.sendto(bytes(forged), wire.pub.relay_addr)
    packets, _, _ = wire.tick()
    assert packets == [] and wire.engine.auth_failures == 1


async def test_feedback_from_the_subscriber(wire: Wire) -> None:
    send_keyframe(wire, 1000, 90000, 77)
    packets, _, _ = wire.tick(1.0)
    lost = packets[1]

    wire.sub.send(build_nack(0x77, 0x5151, [lost.seq]))
    wire.sub.send(build_pli(0x77, 0x5151))
    wire.sub.send(build_remb(0x77, 300_000, [0x5151]))
    packets, _, upstream = wire.tick(1.0)
    (rtx,) = packets
    assert (rtx.pt, rtx.ssrc) == (101, 0x5252) and rtx.payload[:2] == lost.seq.to_bytes(2, "big")
    assert any(p.packet_type == RTCP_PSFB and p.fmt == FB_PLI and p.media == 0x1111 for p in upstream)
    rembs = [remb_bitrate(p.body) for p in upstream if p.packet_type == RTCP_PSFB and p.fmt == FB_REMB]
    assert rembs and rembs[-1] is not None and rembs[-1][1] == [0x1111]
    assert abs(rembs[-1][0] - 300_000) < 3000


async def test_sender_reports_reach_the_subscriber_on_its_leg(wire: Wire) -> None:
    send_keyframe(wire, 1000, 90000, 77)
    packets, _, _ = wire.tick()
    wire.pub.send(build_sr(0x1111, (3_900_000_000 << 32) | 5, 90000 + 3000, 3, 300))
    _, rtcp, _ = wire.tick()
    (sr,) = [p for p in rtcp if p.packet_type == RTCP_SR]
    assert sr.sender == 0x5151
    assert int.from_bytes(sr.body[8:12], "big") == (packets[0].ts + 3000) & 0xFFFFFFFF


async def test_the_relay_nacks_video_loss_upstream_and_reports_reception(wire: Wire) -> None:
    send_keyframe(wire, 1000, 90000, 77)
    wire.tick()
    wire.pub.send(rtp(1005, 93000, vp8_payload(78, 1, start=True, key=False), marker=True))  # 1003, 1004 lost
    wire.tick()
    _, _, upstream = wire.tick(0.05)
    nacks = [p for p in upstream if p.packet_type == RTCP_RTPFB and p.fmt == FB_NACK]
    assert nacks and nacks[0].media == 0x1111
    _, _, upstream = wire.tick(1.5)
    reports = [p for p in upstream if p.packet_type == 201]
    assert reports, "receiver reports go to the publisher (loss, RTT)"


async def test_media_follows_the_candidate_pair_the_peer_switched_to(wire: Wire) -> None:
    send_keyframe(wire, 1000, 90000, 77)
    wire.tick()
    first = set(wire.sub.came_from)
    wire.sub.relay_addr = wire.sub._relay_socks[1].getsockname()  # the browser selected another pair
    wire.sub.send(build_pli(0x77, 0x5151))
    wire.tick()
    wire.sub.came_from.clear()
    send_keyframe(wire, 1003, 93000, 78)
    packets, _, _ = wire.tick(1.0)
    assert packets and wire.sub.came_from == {wire.sub._relay_socks[1].getsockname()} != first
    assert wire.sub.conn.switches == 1
