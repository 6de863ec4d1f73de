"""Live sessions: who is in which booking's room, and the extension points other features use.

One ``Session`` per booking with an open room; one ``Member`` per WebSocket. The relay (server/media) is
told only who publishes; everything about bookings, roles and people stays here. Features plug in with:

* ``hub.on_message(type, model, handler, roles=...)``: handle a new client message type;
* ``hub.on_change(listener)``: hear every join, leave and publishing change (the recording gate);
* ``await hub.broadcast(booking_id, message)``: tell everyone in a session something;
* ``hub.present(booking_id)``: who is there, in which role, publishing what;
* ``await hub.remove_subject(booking_id or None, subject, reason)``: remove someone (a suspension).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor, AuditLog
from server.bookings.attendance import Attendance
from server.bookings.models import Booking
from server.bookings.services import BookingService
from server.chat.services import ChatService
from server.clock import Clock
from server.media import MediaRouter, Participant, ParticipantLeft, PublishingChanged, Room
from server.web.live.limits import RateLimiter

log = logging.getLogger("duet.signalling")

Role = Literal["host", "participant", "observer"]
ChangeKind = Literal["joined", "left", "publishing"]


@dataclass
class Member:
    """One person's WebSocket in a session. ``pid`` is their subject, e.g. ``guardian:3``."""

    pid: str
    name: str
    role: Role
    ws: web.WebSocketResponse
    link_id: int | None = None  # joined through this link (a family, or staff by their own link) ...
    login_id: int | None = None  # ... or through this staff sign-in
    participant: Participant | None = None
    pump: asyncio.Task[None] | None = None
    publishing: dict[str, bool] = field(default_factory=lambda: {"audio": False, "video": False})
    muted: dict[str, bool] = field(default_factory=lambda: {"audio": False, "video": False})

    @property
    def actor(self) -> Actor:
        return Actor(self.pid, "session")

    def presence(self) -> dict[str, Any]:
        return {"id": self.pid, "name": self.name, "role": self.role, "publishing": dict(self.publishing),
                "muted": dict(self.muted)}

    async def send(self, message: dict[str, Any]) -> None:
        if not self.ws.closed:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_json(message)


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    member: Member


@dataclass
class Session:
    booking_id: int
    room: Room
    practitioner_id: int
    client_id: int
    members: dict[str, Member] = field(default_factory=dict)
    closer: asyncio.Task[None] | None = None

    def presence(self) -> list[dict[str, Any]]:
        return [m.presence() for m in self.members.values()]


Handler = Callable[[Session, Member, Any], Awaitable[None]]
Listener = Callable[[Session, Change], Awaitable[None]]


@dataclass(frozen=True)
class Registration:
    model: type[BaseModel]
    handler: Handler
    roles: frozenset[str]


