"""Rooms and the router that owns them: the relay's public API.

``media`` knows nothing of bookings or roles: the signalling layer decides who
may join, publish or observe and calls this API. A room left empty for
``empty_room_seconds`` is let go by its router (its memory with it); a later
``join`` on the same ``Room`` object takes it back, so a session reopens in its
window without the layer above noticing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCIceServer

from server.clock import Clock, SystemClock, Timer
from server.errors import Conflict, InvalidInput
from server.media import hook
from server.media.engine import TICK, MediaClock, MediaEngine
from server.media.errors import MediaFull, ParticipantNotFound, RoomClosed
from server.media.events import MediaEvent, PublishingChanged, RoomClosedEvent
from server.media.forwarding import FrameTap
from server.media.frames import TEXT_TIME_BASE, EncodedFrame, Kind, PacketUnit, TrackFrames
from server.media.participant import Participant
from server.media.rtp import Vp8Info
from server.media.streams import Source

log = logging.getLogger(__name__)

IceServer = RTCIceServer | dict[str, Any] | str

# Ids travel in SDP (msid, RFC 8830 token characters) and logs: keep them to a safe, short alphabet.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def check_id(value: str, what: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(
            f"A {what} id is 1-64 letters, digits or _.:- characters, starting with a letter or digit.",
            field=what,
        )
    return value


def ice_server(server: IceServer) -> RTCIceServer:
    if isinstance(server, RTCIceServer):
        return server
    if isinstance(server, str):
        return RTCIceServer(urls=server)
    return RTCIceServer(
        urls=server["urls"], username=server.get("username"), credential=server.get("credential")
    )


class Room:
    """The participants of one session and the tracks forwarded between them."""

    def __init__(self, router: MediaRouter, room_id: str, *, audio_only: bool, music_mode: bool) -> None:
        self.id = room_id
        self.audio_only = audio_only
        self.music_mode = music_mode
        self.participants: dict[str, Participant] = {}
        self.closed = False
        self._router = router
        self._taps: list[FrameTap] = []
        self._empty_timer: Timer | None = None
        self._assembling: dict[Source, TrackFrames] = {}
        self.released = False

    # -- membership ------------------------------------------------------------

    async def join(self, participant_id: str, *, publish: bool = True, loopback: bool = False) -> Participant:
        """Add a participant; then hand its browser's offer to ``accept_offer``.

        ``publish=False`` makes an observer: its tracks are refused, it receives everyone.
        ``loopback=True`` (device check) also sends the participant its own media back,
        relayed, and echoes every data channel message (RTT probes).
        """
        check_id(participant_id, "participant")
        if self.closed:
            raise RoomClosed("This session has ended.")
        if participant_id in self.participants:
            raise Conflict(f"{participant_id} is already in this session; use rejoin.", field="participant")
        self._router.admit()
        self._occupied()
        participant = Participant(
            self,
            participant_id,
            publish=publish,
            loopback=loopback,
            configuration=self._router._configuration(),
            clock=self._router.clock,
            engine=self._router.engine,
            counters=self._router.counters,
            connect_timeout=self._router.connect_timeout,
            answer_timeout=self._router.answer_timeout,
        )
        self.participants[participant_id] = participant
        return participant

    def get(self, participant_id: str) -> Participant:
        try:
            return self.participants[participant_id]
        except KeyError:
            raise ParticipantNotFound(f"{participant_id} is not in this session.") from None

    async def leave(self, participant_id: str, *, reason: str = "left") -> None:
        """Remove a participant and close its peer connection; a no-op if already gone."""
        participant = self.participants.pop(participant_id, None)
        if participant is None:
            return
        for source in list(participant.sources.values()):
            self._source_removed(source)
        await participant.close(reason)
        log.info("room %s: %s left (%s)", self.id, participant_id, reason)
        if not self.participants and not self.closed:
            self._empty_timer = self._router.clock.call_later(self._router.empty_room_seconds, self._release)

    def _occupied(self) -> None:
        if self._empty_timer is not None:
            self._empty_timer.cancel()
            self._empty_timer = None
        if self.released:
            self.released = False
            self._router._adopt(self)

    def _release(self) -> None:
        """Empty for a while: the router lets the room go (a later join takes it back)."""
        self._empty_timer = None
        if not self.participants and not self.closed and not self._taps:
            self.released = True
            self._router._forget(self)
            log.info("room %s: empty, released", self.id)

    async def remove(self, participant_id: str) -> None:
        """Remove a participant on a practitioner's or safeguarding lead's decision."""
        self.get(participant_id)
        await self.leave(participant_id, reason="removed")

    async def rejoin(self, participant_id: str) -> Participant:
        """The network path to a participant broke: start over with a new peer connection.

        aiortc 1.16 cannot restart ICE, so this replaces the participant (same id,
        same publish/loopback settings); the browser makes a new RTCPeerConnection
        and sends a fresh offer to the new participant's ``accept_offer``.
        """
        old = self.get(participant_id)
        publish, loopback = old.publish, old.loopback
        await self.leave(participant_id, reason="rejoining")
        return await self.join(participant_id, publish=publish, loopback=loopback)

    def mute(self, participant_id: str, *, kind: Kind = "audio", muted: bool = True) -> None:
        """Stop (or resume) forwarding one of a participant's tracks to everyone and to recording."""
        participant = self.get(participant_id)
        if participant.set_muted(kind, muted):
            self.broadcast(PublishingChanged(participant_id, kind, publishing=True, muted=muted))

    async def close(self, reason: str = "closed") -> None:
        """End the session for everyone."""
        if self.closed:
            return
        self.closed = True
        self.broadcast(RoomClosedEvent(self.id, reason))
        for participant_id in list(self.participants):
            await self.leave(participant_id, reason=reason)
        for tap in list(self._taps):
            tap.close()
        if self._empty_timer is not None:
            self._empty_timer.cancel()
            self._empty_timer = None
        self._router._forget(self)

    # -- taps ---------------------------------------------------------------------

    def tap(self, participant_ids: set[str] | None = None, *, maxlen: int = 900) -> FrameTap:
        """Every forwarded encoded frame (of these participants, or all): the recorder's input.

        ``async for frame in tap`` until ``tap.close()``; keyframes are asked for so
        each video track starts decodable.
        """
        tap = FrameTap(maxlen, participant_ids, self._tap_closed)
        self._taps.append(tap)
        for participant in self.participants.values():
            for source in participant.sources.values():
                if tap.wants(source.participant_id):
                    self._record(source)
                    source.request_keyframe()
        return tap

    def _record(self, source: Source) -> None:
        """Assemble frames from this source's packets only while some tap wants them (after each batch)."""
        wanted = any(tap.wants(source.participant_id) for tap in self._taps)
        if not wanted:
            self._assembling.pop(source, None)
            source.set_recorder(None)
        elif source not in self._assembling:
            engine = self._router.engine

            def emit(frame: EncodedFrame) -> None:
                for tap in self._taps:
                    if tap.wants(frame.participant_id):
                        tap.push(source, frame)

            frames = self._assembling[source] = TrackFrames(source.participant_id, source.kind, source.codec,
                                                            lambda: engine.now, emit)

            def assemble(unit: PacketUnit) -> None:
                if frames.add(unit):
                    source.request_keyframe()

            def record(src: Source, seq: int, ts: int, marker: int, vp8: Vp8Info, payload: bytes, ssrc: int) -> None:
                engine.defer(assemble, PacketUnit(seq, ts, bool(marker), vp8.start, payload[vp8.size :], ssrc))

            source.set_recorder(record)

    def _tap_closed(self, tap: FrameTap) -> None:
        self._taps.remove(tap)
        for participant in self.participants.values():
            for source in participant.sources.values():
                self._record(source)

    def chat(self, participant_id: str, cue: str) -> None:
        """A chat line sent in this session (a WebVTT cue payload, see ``voice_cue``), for the recorders
        running on it, timed by the relay's clock like the media."""
        frame = EncodedFrame(participant_id=participant_id, kind="text", codec="webvtt", data=cue.encode(),
                             pts=0, time_base=TEXT_TIME_BASE, keyframe=True, arrival=self._router.clock.monotonic())
        for tap in self._taps:
            tap.push_text(frame)

    # -- routing (RoomLink: called by participants) ----------------------------------

    def sources_for(self, subscriber: Participant) -> list[Source]:
        found: list[Source] = []
        for participant in self.participants.values():
            if participant is subscriber and not subscriber.loopback:
                continue
            found.extend(participant.sources.values())
        return found

    def source_added(self, source: Source) -> None:
        self._record(source)
        for participant in self.participants.values():
            if participant.id != source.participant_id or participant.loopback:
                if participant.id == source.participant_id or participant._initial_done:
                    participant.subscribe(source)
        self.broadcast(PublishingChanged(source.participant_id, source.kind, publishing=True, muted=False))

    def _source_removed(self, source: Source) -> None:
        self._assembling.pop(source, None)
        source.end()
        for participant in self.participants.values():
            participant.source_gone(source)
        self.broadcast(PublishingChanged(source.participant_id, source.kind, publishing=False, muted=False))

    def broadcast(self, event: MediaEvent) -> None:
        for participant in self.participants.values():
            participant.emit(event)
        if self._router.on_event is not None:
            self._router.on_event(self.id, event)

    def stats(self) -> dict[str, Any]:
        return {
            "audio_only": self.audio_only,
            "music_mode": self.music_mode,
            "participants": {pid: p.stats() for pid, p in self.participants.items()},
            "taps": [{"frames_dropped": t.frames_dropped} for t in self._taps],
        }


