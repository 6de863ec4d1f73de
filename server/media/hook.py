"""The one place where the relay reaches into aiortc's internals.

Tested on aiortc==1.16.0 (pinned in pyproject.toml). Anything here may break on
another aiortc release; the tests in tests/media/ exercise every hook.

What is hooked, and why:

* Receiver side: ``RTCRtpReceiver._handle_rtp_packet`` depayloads each packet and
  hands it to ``self.__jitter_buffer.add()``; complete frames go to
  ``self.__decoder_queue`` which a decoder thread drains. We swap the jitter
  buffer for an assembler that releases a VP8 frame as soon as its marker-bit
  packet completes it without a gap (aiortc's waits for the next frame's first
  packet: +34 ms per hop), and swap the decoder queue for a stand-in that the
  (patched) decoder worker recognises and leaves at once: no decoder is created.
  This must happen before ``receive()`` starts, i.e. in the ``track`` event.
* Sender side: ``RTCRtpSender._next_encoded_frame`` calls ``encoder.pack(data)``
  for anything that is not an ``av.Frame``. We give the sender a ``Packer`` as
  its encoder before it starts, so ``get_encoder`` is never called; the packer
  also receives REMB (the sender sets ``encoder.target_bitrate``). PLI/FIR on
  a leg call ``sender._send_keyframe()``, which we replace per instance.
* Counters: ``get_decoder``/``get_encoder`` as imported by the receiver and
  sender modules are wrapped to count instances, so tests can assert the relay
  never decodes nor encodes.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender, rtcrtpreceiver, rtcrtpsender
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci

AIORTC_TESTED_VERSION = "1.16.0"

log = logging.getLogger(__name__)

_RECEIVER = "_RTCRtpReceiver__"
_SENDER = "_RTCRtpSender__"


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


def mark_relay_receiver(receiver: RTCRtpReceiver, counters: CodecCounters) -> None:
    """Remember that a decoder made for this receiver would be the relay's."""
    track = receiver._track
    if track is not None:
        counters.relay_track_queues.add(track._queue)


def install() -> CodecCounters:
    """Patch aiortc's codec factory and decoder worker once per process; return the counters.

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
            if isinstance(input_q, FrameSink):
                return  # relayed track: nothing to decode, the thread ends at once
            _thread_state.relay = output_q in counters.relay_track_queues
            original_worker(loop, input_q, output_q, decode_error)

        rtcrtpreceiver.get_decoder = counting_get_decoder
        rtcrtpsender.get_encoder = counting_get_encoder
        rtcrtpreceiver.decoder_worker = worker
        rtcrtpreceiver._duet_counters = counters  # type: ignore[attr-defined]
        return counters


class PacketAssembler(Protocol):
    """Takes the receiver's depayloaded packets (``packet._data``) and emits frames itself."""

    def add(self, packet: RtpPacket) -> bool:
        """Take one packet; return True when a PLI should go to the publisher."""
        ...


class _JitterBufferShim:
    """Quacks like aiortc's JitterBuffer: ``add`` returns (pli_flag, frame); frames are emitted directly."""

    def __init__(self, assembler: PacketAssembler, capacity: int) -> None:
        self._assembler = assembler
        self.capacity = capacity

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        return self._assembler.add(packet), None


class FrameSink:
    """Stands in for the receiver's decoder queue; ``put(None)`` means the track ended."""

    def __init__(self, on_end: Callable[[], None]) -> None:
        self._on_end = on_end

    def put(self, item: object) -> None:
        if item is None:
            self._on_end()

    def get(self) -> None:  # never called: the patched worker returns at once
        return None


def tap_receiver(receiver: RTCRtpReceiver, assembler: PacketAssembler, on_end: Callable[[], None]) -> None:
    """Route a receiver's packets to ``assembler`` instead of the decoder. Call before ``receive()``."""
    if getattr(receiver, f"{_RECEIVER}started"):
        raise RuntimeError("tap_receiver must run before the receiver starts (in the 'track' event)")
    setattr(receiver, f"{_RECEIVER}jitter_buffer", _JitterBufferShim(assembler, 512))
    setattr(receiver, f"{_RECEIVER}decoder_queue", FrameSink(on_end))


