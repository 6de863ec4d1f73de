"""Attendance at live sessions (policies/000_*: "attendance records and timetabling ... maintained accurately").

The session hub (server/web/live/hub.py) calls ``joined`` and ``left`` on every join and leave, in the
transaction of the matching ``session.joined``/``session.left`` audit event, so the two never disagree. The
timetable reads ``summary``: visits have check-in and check-out instead (server/visits/lonework.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.bookings.models import Booking, BookingStatus, SessionAttendance
from server.bookings.names import subject_names
from server.clock import Clock
from server.config import Settings
from server.subjects import Subject

ATTENDED = "attended"
NOT_ATTENDED = "did not attend"


@dataclass(frozen=True)
class Attendee:
    subject: str
    name: str
    role: str
    first_joined_at: datetime
    last_left_at: datetime | None  # None: still there (or the session ended without a leave being seen)


class Attendance:
    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock

    async def _row(self, session: AsyncSession, booking_id: int, subject: str) -> SessionAttendance | None:
        return (await session.execute(select(SessionAttendance).where(
            SessionAttendance.booking_id == booking_id, SessionAttendance.subject == subject))).scalar_one_or_none()

    async def joined(self, session: AsyncSession, booking_id: int, subject: str, role: str) -> None:
        """``subject`` entered the live session now (first join kept; later joins move ``last_joined_at``)."""
        now = self._clock.now()
        row = await self._row(session, booking_id, subject)
        if row is None:
            session.add(SessionAttendance(booking_id=booking_id, subject=subject, role=role, first_joined_at=now,
                                          last_joined_at=now))
        else:
            row.last_joined_at, row.role = now, role

    async def left(self, session: AsyncSession, booking_id: int, subject: str) -> None:
        row = await self._row(session, booking_id, subject)
        if row is not None:
            row.last_left_at = self._clock.now()

    async def of(self, session: AsyncSession, booking_ids: Iterable[int]) -> dict[int, list[Attendee]]:
        """Everyone who joined each booking's live session, first to join first, with their names."""
        ids = list(booking_ids)
        if not ids:
            return {}
        rows = (await session.execute(select(SessionAttendance).where(SessionAttendance.booking_id.in_(ids))
                                      .order_by(SessionAttendance.first_joined_at, SessionAttendance.id))
                ).scalars().all()
        names = await subject_names(session, [r.subject for r in rows])
        found: dict[int, list[Attendee]] = {}
        for r in rows:
            found.setdefault(r.booking_id, []).append(Attendee(r.subject, names.get(r.subject, r.subject), r.role,
                                                               r.first_joined_at, r.last_left_at))
        return found

    def summary(self, booking: Booking, attendees: list[Attendee]) -> str | None:
        """``attended`` once the family (a guardian or the client) joined, "did not attend" once joining has
        closed (the end plus DUET_LATE_GRACE_MINUTES) with nobody from the family; None before then, and
        for sessions that were never to take place (cancelled, or waiting for a manager)."""
        if any(Subject(a.subject).is_family for a in attendees):
            return ATTENDED
        closed = booking.ends_at + timedelta(minutes=self._settings.late_grace_minutes)
        held = booking.status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)
        return NOT_ATTENDED if held and self._clock.now() > closed else None
