"""Booking remote sessions. A booking is written with its invitees, or not at all.

A live session that needs a manager's agreement to evening work when it is booked (server/bookings/evening.py)
is kept ``requested``, and nobody is invited, until a manager agrees; one blocked later (the practitioner
marked unavailable that day) stays confirmed, but its practitioner cannot join until a manager agrees.
The rules themselves are pure functions in ``server/bookings/rules.py``; this service gathers the facts,
writes the rows and audits. Emails go out through a ``Notices`` given at construction (the invitations
feature), in the booking's own transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Role, Staff
from server.audit.log import Actor, AuditLog
from server.bookings import rules
from server.bookings.evening import EveningWork
from server.bookings.models import LIVE, Booking, BookingInvitee, BookingKind, BookingStatus, InviteeRole
from server.clock import Clock
from server.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from server.events import Events, SessionEnded
from server.people.models import Client, Guardian
from server.subjects import Subject


class Notices(Protocol):
    """What a booking change tells people (server/invitations): called before the caller commits, so a
    rolled-back change sends nothing."""

    async def invite(self, session: AsyncSession, booking: Booking) -> int: ...

    async def changed(self, session: AsyncSession, actor: Actor, booking: Booking, previous: datetime) -> int: ...

    async def resend(self, session: AsyncSession, booking: Booking, subject: str) -> int: ...

    async def cancelled(self, session: AsyncSession, actor: Actor, booking: Booking, reason: str) -> int: ...


@dataclass(frozen=True)
class NewBooking:
    kind: BookingKind
    practitioner_id: int
    client_id: int
    starts_at: datetime
    duration_minutes: int
    guardian_ids: tuple[int, ...] = ()
    invite_client: bool = False


class BookingService:
    def __init__(self, clock: Clock, audit: AuditLog, notices: Notices | None = None, *,
                 evening: EveningWork, events: Events | None = None) -> None:
        self._events = events or Events()  # a cancelled or moved booking's live session ends
        self._clock = clock
        self._audit = audit
        self._notices = notices  # None only in tests that check the booking rules alone
        self.evening = evening

    async def create(self, session: AsyncSession, actor: Actor, new: NewBooking, *,
                     allow_started: bool = False, visit_rules_checked: bool = False) -> Booking:
        """Check and add a booking with its invitees (the caller commits).

        A child client (under 18 on the day) is joined by guardians linked to them; an adult client may be
        invited in their own right. ``allow_started`` lets the demo book a session that starts now.

        Raises:
            InvalidInput: a start in the past, a bad duration, no invitees.
            NotFound: an unknown practitioner, client or guardian.
            PolicyViolation: a suspended person, or a guardian not linked to the client.

        A live session that runs into the evening of a day its practitioner was unavailable is booked
        ``requested``, without invitations, until a manager agrees (``agree_evening``).
        """
        now = self._clock.now()
        if not new.kind.is_remote and not visit_rules_checked:
            # Visits carry policy checks of their own (server.visits.services.VisitService.book).
            raise InvalidInput("Book home visits, studio visits and setting sessions through /api/v1/visits.",
                               field="kind")
        rules.check_time(new.starts_at, new.duration_minutes, now, allow_started=allow_started)
        practitioner = await session.get(Staff, new.practitioner_id)
        if practitioner is None or not practitioner.has_role(Role.PRACTITIONER):
            raise NotFound(f"There is no practitioner with id {new.practitioner_id}.", field="practitioner_id")
        if practitioner.suspended:
            raise PolicyViolation(f"{practitioner.name}'s approval is suspended; they cannot be booked.",
                                  field="practitioner_id", rule="suspension")
        client = await session.get(Client, new.client_id)
        if client is None:
            raise NotFound(f"There is no client with id {new.client_id}.", field="client_id")
        if client.status != "approved":
            raise PolicyViolation(f"{client.name}'s approval is suspended; they cannot be booked.",
                                  field="client_id", rule="suspension")
        adult = client.is_adult_on(new.starts_at.date())
        invitees: list[BookingInvitee] = []
        linked = {link.guardian_id: link for link in client.guardians}
        for gid in dict.fromkeys(new.guardian_ids):
            guardian = await session.get(Guardian, gid)
            if guardian is None:
                raise NotFound(f"There is no guardian with id {gid}.", field="guardian_ids")
            if gid not in linked:
                raise PolicyViolation(f"{guardian.name} is not linked to {client.name}.", field="guardian_ids",
                                      rule="guardian_link")
            if guardian.status != "approved":
                raise PolicyViolation(f"{guardian.name}'s approval is suspended.", field="guardian_ids",
                                      rule="suspension")
            invitees.append(BookingInvitee(role=InviteeRole.GUARDIAN, guardian_id=gid))
        rules.check_invitees(rules.Invitees(
            client_name=client.name, adult=adult, needs_one_to_one_support=client.needs_one_to_one_support,
            client_has_email=bool(client.email), guardians=len(invitees), invite_client=new.invite_client))
        if new.invite_client:
            invitees.append(BookingInvitee(role=InviteeRole.CLIENT, client_id=client.id))
        await self.check_free(session, practitioner, new.starts_at, new.duration_minutes)
        booking = Booking(
            kind=new.kind.value, practitioner_id=practitioner.id, client_id=client.id, starts_at=new.starts_at,
            duration_minutes=new.duration_minutes, status=BookingStatus.CONFIRMED, sequence=0,
            created_by_id=subject.id if (subject := Subject.parse(actor.ref)) and subject.is_staff else None,
            created_at=now, invitees=invitees,
        )
        waiting = await self.evening.block(session, booking) if new.kind.is_remote else None
        if waiting is not None:  # policies/000_*: not to go ahead, or be announced, without a manager
            booking.status = BookingStatus.REQUESTED
        session.add(booking)
        await session.flush()
        await self._audit.record(session, actor, "booking.created", f"booking:{booking.id}", {
            "kind": booking.kind, "starts_at": booking.starts_at.isoformat(),
            "invitees": [i.subject for i in invitees], "status": booking.status, "waiting_for": waiting,
        })
        # Same transaction: a rolled-back booking sends nothing.
        if booking.status == BookingStatus.CONFIRMED and (notices := self._notices_for(booking)) is not None:
            await notices.invite(session, booking)
        return booking

    async def blocked_reason(self, session: AsyncSession, booking: Booking) -> str | None:
        """Why a live session cannot go ahead for now (shown on the booking, refused at join), or None."""
        if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.REQUESTED):
            return None
        waiting = await self.evening.block(session, booking)
        if waiting is None:
            return None
        return (f"Session blocked: {waiting}. A manager can agree to it on the booking (POST "
                f"/api/v1/bookings/{booking.id}/evening-agreement), or move it to end by "
                f"{self.evening.evening_hour}:00")

    async def agree_evening(self, session: AsyncSession, actor: Actor, manager: Staff, booking: Booking,
                            reason: str) -> Booking:
        """A manager agrees to evening work on ``booking`` (any kind). A live session held ``requested`` for
        it is confirmed and its invitations go out now; a visit still needs authorising."""
        await self.evening.agree(session, actor, manager, booking, reason)
        if BookingKind(booking.kind).is_remote and booking.status == BookingStatus.REQUESTED:
            booking.status = BookingStatus.CONFIRMED
            await self._audit.record(session, actor, "booking.confirmed", f"booking:{booking.id}",
                                     {"after": "evening agreement"})
            if (notices := self._notices_for(booking)) is not None:
                await notices.invite(session, booking)
        return booking

    def _notices_for(self, booking: Booking) -> Notices | None:
        """Remote sessions only: their emails carry join, device-check and consent links a visit has no use for."""
        return self._notices if BookingKind(booking.kind).is_remote else None

    async def check_free(self, session: AsyncSession, practitioner: Staff, starts_at: datetime,
                         duration_minutes: int, *, moving: int | None = None) -> None:
        """Refuse a time that overlaps another live booking of the practitioner (``moving``: the booking
        being moved, which cannot clash with itself)."""
        earliest, latest = rules.clash_window(starts_at, duration_minutes)
        query = select(Booking).where(Booking.practitioner_id == practitioner.id, Booking.status.in_(LIVE),
                                      Booking.starts_at < latest, Booking.starts_at > earliest)
        if moving is not None:
            query = query.where(Booking.id != moving)
        others = (await session.execute(query)).scalars().all()
        rules.check_no_clash(practitioner.name, starts_at, duration_minutes,
                             (rules.Slot(o.id, o.starts_at, o.ends_at) for o in others))

    async def set_music_mode(self, session: AsyncSession, actor: Actor, booking_id: int, on: bool) -> None:
        """The practitioner switched music mode in the live session; kept for the next join, audited."""
        booking = await self.get(session, booking_id)
        booking.music_mode = on
        await self._audit.record(session, actor, "session.music_mode", f"booking:{booking_id}", {"on": on})

    async def get(self, session: AsyncSession, booking_id: int) -> Booking:
        booking = await session.get(Booking, booking_id)
        if booking is None:
            raise NotFound(f"There is no booking with id {booking_id}.")
        return booking

    async def cancel(self, session: AsyncSession, actor: Actor, booking: Booking, reason: str) -> None:
        """Cancel a confirmed booking, or a requested one (nobody was invited to that: nobody is told)."""
        if booking.status not in (BookingStatus.CONFIRMED, BookingStatus.REQUESTED):
            raise Conflict(f"Booking {booking.id} is {booking.status}, not confirmed or requested.")
        invited = booking.status == BookingStatus.CONFIRMED
        booking.status = BookingStatus.CANCELLED
        booking.sequence += 1
        await self._audit.record(session, actor, "booking.cancelled", f"booking:{booking.id}", {"reason": reason})
        self._events.publish(session, SessionEnded(booking.id, "This session was cancelled."))
        if invited and (notices := self._notices_for(booking)) is not None:
            await notices.cancelled(session, actor, booking, reason)

    async def reschedule(self, session: AsyncSession, actor: Actor, booking: Booking, starts_at: datetime,
                         duration_minutes: int | None = None) -> None:
        """Move a confirmed booking: old links stop, SEQUENCE+1, everyone gets a change notice with fresh links."""
        if booking.status != BookingStatus.CONFIRMED:
            raise Conflict(f"Booking {booking.id} is {booking.status}, not confirmed.")
        if not BookingKind(booking.kind).is_remote:  # moving it could break every visit rule checked at booking
            raise PolicyViolation("A visit cannot be moved: cancel it and book the new time through /api/v1/visits, "
                                  "so that the visit rules are checked again.", rule="visit_reschedule")
        duration = duration_minutes or booking.duration_minutes
        rules.check_time(starts_at, duration, self._clock.now())
        practitioner = await session.get(Staff, booking.practitioner_id)
        if practitioner is None:
            raise NotFound(f"Booking {booking.id} lost its practitioner.")
        await self.check_free(session, practitioner, starts_at, duration, moving=booking.id)
        previous = booking.starts_at
        booking.starts_at, booking.duration_minutes = starts_at, duration
        booking.sequence += 1
        # A manager agreed to evening work at the old time, not the new one.
        withdrawn = booking.evening_agreed_by_id is not None
        booking.evening_agreed_by_id = booking.evening_agreed_at = None
        await self._audit.record(session, actor, "booking.rescheduled", f"booking:{booking.id}", {
            "from": previous.isoformat(), "to": starts_at.isoformat(), "duration_minutes": duration,
            "evening_agreement_withdrawn": withdrawn})
        self._events.publish(session, SessionEnded(booking.id, "This session has been moved to another time. "
                                                               "Use the link in the change notice we sent."))
        if (notices := self._notices_for(booking)) is not None:
            await notices.changed(session, actor, booking, previous)

    async def resend(self, session: AsyncSession, actor: Actor, booking: Booking, subject: str) -> None:
        """Revoke one person's join link and email them a new one (the lost-email case)."""
        if booking.status != BookingStatus.CONFIRMED:
            raise Conflict(f"Booking {booking.id} is {booking.status}; there is nothing to resend.")
        invited = {i.subject for i in booking.invitees} | {Subject.staff(booking.practitioner_id)}
        if subject not in invited:
            raise NotFound(f"{subject} is not invited to booking {booking.id}.", field="subject")
        await self._audit.record(session, actor, "booking.link_resent", f"booking:{booking.id}", {"subject": subject})
        if (notices := self._notices_for(booking)) is not None:
            await notices.resend(session, booking, subject)

    @staticmethod
    async def client_ids_of(session: AsyncSession, practitioner_id: int) -> list[int]:
        """The clients a practitioner has (or had) bookings with: whom they work with (need-to-know)."""
        return list((await session.execute(select(Booking.client_id).where(
            Booking.practitioner_id == practitioner_id).distinct())).scalars())

    @staticmethod
    async def works_with(session: AsyncSession, practitioner_id: int, client_id: int) -> bool:
        """Whether the practitioner has (or had) a booking with the client (policies/004_*: need-to-know)."""
        return (await session.execute(select(Booking.id).where(
            Booking.client_id == client_id, Booking.practitioner_id == practitioner_id).limit(1))).first() is not None

    async def between(self, session: AsyncSession, start: datetime, end: datetime,
                      practitioner_id: int | None = None) -> list[Booking]:
        query = select(Booking).where(Booking.starts_at >= start, Booking.starts_at < end).order_by(Booking.starts_at)
        if practitioner_id is not None:
            query = query.where(Booking.practitioner_id == practitioner_id)
        return list((await session.execute(query)).scalars().all())
