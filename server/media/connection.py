"""One participant's media path once DTLS is up: its socket, its SRTP sessions, its sources and legs.

``bind`` takes the connection's ICE sockets and the SRTP sessions aiortc keyed from DTLS (see
``hook.media_path``); from then on the engine reads those sockets on its ticks. Each datagram is
classified by its first byte (RFC 7983): SRTP/SRTCP is unprotected once in the engine's receive
buffer and dispatched; anything else (STUN consent checks, DTLS, SCTP data channels) goes back to
aioice unchanged. Incoming RTX is unwrapped here (RFC 4588 4), and padding-only probes are dropped.

Every local candidate's socket is read, not only the nominated pair's: a browser may switch its
selected pair after nomination, and media then arrives elsewhere. The relay sends where the last
authenticated packet came from (latching; SRTP authentication makes that safe). A candidate whose
transport is not a plain socket (a TURN allocation) is read through aioice's datagram callback, its
packets queued for the next batch.
"""

from __future__ import annotations

import contextlib
import logging
import random
import socket
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from server.media.engine import MediaEngine
from server.media.rtp import (
    FB_FIR,
    FB_NACK,
    FB_PLI,
    FB_REMB,
    HEADER,
    RTCP_PSFB,
    RTCP_RTPFB,
    RTCP_SR,
    URI_AUDIO_LEVEL,
    extension_layout,
    fir_ssrcs,
    is_rtcp,
    nack_sequence_numbers,
    one_byte_extension,
    parse_rtcp,
    remb_bitrate,
    sender_info,
)
from server.media.srtp import protect_rtcp, unprotect_rtcp
from server.media.streams import Leg, Source

log = logging.getLogger(__name__)



class Port(NamedTuple):
    """One local ICE candidate of the connection."""

    sock: socket.socket | None  # None: not a plain socket (TURN), read through the protocol's callback
    protocol: Any  # aioice StunProtocol: datagram_received(data, addr) for STUN and DTLS
    transport: Any  # its asyncio datagram transport (paused while the engine reads the socket)


class MediaPath(NamedTuple):
    """What aiortc/aioice hold for one connection, as ``hook.media_path`` finds it."""

    ports: list[Port]
    nominated: int  # index in ``ports`` of the nominated pair's local candidate
    addr: tuple[str, int]  # the nominated pair's remote address
    rx: Any  # pylibsrtp.Session, inbound
    tx: Any  # pylibsrtp.Session, outbound


@dataclass(frozen=True)
class Codec:
    payload_type: int
    name: str  # mime subtype, lower case: "vp8", "opus", "rtx"
    apt: int | None = None  # RTX: the payload type it repairs
    nack: bool = False  # generic NACK negotiated (RFC 4585 4.2)


@dataclass(frozen=True)
class RtpParams:
    """The negotiated parameters of one m-line (aiortc's, reduced to what forwarding needs)."""

    codecs: list[Codec]
    extensions: dict[str, int] = field(default_factory=dict)  # uri -> id
    mid: str | None = None


