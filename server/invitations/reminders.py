"""Reminders 24 hours and 1 hour before a session, safe to run on every node at once.

Each reminder's outbox key names the booking, the person, the SEQUENCE and the
reminder ("booking-4.reminder-24h.guardian-3.v0"); the outbox's unique key makes
a second node's insert a no-op, and a node that loses that race rolls back the
links it issued. Time comes from the injected Clock, so tests move a FakeClock.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bookings.models import Booking, BookingKind, BookingStatus
from server.checks.services import latest_check
from server.clock import Clock
from server.invitations.services import BookingNotifier
from server.mail import messages
from server.mail.models import OutboxMessage
from server.mail.outbox import enqueue

log = logging.getLogger(__name__)
DAY, HOUR = timedelta(hours=24), timedelta(hours=1)

class Reminders:
    """Finds bookings due a reminder and enqueues one email per invitee, once."""

    def __init__(self, clock: Clock, notifier: BookingNotifier) -> None:
        self._clock = clock
        self._notifier = notifier

    async def run_once(self, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        """Enqueue every reminder now due; returns how many this call added."""
        now = self._clock.now()
        async with sessionmaker() as session:
            due = (await session.execute(select(Booking.id).where(
                Booking.status == BookingStatus.CONFIRMED, Booking.starts_at > now,
                Booking.kind.in_([k.value for k in BookingKind if k.is_remote]),  # visits have no links to remind of
                Booking.starts_at <= now + DAY))).scalars().all()
        added = 0
        for booking_id in due:
            async with sessionmaker() as session:
                booking = await session.get(Booking, booking_id)
                if booking is None:
                    continue
                which = "1h" if booking.starts_at - now <= HOUR else "24h"
                # No reminder for a window the booking was made inside: the invitation has just told them.
                if booking.created_at >= booking.starts_at - (HOUR if which == "1h" else DAY):
                    continue
                for invitee in booking.invitees:
                    added += await self._one(sessionmaker, booking_id, invitee.subject, which, now)
        return added

    async def _one(self, sessionmaker: async_sessionmaker[AsyncSession], booking_id: int, subject: str,
                   which: str, now: datetime) -> int:
        async with sessionmaker() as session:
            booking = await session.get(Booking, booking_id)
            if booking is None:
                return 0
            key = f"booking-{booking.id}.reminder-{which}.{subject.replace(':', '-')}.v{booking.sequence}"
            if await session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_key == key)):
                return 0
            invitee = next(i for i in booking.invitees if i.subject == subject)
            info, _ = await self._notifier.session_info(session, booking)
            to = await self._notifier.recipient(session, invitee)
            links = await self._notifier.family_links(session, booking, subject)  # consent link if missing
            if which == "24h":
                msg = messages.reminder_day_before(self._notifier.organisation, info, to, links, key=key, now=now)
            else:
                checked = await latest_check(session, booking.id, subject) is not None
                msg = messages.reminder_hour_before(self._notifier.organisation, info, to, links, key=key, now=now,
                                                    device_checked=checked)
            if not await enqueue(session, msg, key, kind=f"reminder_{which}", now=now, booking_id=booking.id):
                await session.rollback()  # another node won the race: drop the links issued here
                return 0
            await session.commit()
            return 1