def wrap_receiver_remb(receiver: RTCRtpReceiver, cap: Callable[[int], int], *, estimate: bool = True) -> None:
    """Make the receiver's own REMB to the publisher never exceed ``cap(own_estimate)``.

    With ``estimate=False`` the receiver's own (costly, pure Python) bandwidth
    estimator is switched off and the publisher hears only its subscribers' REMB.
    """
    estimator = getattr(receiver, f"{_RECEIVER}remote_bitrate_estimator")
    if estimator is None:
        return
    if not estimate:
        setattr(receiver, f"{_RECEIVER}remote_bitrate_estimator", None)
        return

    class _Capped:
        def add(self, **kwargs: Any) -> tuple[int, list[int]] | None:
            result = estimator.add(**kwargs)
            if result is None:
                return None
            bitrate, ssrcs = result
            return cap(bitrate), ssrcs

    setattr(receiver, f"{_RECEIVER}remote_bitrate_estimator", _Capped())


async def send_pli(receiver: RTCRtpReceiver, media_ssrc: int) -> None:
    """Ask the publisher for a keyframe (RFC 4585 6.3.1 Picture Loss Indication)."""
    await receiver._send_rtcp_pli(media_ssrc)


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, media_ssrc: int) -> None:
    """Tell the publisher the bitrate its subscribers can take (draft-alvestrand-rmcat-remb)."""
    rtcp_ssrc = getattr(receiver, f"{_RECEIVER}rtcp_ssrc")
    if rtcp_ssrc is None:
        return
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, [media_ssrc])
    )
    await receiver._send_rtcp(packet)


class Packer:
    """The sender's 'encoder' for a relayed leg: packs already encoded frames, never encodes.

    VP8 uses aiortc's own RFC 7741 packetiser (a classmethod: no encoder instance);
    each leg numbers its own picture ids, so a leg must never drop a delta frame
    without waiting for the next keyframe (the receiver could not tell).
    """

    def __init__(self, kind: str, on_remb: Callable[[int], None]) -> None:
        self.kind = kind
        self._on_remb = on_remb
        self._picture_id = 0
        self._bitrate = 0

    def pack(self, frame: Any) -> tuple[list[bytes], int]:
        data: bytes = frame.data
        if self.kind == "video":
            payloads: list[bytes] = Vp8Encoder._packetize(data, self._picture_id)
            self._picture_id = (self._picture_id + 1) % (1 << 15)
        else:
            payloads = [data]
        return payloads, int(frame.timestamp)

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise RuntimeError("the relay never encodes")

    @property
    def target_bitrate(self) -> int:
        return self._bitrate

    @target_bitrate.setter
    def target_bitrate(self, bitrate: int) -> None:
        # Called by RTCRtpSender._handle_rtcp_packet for a REMB naming this leg's SSRC.
        self._bitrate = bitrate
        self._on_remb(bitrate)


def prepare_sender(sender: RTCRtpSender, packer: Packer, on_keyframe_request: Callable[[], None]) -> None:
    """Give a leg's sender its packer and route PLI/FIR to the relay. Call before it starts."""
    setattr(sender, f"{_SENDER}encoder", packer)
    sender._send_keyframe = on_keyframe_request  # type: ignore[method-assign]


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The msid stream id the browser sees for a leg (we use the publisher's participant id)."""
    sender._stream_id = stream_id


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
    """Re-run the peer connection's connect step, starting senders/receivers negotiated meanwhile.

    aiortc starts a transceiver's sender only if DTLS is already 'connected' when
    the description is applied; an m-line the server added while the first DTLS
    handshake was still running would otherwise never send.
    """
    await pc._RTCPeerConnection__connect()


def follow_renegotiated_codecs(pc: Any) -> None:
    """Teach started receivers the payload types of a renegotiation.

    aiortc's ``createOffer`` offers its own payload type numbers on every m-line again (opus 96, VP8 97),
    so a browser whose first offer used others (Chrome: opus 111, VP8 96) switches to the new numbers
    after the answer, while an already started receiver only knows the old ones and the transport's
    router discards the packets: the browser's media stopped at the relay after its first renegotiation.
    """
    for transceiver in pc.getTransceivers():
        receiver = transceiver.receiver
        if not getattr(receiver, "_RTCRtpReceiver__started", False):
            continue
        codecs: dict[int, Any] = receiver._RTCRtpReceiver__codecs
        for codec in transceiver._codecs:
            codecs[codec.payloadType] = codec
        router = receiver.transport._rtp_router
        router.register_receiver(receiver, ssrcs=[], payload_types=[c.payloadType for c in transceiver._codecs])
