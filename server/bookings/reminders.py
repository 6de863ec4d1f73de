"""Reminders 24 hours and 1 hour before a session, safe to run on every node at once.

Each reminder's outbox key names the booking, the person, the SEQUENCE and the
reminder ("booking-4.reminder-24h.guardian-3.v0"); the outbox's unique key makes
a second node's insert a no-op, and a node that loses that race rolls back the
links it issued. Time comes from the injected Clock, so tests move a FakeClock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bookings.models import Booking, BookingKind, BookingStatus
from server.bookings.notify import BookingNotifier
from server.clock import Clock
from server.mail import messages
from server.mail.models import OutboxMessage
from server.mail.outbox import enqueue

log = logging.getLogger(__name__)
DAY, HOUR = timedelta(hours=24), timedelta(hours=1)

# Seam for the device-check results (another helper's work): given the open session, the booking and the
# invitee subject, say whether a device check has been recorded. Until one is wired in, nobody has checked,
# so the 1-hour reminder always asks for the check.
DeviceChecked = Callable[[AsyncSession, Booking, str], Awaitable[bool]]


async def no_check_recorded(session: AsyncSession, booking: Booking, subject: str) -> bool:
    return False


class Reminders:
    """Finds bookings due a reminder and enqueues one email per invitee, once."""

    def __init__(self, clock: Clock, notifier: BookingNotifier,
                 device_checked: DeviceChecked = no_check_recorded) -> None:
        self._clock = clock
        self._notifier = notifier
        self._device_checked = device_checked

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
                checked = await self._device_checked(session, booking, subject)
                msg = messages.reminder_hour_before(self._notifier.organisation, info, to, links, key=key, now=now,
                                                    device_checked=checked)
            if not await enqueue(session, msg, key, kind=f"reminder_{which}", now=now, booking_id=booking.id):
                await session.rollback()  # another node won the race: drop the links issued here
                return 0
            await session.commit()
            return 1


def reminders_context(reminders: Reminders, sessionmaker: Callable[[], async_sessionmaker[AsyncSession]],
                      interval: float = 60.0) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context checking for due reminders every ``interval`` seconds."""

    async def loop() -> None:
        while True:
            try:
                await reminders.run_once(sessionmaker())
            except Exception:  # keep the loop alive; the next pass retries
                log.exception("reminder pass failed")
            await asyncio.sleep(interval)

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(), name="booking-reminders")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
