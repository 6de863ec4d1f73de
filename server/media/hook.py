"""The one place where the relay reaches into aiortc's (and aioice's) internals.

Tested on aiortc==1.16.0 (pinned in pyproject.toml). Anything here may break on another aiortc
release; the tests in tests/media/ exercise every hook.

aiortc stays in charge of what it does well: SDP offer/answer, ICE, DTLS and the data channels. The
media itself bypasses it (see ``server/media/engine.py``):

* ``take_receiver``/``take_sender``: aiortc calls ``receiver.receive(params)`` and
  ``sender.send(params)`` once DTLS is up for an m-line; for a relay connection these hand the
  negotiated parameters to the relay instead of starting aiortc's RTP/RTCP tasks, decoder thread or
  encoder. No aiortc receiver or sender of the relay ever runs.
* ``media_path``: the socket and remote address of the ICE pair aioice nominated, and the SRTP
  sessions aiortc's DTLS transport keyed.
* ``prefer_gcm``: the relay answers as the DTLS server with AEAD_AES_128_GCM first, so that profile
  is used whenever the browser offers it (libsrtp's GCM is ~2.4x cheaper than AES-CM + HMAC-SHA1).
* Counters: ``get_decoder``/``get_encoder`` are wrapped to count instances, so tests can assert the
  relay never decodes nor encodes.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender, rtcdtlstransport, rtcrtpreceiver, rtcrtpsender
from aiortc.exceptions import InvalidStateError

from server.media.connection import Codec, MediaPath, Port, RtpParams

AIORTC_TESTED_VERSION = "1.16.0"

log = logging.getLogger(__name__)


@dataclass
class CodecCounters:
    """Codec instances aiortc created: by the relay's own peer connections (must stay 0) and in all."""

    decoders: int = 0
    encoders: int = 0
    all_decoders: int = 0
    all_encoders: int = 0
    relay_track_queues: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet)


_lock = threading.Lock()
_in_relay: contextvars.ContextVar[bool] = contextvars.ContextVar("duet_relay", default=False)
_thread_state = threading.local()


@contextmanager
def relay_context() -> Iterator[None]:
    """Mark aiortc work started inside as the relay's: tasks it spawns inherit the mark."""
    token = _in_relay.set(True)
    try:
        yield
    finally:
        _in_relay.reset(token)


def install() -> CodecCounters:
    """Patch aiortc's codec factory once per process; return the counters.

    aiortc's factory is a module global, so the counters are process-wide too;
    peers that are not relayed (e.g. test clients) still decode and are counted.
    """
    with _lock:
        existing = getattr(rtcrtpreceiver, "_duet_counters", None)
        if isinstance(existing, CodecCounters):
            return existing
        if aiortc.__version__ != AIORTC_TESTED_VERSION:
            log.error(
                "server.media.hook is tested on aiortc %s, found %s: run tests/media before trusting it",
                AIORTC_TESTED_VERSION,
                aiortc.__version__,
            )
        counters = CodecCounters()
        original_decoder = rtcrtpreceiver.get_decoder
        original_encoder = rtcrtpsender.get_encoder
        original_worker = rtcrtpreceiver.decoder_worker

        def counting_get_decoder(codec: Any) -> Any:
            counters.all_decoders += 1
            if getattr(_thread_state, "relay", False):
                counters.decoders += 1
            return original_decoder(codec)

        def counting_get_encoder(codec: Any) -> Any:
            counters.all_encoders += 1
            if _in_relay.get():
                counters.encoders += 1
            return original_encoder(codec)

        def worker(loop: Any, input_q: Any, output_q: Any, decode_error: Any) -> None:
            _thread_state.relay = output_q in counters.relay_track_queues
            original_worker(loop, input_q, output_q, decode_error)

        rtcrtpreceiver.get_decoder = counting_get_decoder
        rtcrtpsender.get_encoder = counting_get_encoder
        rtcrtpreceiver.decoder_worker = worker
        rtcrtpreceiver._duet_counters = counters  # type: ignore[attr-defined]
        return counters


def mark_relay_receiver(receiver: RTCRtpReceiver, counters: CodecCounters) -> None:
    """Remember that a decoder made for this receiver would be the relay's (it must never be made)."""
    track = receiver._track
    if track is not None:
        counters.relay_track_queues.add(track._queue)


# -- negotiated parameters ---------------------------------------------------------------------------


def _params(parameters: Any) -> RtpParams:
    codecs = []
    for c in parameters.codecs:
        name = str(c.mimeType).split("/", 1)[-1].lower()
        apt = c.parameters.get("apt") if name == "rtx" else None
        nack = any(fb.type == "nack" and not fb.parameter for fb in (c.rtcpFeedback or []))
        codecs.append(Codec(int(c.payloadType), name, int(apt) if apt is not None else None, nack))
    extensions = {str(e.uri): int(e.id) for e in parameters.headerExtensions}
    return RtpParams(codecs, extensions, parameters.muxId)


def transceiver_params(transceiver: Any) -> RtpParams:
    """The m-line's parameters as negotiated now (after a renegotiation, with the new payload types)."""

    class _P:
        codecs = transceiver._codecs
        headerExtensions = transceiver._headerExtensions  # noqa: N815 - aiortc's name
        muxId = transceiver.mid  # noqa: N815 - aiortc's name

    return _params(_P)


