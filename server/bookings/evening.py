"""Evening work needs a manager's agreement: one rule for every kind of booking, live sessions and visits.

Two policy rules meet here, and one agreement on the booking satisfies both:

* policies/000_*: staff "unavailable for work during the day ... should not operate sessions in the evening
  without agreement from their manager" (live video and audio sessions as much as visits);
* policies/002_*, 003_*: no evening home visit unless a manager agrees.

"Evening" means running past DUET_EVENING_HOUR in the organisation's time zone (``rules.is_evening``). The
block is worked out whenever it matters (booking, joining, check-in, showing the booking), never stored:
marking someone unavailable after a session was booked blocks that session at once. An agreement given
before the practitioner was marked unavailable does not cover it: the manager agreed without knowing.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Role, Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import LIVE, Booking, BookingKind, StaffUnavailability
from server.bookings.rules import is_evening
from server.clock import Clock
from server.config import Settings
from server.errors import Conflict, Forbidden


class EveningWork:
    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog) -> None:
        self._settings = settings
        self._clock = clock
        self._audit = audit

    @property
    def evening_hour(self) -> int:
        return self._settings.evening_hour

    def runs_late(self, booking: Booking) -> bool:
        local = booking.starts_at.astimezone(self._settings.zone)
        return is_evening(local, booking.duration_minutes, self._settings.evening_hour)

    def day_of(self, booking: Booking) -> date:
        return booking.starts_at.astimezone(self._settings.zone).date()

    async def unavailability(self, session: AsyncSession, staff_id: int, day: date) -> StaffUnavailability | None:
        return (await session.execute(select(StaffUnavailability).where(
            StaffUnavailability.staff_id == staff_id, StaffUnavailability.day == day))).scalar_one_or_none()

    async def block(self, session: AsyncSession, booking: Booking) -> str | None:
        """Why ``booking`` waits for a manager's agreement to evening work (a clause to follow "Visit
        blocked: " or "Session blocked: "), or None when it need not."""
        if not self.runs_late(booking):
            return None
        hour, agreed_at = self.evening_hour, booking.evening_agreed_at
        away = await self.unavailability(session, booking.practitioner_id, self.day_of(booking))
        if away is not None and (agreed_at is None or agreed_at < away.recorded_at):
            since = " since they were marked unavailable" if agreed_at is not None else ""
            return (f"the practitioner was unavailable during the day and it runs past {hour}:00; no manager "
                    f"has agreed to evening work{since}")
        if booking.kind == BookingKind.HOME_VISIT and agreed_at is None:
            return f"it runs past {hour}:00 and no manager has agreed to evening work"
        return None

    async def agree(self, session: AsyncSession, actor: Actor, manager: Staff, booking: Booking,
                    reason: str) -> None:
        """Record a manager's agreement to the evening work ``booking`` is waiting for, audited.

        Raises:
            Forbidden: not a manager, or a manager agreeing to their own evening work.
            Conflict: nothing is waiting for agreement.
        """
        if not manager.has_role(Role.MANAGER):
            raise Forbidden("Only a manager can agree to evening work.")
        if manager.id == booking.practitioner_id:
            raise Forbidden("You cannot agree to your own evening work: another manager must.")
        if booking.status not in LIVE:
            raise Conflict(f"Booking {booking.id} is {booking.status}; there is nothing to agree to.")
        waiting = await self.block(session, booking)
        if waiting is None:
            raise Conflict(f"Booking {booking.id} is not waiting for agreement to evening work: it ends by "
                           f"{self.evening_hour}:00, or nothing in the policies asks for it.")
        booking.evening_agreed_by_id, booking.evening_agreed_at = manager.id, self._clock.now()
        await self._audit.record(session, actor, "booking.evening_agreed", f"booking:{booking.id}",
                                 {"reason": reason, "was_blocked": waiting})

    async def blocked_on(self, session: AsyncSession, staff_id: int, day: date) -> list[tuple[Booking, str]]:
        """The practitioner's live bookings on ``day`` (local) that now wait for agreement, with why."""
        start = datetime.combine(day, time(0), self._settings.zone)
        bookings = (await session.execute(select(Booking).where(
            Booking.practitioner_id == staff_id, Booking.status.in_(LIVE), Booking.starts_at >= start,
            Booking.starts_at < start + timedelta(days=1)).order_by(Booking.starts_at))).scalars().all()
        found = []
        for booking in bookings:
            if (reason := await self.block(session, booking)) is not None:
                found.append((booking, reason))
        return found
