"""Where a forwarded packet's microseconds go: the relay's per-packet path against its floors.

Runs in one process, no WebRTC: a publisher socket sends N protected VP8 packets to a bound
``MediaConnection``, one ``engine.tick()`` forwards them to one leg, the subscriber socket drains them.
Beside it, the floors no Python design avoids: ``recvfrom_into`` + ``sendto`` of the same packets on
plain sockets, and libsrtp's unprotect + protect (AEAD_AES_128_GCM) in place. What is left is the
interpreter running the relay's own code: what a native forwarding loop would remove.

    python -m bench.packet_profile [--packets 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pylibsrtp import Policy, Session  # noqa: E402

from server.media.connection import Codec, MediaConnection, MediaPath, Port, RtpParams  # noqa: E402
from server.media.engine import MediaEngine  # noqa: E402
from server.media.rtp import HEADER, URI_ABS_SEND_TIME, URI_MID  # noqa: E402
from server.media.srtp import PacketBuffer  # noqa: E402
from server.media.streams import Leg, Source  # noqa: E402

GCM = Policy.SRTP_PROFILE_AEAD_AES_128_GCM
BATCH = 200


def _session(key: bytes, direction: int) -> Session:
    policy = Policy(key=key, ssrc_type=direction, srtp_profile=GCM)
    policy.allow_repeat_tx = True
    return Session(policy)


def _udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return s


class _Proto:
    def datagram_received(self, data: bytes, addr: Any) -> None:
        pass


class _Transport:
    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False


class _Clock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


def _payload(i: int) -> bytes:
    start = i % 2 == 0
    descriptor = bytes([0x90 if start else 0x80, 0x80, 0x80 | ((i >> 8) & 0x7F), i & 0xFF])
    return descriptor + (b"\x10" if i % 60 == 0 else b"\x11") + bytes(1100)


def cpu() -> float:
    return time.process_time()


async def relay_path(n: int) -> float:
    engine = MediaEngine(_Clock())
    up, down = os.urandom(28), os.urandom(28)
    pub, relay_in, relay_out, sub = _udp(), _udp(), _udp(), _udp()
    pub_tx = _session(up, Policy.SSRC_ANY_OUTBOUND)
    sub_rx = _session(down, Policy.SSRC_ANY_INBOUND)
    conn_in, conn_out = MediaConnection(engine, "pub"), MediaConnection(engine, "sub")
    conn_in.bind(MediaPath([Port(relay_in, _Proto(), _Transport())], 0, pub.getsockname(),
                           _session(up, Policy.SSRC_ANY_INBOUND), _session(os.urandom(28), Policy.SSRC_ANY_OUTBOUND)))
    out_rx, out_tx = _session(os.urandom(28), Policy.SSRC_ANY_INBOUND), _session(down, Policy.SSRC_ANY_OUTBOUND)
    conn_out.bind(MediaPath([Port(relay_out, _Proto(), _Transport())], 0, sub.getsockname(), out_rx, out_tx))
    source = Source("pub", "video", "VP8", engine)
    conn_in.add_source(source, RtpParams([Codec(96, "vp8"), Codec(97, "rtx", apt=96)], {URI_MID: 1}, "0"))
    leg = Leg("video", "sub", engine)
    leg.attach(source)
    conn_out.add_leg(leg, RtpParams([Codec(100, "vp8"), Codec(101, "rtx", apt=100)],
                                    {URI_MID: 4, URI_ABS_SEND_TIME: 5}, "3"), 0x5151, 0x5252)
    packets = [pub_tx.protect(HEADER.pack(0x80, (0x80 if i % 2 else 0) | 96, i & 0xFFFF, 3000 * (i // 2), 0x1111)
                              + _payload(i)) for i in range(n)]
    spent = 0.0
    for start in range(0, n, BATCH):
        for data in packets[start : start + BATCH]:
            pub.sendto(data, relay_in.getsockname())
        t0 = cpu()
        engine.tick()
        spent += cpu() - t0
        while True:
            try:
                sub_rx.unprotect(sub.recv(2048))
            except BlockingIOError:
                break
    assert engine.packets_out >= n * 0.99, engine.stats()
    for c in (conn_in, conn_out):
        c.unbind()
    await engine.close()
    return 1e6 * spent / engine.packets_out


def syscalls(n: int) -> float:
    a, b, c = _udp(), _udp(), _udp()
    data = bytes(1200)
    buf = memoryview(bytearray(2048))
    spent = 0.0
    for _ in range(0, n, BATCH):
        for _ in range(BATCH):
            a.sendto(data, b.getsockname())
        t0 = cpu()
        for _ in range(BATCH):
            m, _addr = b.recvfrom_into(buf)
            b.sendto(buf[:m], c.getsockname())
        spent += cpu() - t0
        while True:
            try:
                c.recv(2048)
            except BlockingIOError:
                break
    return 1e6 * spent / n


def srtp(n: int) -> float:
    key = os.urandom(28)
    tx, rx, tx2 = (_session(key, Policy.SSRC_ANY_OUTBOUND), _session(key, Policy.SSRC_ANY_INBOUND),
                   _session(os.urandom(28), Policy.SSRC_ANY_OUTBOUND))
    packets = [tx.protect(HEADER.pack(0x80, 96, i & 0xFFFF, i, 1) + bytes(1100)) for i in range(n)]
    buf = PacketBuffer()
    t0 = cpu()
    for data in packets:
        buf.view[: len(data)] = data
        m = buf.unprotect(rx, len(data))
        buf.protect(tx2, m)
    return 1e6 * (cpu() - t0) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packets", type=int, default=20000)
    args = parser.parse_args()
    relay = asyncio.run(relay_path(args.packets))
    io, crypto = syscalls(args.packets), srtp(args.packets)
    print(json.dumps({
        "relay_per_packet_us": round(relay, 2), "recvfrom_into_sendto_us": round(io, 2),
        "srtp_unprotect_protect_us": round(crypto, 2), "python_rest_us": round(relay - io - crypto, 2),
    }))


if __name__ == "__main__":
    main()