class MediaConnection:
    """Sources received from and legs sent to one peer connection, on one socket."""

    def __init__(self, engine: MediaEngine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.tx = engine.tx.view
        self.rtcp_ssrc = random.getrandbits(32)
        self.path: MediaPath | None = None
        self._fds: dict[int, Port] = {}
        self._callbacks: list[Port] = []
        self._out: Port | None = None  # where packets go: the port and address media last came from
        self._addr: tuple[str, int] = ("", 0)
        self._pending: list[tuple[Port, bytes, tuple[str, int]]] = []
        self.switches = 0
        self._routes: dict[int, tuple[Source, bool]] = {}  # payload type -> (source, is RTX)
        self._sources: list[Source] = []
        self._legs: dict[int, Leg] = {}  # leg SSRC and RTX SSRC -> leg
        self._level_id = 0
        self.padding_dropped = 0
        self.unknown_payload = 0

    def __repr__(self) -> str:
        return f"<MediaConnection {self.name}>"

    # -- set-up -----------------------------------------------------------------------------------

    def bind(self, path: MediaPath) -> None:
        """Take over reading the sockets: asyncio stops, the engine reads on its ticks."""
        if self.path is not None:
            return
        self.path = path
        self._out, self._addr = path.ports[path.nominated], path.addr
        for port in path.ports:
            if port.sock is not None:
                with contextlib.suppress(OSError):
                    port.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                port.transport.pause_reading()
                fd = port.sock.fileno()
                self._fds[fd] = port
                self.engine.register(self, fd)
            else:
                self._callbacks.append(port)
                port.protocol.datagram_received = self._callback(port)

    def _callback(self, port: Port) -> Any:
        original = type(port.protocol).datagram_received.__get__(port.protocol)

        def received(data: bytes, addr: tuple[str, int]) -> None:
            if data and 127 < data[0] < 192:
                self._pending.append((port, data, addr))
                self.engine.pending(self)
            else:
                original(data, addr)

        return received

    def unbind(self) -> None:
        path, self.path = self.path, None
        if path is None:
            return
        for fd, port in self._fds.items():
            self.engine.unregister(fd)
            if not port.transport.is_closing():
                port.transport.resume_reading()
        for port in self._callbacks:
            port.protocol.__dict__.pop("datagram_received", None)
        self._fds.clear()
        self._callbacks.clear()
        self._pending.clear()
        self._out = None

    @property
    def bound(self) -> bool:
        return self.path is not None

    def add_source(self, source: Source, params: RtpParams) -> None:
        """Route a publisher m-line's payload types (media and RTX) to ``source``."""
        if source not in self._sources:
            self._sources.append(source)
        self.route(source, params)
        source.upstream = self

    def route(self, source: Source, params: RtpParams) -> None:
        """(Re)learn payload types: browsers renumber them after the relay's own offer.

        The old numbers are kept too: packets sent before the browser applied the answer still use them.
        """
        media = [c for c in params.codecs if c.name != "rtx"]
        if not media:
            return
        main = media[0]
        for codec in params.codecs:
            if codec.name == "rtx":
                if codec.apt == main.payload_type:
                    self._routes[codec.payload_type] = (source, True)
            elif codec.name == main.name:
                self._routes[codec.payload_type] = (source, False)
        source.nack_allowed = main.nack  # audio NACK only where negotiated: a dropped packet resent plainly
        level = params.extensions.get(URI_AUDIO_LEVEL)  # would be refused as a replay
        if level and source.kind == "audio":
            self._level_id = level

    def remove_source(self, source: Source) -> None:
        if source in self._sources:
            self._sources.remove(source)
        for pt in [pt for pt, (s, _) in self._routes.items() if s is source]:
            del self._routes[pt]
        self.engine.forget(source)

    def add_leg(self, leg: Leg, params: RtpParams, ssrc: int, rtx_ssrc: int) -> None:
        """A leg's m-line is negotiated and DTLS is up: its header extensions are *this* connection's."""
        media = [c for c in params.codecs if c.name != "rtx"]
        if not media:
            return
        pt = media[0].payload_type
        rtx = next((c.payload_type for c in params.codecs if c.name == "rtx" and c.apt == pt), None)
        layout = extension_layout(params.mid, params.extensions, leg.kind)
        self._legs[ssrc] = leg
        if rtx is not None:
            self._legs[rtx_ssrc] = leg
        leg.connect(self, mid=params.mid, ssrc=ssrc, rtx_ssrc=rtx_ssrc, pt=pt, rtx_pt=rtx, ext_block=layout.block,
                    ast_at=layout.abs_send_time, level_at=layout.audio_level)

    def remove_leg(self, leg: Leg) -> None:
        for ssrc in [s for s, x in self._legs.items() if x is leg]:
            del self._legs[ssrc]

    # -- receiving (on the engine's ticks) -----------------------------------------------------------

    def drain(self, fd: int) -> None:
        """One datagram from a socket epoll reported readable (the engine asks again for more)."""
        port = self._fds.get(fd)
        if port is None or port.sock is None:
            return
        view = self.engine.rx.view
        try:
            n, addr = port.sock.recvfrom_into(view)
        except BlockingIOError:
            return
        except OSError:
            log.info("%s: socket gone", self)
            self.unbind()
            return
        if n >= 12 and 127 < view[0] < 192:
            self.engine.packets_in += 1
            ok = self._rtcp(bytes(view[:n])) if is_rtcp(view[1]) else self._rtp(n)
            if ok and (addr != self._addr or port is not self._out):
                self._latch(port, addr)
        else:
            port.protocol.datagram_received(bytes(view[:n]), addr)

    def drain_pending(self) -> None:
        """Packets queued by a callback port (TURN): processed in the batch like the others."""
        pending, self._pending = self._pending, []
        view = self.engine.rx.view
        for port, data, addr in pending:
            n = len(data)
            if n < 12 or n > len(view) or self.path is None:
                continue
            self.engine.packets_in += 1
            view[:n] = data
            ok = self._rtcp(data) if is_rtcp(data[1]) else self._rtp(n)
            if ok and (addr != self._addr or port is not self._out):
                self._latch(port, addr)

    def _latch(self, port: Port, addr: tuple[str, int]) -> None:
        """Media now comes from another candidate pair: answer there (the peer switched its selected pair)."""
        self._out, self._addr = port, addr
        self.switches += 1
        log.info("%s: media path moved to %s", self, addr)

    def _rtp(self, n: int) -> bool:
        """One SRTP packet in the receive buffer; True when it authenticated."""
        path = self.path
        assert path is not None  # noqa: S101  (drain checked)
        rx = self.engine.rx
        n = rx.unprotect(path.rx, n)
        if n < 0:
            self.engine.auth_failures += 1
            return False
        view = rx.view
        b0, b1, seq, ts, ssrc = HEADER.unpack_from(view, 0)
        route = self._routes.get(b1 & 0x7F)
        if route is None:
            self.unknown_payload += 1
            return True
        source, rtx = route
        off = 12 + 4 * (b0 & 0x0F)
        level = -1
        if b0 & 0x10:
            if n < off + 4:
                return True
            start = off + 4
            off = start + 4 * ((view[off + 2] << 8) | view[off + 3])
            if self._level_id and source.kind == "audio" and view[start - 4] == 0xBE and view[start - 3] == 0xDE:
                level = one_byte_extension(view, start, min(off, n), self._level_id)
        end = n - view[n - 1] if b0 & 0x20 else n
        if rtx:
            if end - off < 2:
                self.padding_dropped += 1  # a bandwidth probe, not media
                return True
            seq = (view[off] << 8) | view[off + 1]
            off += 2
            ssrc = source.ssrc or ssrc
        if end >= off:
            source.on_packet(bytes(view[off:end]), seq, ts, b1 & 0x80, ssrc, level, rtx)
        return True

    def _rtcp(self, data: bytes) -> bool:
        path = self.path
        assert path is not None  # noqa: S101  (drain checked)
        plain = unprotect_rtcp(path.rx, data)
        if plain is None:
            self.engine.auth_failures += 1
            return False
        legs = self._legs
        for p in parse_rtcp(plain):
            if p.packet_type == RTCP_SR:
                info = sender_info(p.body)
                source = next((s for s in self._sources if s.ssrc == p.sender), None)
                if info is not None and source is not None:
                    source.on_sr(*info)
            elif p.packet_type == RTCP_RTPFB and p.fmt == FB_NACK:
                leg = legs.get(p.media)
                if leg is not None:
                    leg.on_nack(nack_sequence_numbers(p.body))
            elif p.packet_type == RTCP_PSFB:
                if p.fmt == FB_PLI:
                    leg = legs.get(p.media)
                    if leg is not None:
                        leg.on_keyframe_request()
                elif p.fmt == FB_FIR:
                    for ssrc in fir_ssrcs(p.body):
                        if (leg := legs.get(ssrc)) is not None:
                            leg.on_keyframe_request()
                elif p.fmt == FB_REMB:
                    remb = remb_bitrate(p.body)
                    if remb is not None:
                        for ssrc in remb[1]:
                            if (leg := legs.get(ssrc)) is not None:
                                leg.on_remb(remb[0])
        return True

    # -- sending (streams.Upstream / Downstream) --------------------------------------------------------

    def send_rtp(self, length: int) -> bool:
        path, port = self.path, self._out
        if path is None or port is None:
            return False
        engine = self.engine
        try:
            n = engine.tx.protect(path.tx, length)
            if port.sock is not None:
                port.sock.sendto(engine.tx.view[:n], self._addr)
            else:
                port.transport.sendto(bytes(engine.tx.view[:n]), self._addr)
        except BlockingIOError:
            engine.send_blocked += 1
            return False
        except OSError:
            return False
        except Exception:  # noqa: BLE001 - an SRTP error on one packet: count it, keep forwarding
            engine.tick_errors += 1
            return False
        engine.packets_out += 1
        return True

    def send_rtcp(self, packet: bytes) -> None:
        path, port = self.path, self._out
        if path is None or port is None:
            return
        try:
            data = protect_rtcp(path.tx, packet)
            if port.sock is not None:
                port.sock.sendto(data, self._addr)
            else:
                port.transport.sendto(data, self._addr)
        except OSError:
            self.engine.send_blocked += 1
        except Exception:  # noqa: BLE001 - as above
            self.engine.tick_errors += 1

    def report(self, now: float) -> None:
        for source in self._sources:
            source.report(now)