def take_receiver(receiver: RTCRtpReceiver, on_params: Callable[[RtpParams], None]) -> None:
    """When aiortc would start this receiver, give the relay its parameters instead."""
    done = False

    async def receive(parameters: Any) -> None:
        nonlocal done
        if not done:
            done = True
            on_params(_params(parameters))

    receiver.receive = receive  # type: ignore[method-assign]


def take_sender(sender: RTCRtpSender, on_params: Callable[[RtpParams, int, int], None]) -> None:
    """When aiortc would start this sender, give the relay its parameters (and SSRCs) instead."""
    done = False

    async def send(parameters: Any) -> None:
        nonlocal done
        if not done:
            done = True
            on_params(_params(parameters), int(sender._ssrc), int(sender._rtx_ssrc))

    sender.send = send  # type: ignore[method-assign]


def release(pc: Any) -> None:
    """Drop the relay's callbacks from aiortc objects, so a departed participant is freed by refcount."""
    for transceiver in pc.getTransceivers():
        for obj, name in ((transceiver.receiver, "receive"), (transceiver.sender, "send")):
            obj.__dict__.pop(name, None)
    pc.remove_all_listeners()


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The msid stream id the browser sees for a leg (we use the publisher's participant id)."""
    sender._stream_id = stream_id


# -- transport -------------------------------------------------------------------------------------


def _dtls(pc: Any) -> Any:
    for transceiver in pc.getTransceivers():
        return transceiver.receiver.transport
    return None


def media_path(pc: Any) -> MediaPath | None:
    """The connection's local candidates (sockets), the nominated pair and the DTLS-keyed SRTP sessions."""
    dtls = _dtls(pc)
    if dtls is None or dtls._rx_srtp is None or dtls._tx_srtp is None:
        return None
    connection = dtls.transport._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    ports: list[Port] = []
    nominated = -1
    for protocol in connection._protocols:
        transport = getattr(protocol, "transport", None)
        if transport is None or transport.is_closing():
            continue
        if protocol is pair.protocol:
            nominated = len(ports)
        # the real socket (get_extra_info gives asyncio's wrapper without recvfrom_into); TURN has none
        sock = getattr(transport, "_sock", None)
        ports.append(Port(sock if hasattr(sock, "recvfrom_into") else None, protocol, transport))
    if nominated < 0:
        return None
    return MediaPath(ports, nominated, tuple(pair.remote_addr), dtls._rx_srtp, dtls._tx_srtp)


PREFERRED_PROFILES = ("SRTP_AEAD_AES_128_GCM", "SRTP_AEAD_AES_256_GCM", "SRTP_AES128_CM_SHA1_80")


def prefer_gcm(pc: Any) -> None:
    """AEAD_AES_128_GCM first, and be the DTLS server (whose order wins) when the offer leaves it to us.

    Call after the remote offer is applied and before the answer is made.
    """
    by_name = {p.openssl_profile.decode(): p for p in rtcdtlstransport.SRTP_PROFILES}
    ordered = [by_name[n] for n in PREFERRED_PROFILES if n in by_name]
    transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    for dtls in transports:
        if dtls.state == "new":
            dtls._srtp_profiles = ordered
            if dtls._role == "auto":
                dtls._set_role("server")


def srtp_profile(pc: Any) -> str | None:
    """The SRTP protection profile DTLS negotiated (RFC 5764 4.1.2), e.g. 'SRTP_AEAD_AES_128_GCM'."""
    dtls = _dtls(pc)
    if dtls is None or dtls._ssl is None:
        return None
    try:
        name = dtls._ssl.get_selected_srtp_profile()
    except Exception:  # noqa: BLE001 - not negotiated yet
        return None
    return name.decode() if name else None


# -- codecs and negotiation --------------------------------------------------------------------------


def prefer_vp8(transceiver: Any) -> bool:
    """Put VP8 first among a publisher's negotiated video codecs, before the answer is made.

    Returns False when the browser offered no VP8 (the relay forwards VP8 only).
    """
    codecs = list(transceiver._codecs)
    vp8 = [c for c in codecs if c.mimeType.lower() == "video/vp8"]
    if not vp8:
        return False
    pt = vp8[0].payloadType
    rtx = [c for c in codecs if c.mimeType.lower() == "video/rtx" and c.parameters.get("apt") == pt]
    transceiver._codecs = [vp8[0], *rtx]
    return True


def negotiated_codec(transceiver: Any) -> str:
    """The mime subtype (e.g. 'VP8', 'opus') the transceiver negotiated first."""
    codecs = transceiver._codecs
    return str(codecs[0].name) if codecs else ""


async def start_negotiated_media(pc: Any) -> None:
    """Re-run the peer connection's connect step, starting m-lines negotiated meanwhile.

    aiortc starts a transceiver's sender only if DTLS is already 'connected' when
    the description is applied; an m-line the server added while the first DTLS
    handshake was still running would otherwise never send. The connection may
    close meanwhile (aiortc then raises InvalidStateError or ConnectionError): that
    is not an error of ours, and it is retrieved here rather than left in the task.
    """
    try:
        await pc._RTCPeerConnection__connect()
    except (InvalidStateError, ConnectionError, asyncio.InvalidStateError) as exc:
        log.debug("connect step after close: %s", exc)