class MediaRouter:
    """All rooms of one media node. One per process; close it on shutdown.

    Args:
        ice_servers: STUN/TURN servers (``RTCIceServer``, ``{"urls", "username",
            "credential"}`` dicts or URLs); empty means host candidates only.
        clock: the injected clock (deadlines, keyframe rate limits).
        connect_timeout: a participant not connected this long after joining is removed.
        answer_timeout: a participant that does not answer a server offer this long is removed.
        on_event: optional ``(room_id, event)`` callback for every room-wide event.
        media_clock: the forwarding loop's time (real time even when ``clock`` is a fake).
        tick: seconds between forwarding batches.
        empty_room_seconds: an empty room is let go this long after the last leave.
        max_participants: admission control: past this many participants, ``join`` raises ``MediaFull``
            (None: no limit). Set it below what ``make bench`` shows one core sustains.
        estimate_upstream: accepted for compatibility and ignored: the packet path sends each
            publisher the lowest of its subscribers' REMB (aiortc's estimator is not run).
    """

    def __init__(
        self,
        ice_servers: Sequence[IceServer] = (),
        *,
        clock: Clock | None = None,
        connect_timeout: float = 30.0,
        answer_timeout: float = 15.0,
        on_event: Callable[[str, MediaEvent], None] | None = None,
        media_clock: MediaClock | None = None,
        tick: float = TICK,
        empty_room_seconds: float = 60.0,
        max_participants: int | None = None,
        estimate_upstream: bool = False,
    ) -> None:
        self.ice_servers = [ice_server(s) for s in ice_servers]
        self.clock: Clock = clock or SystemClock()
        self.connect_timeout = connect_timeout
        self.answer_timeout = answer_timeout
        self.on_event = on_event
        self.empty_room_seconds = empty_room_seconds
        self.max_participants = max_participants
        self.counters = hook.install()
        self.engine = MediaEngine(media_clock or SystemClock(), interval=tick)
        self.rooms: dict[str, Room] = {}

    def _configuration(self) -> RTCConfiguration:
        # max-bundle: every m-line the server adds later rides the one ICE/DTLS transport.
        return RTCConfiguration(iceServers=list(self.ice_servers), bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)

    def room(self, room_id: str, *, audio_only: bool = False, music_mode: bool = False) -> Room:
        """The room with this id, made on first use. Its settings are fixed when it is made."""
        existing = self.rooms.get(check_id(room_id, "room"))
        if existing is not None:
            if existing.audio_only != audio_only or existing.music_mode != music_mode:
                raise Conflict(f"Room {room_id} is already open with other settings.", field="room")
            return existing
        room = self.rooms[room_id] = Room(self, room_id, audio_only=audio_only, music_mode=music_mode)
        return room

    @property
    def participant_count(self) -> int:
        return sum(len(r.participants) for r in self.rooms.values())

    def admit(self) -> None:
        """Refuse a join past capacity, with a message a person can act on."""
        if self.max_participants is not None and self.participant_count >= self.max_participants:
            raise MediaFull("The media server is at capacity right now; please try again in a minute.")

    def _forget(self, room: Room) -> None:
        if self.rooms.get(room.id) is room:
            del self.rooms[room.id]

    def _adopt(self, room: Room) -> None:
        self.rooms.setdefault(room.id, room)

    async def close(self) -> None:
        for room in list(self.rooms.values()):
            await room.close(reason="server shutting down")
        await self.engine.close()

    def stats(self) -> dict[str, Any]:
        """Counters for tests, benchmarks and the ops page; decoders/encoders must stay 0."""
        tracks: dict[str, Any] = {}
        for room in self.rooms.values():
            for participant in room.participants.values():
                for kind, source in participant.sources.items():
                    tracks[f"{room.id}/{participant.id}/{kind}"] = source.stats()
        return {
            "decoders_created": self.counters.decoders,
            "encoders_created": self.counters.encoders,
            "rooms": len(self.rooms),
            "participants": sum(len(r.participants) for r in self.rooms.values()),
            "frames_forwarded": sum(t["frames_forwarded"] for t in tracks.values()),
            "packets_forwarded": sum(t["packets_forwarded"] for t in tracks.values()),
            "packets_out": self.engine.packets_out,
            "engine": self.engine.stats(),
            "tracks": tracks,
            "room_detail": {room_id: room.stats() for room_id, room in self.rooms.items()},
        }
