"""One participant of a room: one RTCPeerConnection, its published tracks and its legs.

Negotiation (RFC 8829): the browser offers first (its own tracks, or only a
data channel for an observer); after that the server is the only offerer. It
adds a send-only m-line per forwarded track, parks m-lines of departed
publishers as 'inactive' and reuses them, so the SDP does not grow for ever.
aiortc 1.16 has no ICE restart: a participant whose network failed rejoins
with a new peer connection (``Room.rejoin``).

aiortc negotiates; the media goes through the relay's own packet path: when
aiortc would start a receiver or sender, ``hook.take_receiver``/``take_sender``
hand its parameters to this participant's ``MediaConnection`` instead.

A participant knows its room only through ``RoomLink`` (what it may ask of the
room), so participant.py and room.py do not import each other.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc import sdp as aiortc_sdp
from aiortc.mediastreams import MediaStreamTrack

from server.clock import Clock
from server.media import hook
from server.media.connection import MediaConnection, RtpParams
from server.media.engine import MediaEngine
from server.media.errors import BadSessionDescription, NegotiationOutOfOrder, RoomClosed
from server.media.events import ConnectionStateChanged, MediaEvent, OfferReady, ParticipantLeft
from server.media.frames import Kind
from server.media.sdp import MUSIC_OPUS_PARAMS, SPEECH_OPUS_PARAMS, media_kinds, set_opus_params
from server.media.streams import Leg, Source

log = logging.getLogger(__name__)

EVENT_QUEUE = 256


def _codec_caps(kind: str) -> list[Any]:
    wanted = {"audio": ("audio/opus",), "video": ("video/vp8", "video/rtx")}[kind]
    return [c for c in RTCRtpSender.getCapabilities(kind).codecs if c.mimeType.lower() in wanted]


class RoomLink(Protocol):
    """What a participant may ask of its room (``server.media.room.Room`` implements it)."""

    id: str
    audio_only: bool
    music_mode: bool

    def sources_for(self, subscriber: Participant) -> list[Source]:
        """The sources ``subscriber`` should receive when it first connects."""
        ...

    def source_added(self, source: Source) -> None:
        """A new published track: subscribe everyone and tell them."""
        ...

    async def leave(self, participant_id: str, *, reason: str = "left") -> None: ...


class Participant:
    """A browser (or test peer) in a room. Created by ``Room.join``; do not build directly."""

    def __init__(
        self,
        room: RoomLink,
        participant_id: str,
        *,
        publish: bool,
        loopback: bool,
        configuration: RTCConfiguration,
        clock: Clock,
        engine: MediaEngine,
        counters: hook.CodecCounters,
        connect_timeout: float,
        answer_timeout: float,
    ) -> None:
        self.id = participant_id
        self.room = room
        self.publish = publish
        self.loopback = loopback
        self.sources: dict[Kind, Source] = {}
        self.legs: list[Leg] = []
        self._clock = clock
        self._engine = engine
        self.media = MediaConnection(engine, f"{room.id}/{participant_id}")
        self._receiving: list[tuple[Source, Any]] = []  # (source, transceiver) bound to the media path
        self._transceivers: dict[Leg, Any] = {}
        self._counters = counters
        self._connect_timeout = connect_timeout
        self._answer_timeout = answer_timeout
        with hook.relay_context():
            self.pc = RTCPeerConnection(configuration)
        self._lock = asyncio.Lock()
        self._events: deque[MediaEvent] = deque()
        self._events_ready = asyncio.Event()
        self._hold = 0
        self._wanted: list[Source] = []  # sources to subscribe at the next offer
        self._needs_offer = False
        self._dirty = asyncio.Event()
        self._initial_done = False
        self._offers = 0
        self._new_sources: list[Source] = []
        self._offer_error: str | None = None
        self.closed = False
        self.close_reason = ""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.pc.on("datachannel", self._on_datachannel)
        self._spawn(self._negotiate_loop())
        self._connect_task: asyncio.Task[Any] | None = self._spawn(self._connect_deadline())
        self._answer_task: asyncio.Task[Any] | None = None

    # -- tasks ---------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Every task the participant starts is its own, cancelled and awaited on close."""
        with hook.relay_context():
            task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        """Forget a finished task, and retrieve its exception so none is ever left unretrieved."""
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("participant %s: task %s failed: %r", self.id, task.get_name(), task.exception())

    # -- events ----------------------------------------------------------------

    def emit(self, event: MediaEvent) -> None:
        if self.closed and not isinstance(event, ParticipantLeft):
            return
        if len(self._events) >= EVENT_QUEUE:
            log.warning("participant %s: %d events not read; removing them", self.id, EVENT_QUEUE)
            self._spawn(self.room.leave(self.id, reason="signalling not reading events"))
            return
        self._events.append(event)
        self._events_ready.set()

    async def events(self) -> AsyncIterator[MediaEvent]:
        """Everything to tell this participant's browser, in order; ends after it left."""
        while True:
            while not self._events or self._hold:
                if self.closed and not self._events:
                    return
                self._events_ready.clear()
                await self._events_ready.wait()
            yield self._events.popleft()

    @asynccontextmanager
    async def hold_events(self) -> AsyncIterator[None]:
        """Hold back events (e.g. a renegotiation offer) until the answer you are sending has gone."""
        self._hold += 1
        try:
            yield
        finally:
            self._hold -= 1
            self._events_ready.set()

    # -- offer/answer ------------------------------------------------------------

    async def accept_offer(self, sdp: str) -> str:
        """Apply the browser's offer and return the answer SDP.

        Raises:
            BadSessionDescription: unparseable SDP, video in an audio-only room, no VP8/Opus.
            NegotiationOutOfOrder: the server's own offer is still waiting for an answer.
            RoomClosed: the participant already left.
        """
        async with self._lock:
            if self.closed:
                raise RoomClosed("You are no longer in this session.")
            if self.pc.signalingState != "stable":
                raise NegotiationOutOfOrder("Answer the server's offer before sending a new one.")
            kinds = self._check_sdp(sdp, "offer")
            if self.room.audio_only and "video" in kinds:
                raise BadSessionDescription("This is an audio-only session: offer no video.", field="sdp")
            self._offer_error = None
            self._new_sources = []
            try:
                with hook.relay_context():
                    await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                    if self._offer_error:
                        raise BadSessionDescription(self._offer_error, field="sdp")
                    hook.prefer_gcm(self.pc)
                    answer = await self.pc.createAnswer()
                    await self.pc.setLocalDescription(answer)
            except BadSessionDescription:
                self._fail_negotiation()
                raise
            except Exception as exc:  # noqa: BLE001 - aiortc raises many types for a bad description
                self._fail_negotiation()
                raise BadSessionDescription(f"The offer could not be applied: {exc}", field="sdp") from None
            first = not self._initial_done
            self._initial_done = True
            for source in self._new_sources:
                self.sources[source.kind] = source
                self.room.source_added(source)
            self._new_sources = []
            if first:
                self._wanted.extend(self.room.sources_for(self))
                self._needs_offer = self._needs_offer or bool(self._wanted)
            if self._needs_offer:
                self._dirty.set()
            return self._local_sdp()

    async def accept_answer(self, sdp: str) -> None:
        """Apply the browser's answer to the server's last ``OfferReady``."""
        async with self._lock:
            if self.closed:
                raise RoomClosed("You are no longer in this session.")
            if self.pc.signalingState != "have-local-offer":
                raise NegotiationOutOfOrder("There is no offer from the server waiting for an answer.")
            self._check_sdp(sdp, "answer")
            try:
                with hook.relay_context():
                    await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            except Exception as exc:  # noqa: BLE001 - as above
                raise BadSessionDescription(f"The answer could not be applied: {exc}", field="sdp") from None
            for source, transceiver in self._receiving:  # browsers renumber payload types after our offer
                self.media.route(source, hook.transceiver_params(transceiver))
            if self._answer_task is not None:
                self._answer_task.cancel()
                self._answer_task = None
            if self._needs_offer or self._wanted:
                self._dirty.set()

    def _check_sdp(self, sdp: str, kind: str) -> list[str]:
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise BadSessionDescription(f"The {kind} is not an SDP session description.", field="sdp")
        try:
            aiortc_sdp.SessionDescription.parse(sdp)
        except Exception as exc:  # noqa: BLE001 - the parser raises ValueError, KeyError, IndexError...
            raise BadSessionDescription(f"The {kind} SDP could not be read: {exc}", field="sdp") from None
        kinds = media_kinds(sdp)
        if not kinds:
            raise BadSessionDescription(f"The {kind} has no media section.", field="sdp")
        return kinds

    def _fail_negotiation(self) -> None:
        for source in self._new_sources:
            source.end()
        self._new_sources = []
        if not self._initial_done:
            # The half-applied first offer leaves the connection unusable: start again with join.
            self._spawn(self.room.leave(self.id, reason="negotiation failed"))

    def _local_sdp(self) -> str:
        sdp = self.pc.localDescription.sdp
        return set_opus_params(sdp, MUSIC_OPUS_PARAMS if self.room.music_mode else SPEECH_OPUS_PARAMS)

    async def _negotiate_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            async with self._lock:
                if self.closed:
                    return
                if not self._initial_done or self.pc.signalingState != "stable":
                    continue  # accept_offer/accept_answer set the flag again
                self._apply_wanted()
                if not self._needs_offer:
                    continue
                self._needs_offer = False
                offer = await self.pc.createOffer()
                await self.pc.setLocalDescription(offer)
                self._offers += 1
                self.emit(OfferReady(self.id, self._local_sdp(), self._track_map()))
                self._answer_task = self._spawn(self._answer_deadline(self._offers))

    def _apply_wanted(self) -> None:
        """Attach wanted sources to idle legs (or new send-only m-lines); idle the rest."""
        wanted, self._wanted = self._wanted, []
        for source in wanted:
            if source.ended or any(leg.source is source for leg in self.legs):
                continue
            leg = next((x for x in self.legs if x.kind == source.kind and x.source is None), None)
            if leg is None:
                leg = self._new_leg(source.kind)
            hook.set_stream_id(self._transceivers[leg].sender, source.participant_id)
            leg.attach(source)
            self._needs_offer = True
        for leg in self.legs:
            direction = "sendonly" if leg.source is not None else "inactive"
            transceiver = self._transceivers[leg]
            if transceiver.direction != direction:
                transceiver.direction = direction
                self._needs_offer = True

    def _new_leg(self, kind: Kind) -> Leg:
        leg = Leg(kind, self.id, self._engine)
        transceiver = self.pc.addTransceiver(kind, direction="sendonly")
        transceiver.setCodecPreferences(_codec_caps(kind))
        self._transceivers[leg] = transceiver

        def ready(params: RtpParams, ssrc: int, rtx_ssrc: int) -> None:
            if not self.closed and self._bind():
                self.media.add_leg(leg, params, ssrc, rtx_ssrc)

        hook.take_sender(transceiver.sender, ready)
        self.legs.append(leg)
        return leg

    def _bind(self) -> bool:
        """Put this connection on the relay's packet path (once DTLS has keyed SRTP)."""
        if not self.media.bound:
            path = hook.media_path(self.pc)
            if path is None:
                return False
            self.media.bind(path)
        return True

    def _track_map(self) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        for leg in self.legs:
            mid = self._transceivers[leg].mid
            if mid is not None:
                out[str(mid)] = {"kind": leg.kind, "publisher": leg.source.participant_id if leg.source else None}
        return out

    # -- subscriptions (called by the room) ---------------------------------------

    def subscribe(self, source: Source) -> None:
        self._wanted.append(source)
        self._needs_offer = True
        self._dirty.set()

    def source_gone(self, source: Source) -> None:
        self._wanted = [s for s in self._wanted if s is not source]
        if any(leg.source is None for leg in self.legs):
            self._needs_offer = True
            self._dirty.set()

    # -- aiortc callbacks ---------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next((t for t in self.pc.getTransceivers() if t.receiver.track is track), None)
        if transceiver is None:
            return
        receiver = transceiver.receiver
        hook.mark_relay_receiver(receiver, self._counters)
        kind: Kind = "video" if track.kind == "video" else "audio"
        taken = kind in self.sources or any(s.kind == kind for s in self._new_sources)
        if not self.publish or taken or self.closed:
            transceiver.direction = "inactive"  # observers and extra tracks are not received
            return
        if kind == "video" and not hook.prefer_vp8(transceiver):
            self._offer_error = "The relay forwards VP8 video only: offer VP8."
            transceiver.direction = "inactive"
            return
        codec = hook.negotiated_codec(transceiver)
        if kind == "audio" and codec.lower() != "opus":
            self._offer_error = "The relay forwards Opus audio only: offer Opus."
            transceiver.direction = "inactive"
            return

        source = Source(self.id, kind, codec, self._engine)

        def ready(params: RtpParams) -> None:
            if not self.closed and not source.ended and self._bind():
                self.media.add_source(source, params)
                self._receiving.append((source, transceiver))

        hook.take_receiver(receiver, ready)
        self._new_sources.append(source)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        self.emit(ConnectionStateChanged(self.id, state))
        if state == "connected" and self._connect_task is not None:
            self._connect_task.cancel()
            self._connect_task = None
        if state == "connected" and not self.closed:
            self._spawn(hook.start_negotiated_media(self.pc))
        if state in ("failed", "closed") and not self.closed:
            # aiortc closes on its own when ICE consent expires: a dead participant must not stay
            self._spawn(self.room.leave(self.id, reason="connection failed" if state == "failed" else
                                        "connection closed"))

    def _on_datachannel(self, channel: Any) -> None:
        """Echo for RTT probes: every channel in loopback mode, or one labelled 'echo'."""
        if not (self.loopback or channel.label == "echo"):
            return

        def echo(message: str | bytes) -> None:
            if channel.readyState == "open":
                channel.send(message)

        channel.on("message", echo)

    # -- deadlines ----------------------------------------------------------------

    async def _connect_deadline(self) -> None:
        await self._clock.sleep(self._connect_timeout)
        if not self.closed and self.pc.connectionState != "connected":
            self._spawn(self.room.leave(self.id, reason="did not connect"))

    async def _answer_deadline(self, offer_no: int) -> None:
        await self._clock.sleep(self._answer_timeout)
        if not self.closed and self._offers == offer_no and self.pc.signalingState == "have-local-offer":
            self._spawn(self.room.leave(self.id, reason="no answer to the server's offer"))

    # -- state --------------------------------------------------------------------

    def set_muted(self, kind: Kind, muted: bool) -> bool:
        source = self.sources.get(kind)
        if source is None or source.muted == muted:
            return False
        source.muted = muted
        if not muted:
            for leg in source.legs:
                leg.restart()
        return True

    async def close(self, reason: str) -> None:
        """Stop everything this participant owns: legs, sources, tasks, the peer connection."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        for source in [*self.sources.values(), *self._new_sources]:
            self.media.remove_source(source)
            source.end()
        for leg in self.legs:
            self.media.remove_leg(leg)
            leg.close()
        self.media.unbind()  # before aioice closes the socket
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hook.release(self.pc)  # no callback of ours stays on aiortc objects: freed without the cycle collector
        await self.pc.close()
        self._receiving.clear()
        self._transceivers.clear()
        self.emit(ParticipantLeft(self.id, reason))
        self._events_ready.set()

    def stats(self) -> dict[str, Any]:
        return {
            "connection": self.pc.connectionState,
            "signalling": self.pc.signalingState,
            "publishing": {k: s.stats() for k, s in self.sources.items()},
            "legs": [leg.stats() for leg in self.legs],
            "srtp_profile": hook.srtp_profile(self.pc),
        }

    def __repr__(self) -> str:
        return f"<Participant {self.room.id}/{self.id}>"