class SessionHub:
    def __init__(self, router: MediaRouter, sessionmaker: async_sessionmaker[AsyncSession], *, clock: Clock,
                 media_clock: Clock, audit: AuditLog, attendance: Attendance, chat: ChatService,
                 bookings: BookingService, late_grace_minutes: int) -> None:
        self.router = router
        self.sessionmaker = sessionmaker
        self.clock = clock  # bookings' windows
        self.media_clock = media_clock  # message rate limits: real time, like the media
        self.audit = audit
        self.attendance = attendance
        self.chat = chat
        self.bookings = bookings
        self.late_grace = timedelta(minutes=late_grace_minutes)
        self.sessions: dict[int, Session] = {}
        # What the practitioner decided stays decided when someone simply joins again, until the booking's
        # window closes: whom they removed (until let back in), and that they ended the session.
        self.removed: dict[int, set[str]] = {}
        self.ended_by_host: dict[int, str] = {}
        self.limits: dict[tuple[int, str], RateLimiter] = {}  # per person in a booking, across reconnects
        self.handlers: dict[str, Registration] = {}
        self.listeners: list[Listener] = []

    # ---- extension points -----------------------------------------------------------
    def on_message(self, type_: str, model: type[BaseModel], handler: Handler, *,
                   roles: frozenset[str] = frozenset({"host"})) -> None:
        """Handle client messages ``{"type": type_, ...}`` from members in ``roles``."""
        if type_ in self.handlers:
            raise ValueError(f"message type {type_!r} is already handled")
        self.handlers[type_] = Registration(model, handler, roles)

    def on_change(self, listener: Listener) -> None:
        self.listeners.append(listener)

    async def broadcast(self, booking_id: int, message: dict[str, Any]) -> None:
        session = self.sessions.get(booking_id)
        if session is not None:
            await asyncio.gather(*(m.send(message) for m in list(session.members.values())))

    def present(self, booking_id: int) -> list[Member]:
        session = self.sessions.get(booking_id)
        return list(session.members.values()) if session else []

    async def remove_subject(self, booking_id: int | None, subject: str, reason: str) -> int:
        """Take ``subject`` out of one session (or all): their media stops and their page says why."""
        removed = 0
        for session in list(self.sessions.values()):
            if booking_id is not None and session.booking_id != booking_id:
                continue
            member = session.members.get(subject)
            if member is not None:
                await self.remove_member(session, member, reason)
                removed += 1
        return removed

    async def remove_member(self, session: Session, member: Member, reason: str) -> None:
        """Take one member out: their page says why, their media stops, their socket closes."""
        await member.send({"type": "removed", "reason": reason})
        await self.depart(session, member, "removed")
        await member.ws.close(code=4403, message=b"removed")

    # ---- lifecycle ------------------------------------------------------------------
    def open(self, booking: Booking) -> Session:
        """The session of a booking in its window, made on first join; it ends when the window closes."""
        session = self.sessions.get(booking.id)
        if session is not None and not session.room.closed:
            return session
        room = self.router.room(f"booking-{booking.id}", audio_only=booking.audio_only,
                                music_mode=booking.music_mode)
        session = self.sessions[booking.id] = Session(booking.id, room, booking.practitioner_id, booking.client_id)
        delay = (booking.ends_at + self.late_grace - self.clock.now()).total_seconds()
        session.closer = asyncio.create_task(self._close_at_window_end(session, delay))
        return session

    async def _close_at_window_end(self, session: Session, delay: float) -> None:
        await self.clock.sleep(delay)
        await self.end(session.booking_id, "the booked time is over", cancel_closer=False)
        self.forget(session.booking_id)

    def forget(self, booking_id: int) -> None:
        """The booking's window is over: nothing about its live session is kept in memory."""
        self.removed.pop(booking_id, None)
        self.ended_by_host.pop(booking_id, None)
        for key in [k for k in self.limits if k[0] == booking_id]:
            del self.limits[key]

    async def admit(self, session: Session, member: Member) -> None:
        old = session.members.get(member.pid)
        if old is not None:  # the same person again (a second tab, or a reconnect): the new one wins
            await old.send({"type": "replaced", "detail": "You joined this session from another window."})
            await self.depart(session, old, "joined elsewhere")
            await old.ws.close(code=4409, message=b"replaced")
        session.members[member.pid] = member
        await self._attend(session.booking_id, member, joined=True, details={"role": member.role})
        await self._changed(session, Change("joined", member))

    async def attach(self, session: Session, member: Member, participant: Participant) -> None:
        """Give a member a (new) peer connection and forward its events to the browser."""
        if member.pump is not None:
            member.pump.cancel()
        member.participant = participant
        member.pump = asyncio.create_task(self._pump(session, member, participant))

    async def _pump(self, session: Session, member: Member, participant: Participant) -> None:
        async for event in participant.events():
            if isinstance(event, PublishingChanged) and event.publisher_id == member.pid:
                member.publishing[event.kind] = event.publishing
                member.muted[event.kind] = event.muted
                await self._changed(session, Change("publishing", member))
            if isinstance(event, ParticipantLeft) and event.reason == "rejoining":
                return
            await member.send(event.to_json())

    async def depart(self, session: Session, member: Member, reason: str) -> None:
        if session.members.get(member.pid) is not member:
            return
        del session.members[member.pid]
        if member.pump is not None:
            member.pump.cancel()
        if member.participant is not None and session.room.participants.get(member.pid) is member.participant:
            await session.room.leave(member.pid, reason=reason)
        await self._attend(session.booking_id, member, joined=False, details={"reason": reason})
        await self._changed(session, Change("left", member))

    async def end(self, booking_id: int, reason: str, *, cancel_closer: bool = True) -> None:
        """End a session for everyone."""
        session = self.sessions.pop(booking_id, None)
        if session is None:
            return
        if cancel_closer and session.closer is not None:
            session.closer.cancel()
        await self.audit_event(Actor("system", "session"), "session.ended", booking_id, {"reason": reason})
        for member in list(session.members.values()):
            await member.send({"type": "ended", "reason": reason})
            await self.depart(session, member, reason)
            await member.ws.close(code=4000, message=b"ended")
        await session.room.close(reason)

    async def close(self) -> None:
        for booking_id in list(self.sessions):
            await self.end(booking_id, "the server is restarting")

    # ---- helpers ----------------------------------------------------------------------
    async def _changed(self, session: Session, change: Change) -> None:
        await self.broadcast(session.booking_id, {"type": "members", "members": session.presence()})
        for listener in self.listeners:
            try:
                await listener(session, change)
            except Exception:  # a feature's listener must not break the session
                log.exception("session listener failed for booking %s", session.booking_id)

    async def _attend(self, booking_id: int, member: Member, *, joined: bool, details: dict[str, Any]) -> None:
        """A join or a leave: its audit event and the attendance record (policies/000_*), in one transaction."""
        attendance = self.attendance
        for attempt in (1, 2):
            try:
                async with self.sessionmaker() as db:
                    if joined:
                        await attendance.joined(db, booking_id, member.pid, member.role)
                    else:
                        await attendance.left(db, booking_id, member.pid)
                    await self.audit.record(db, member.actor, "session.joined" if joined else
                                                     "session.left", f"booking:{booking_id}", details)
                    await db.commit()
                return
            except IntegrityError:  # the same person's first join from two windows at once: now it exists
                if attempt == 2:
                    raise

    async def audit_event(self, actor: Actor, action: str, booking_id: int, details: dict[str, Any]) -> None:
        """One audit event about a live session, in its own transaction."""
        async with self.sessionmaker() as db:
            await self.audit.record(db, actor, action, f"booking:{booking_id}", details)
            await db.commit()
