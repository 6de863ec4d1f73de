"""Reminders 24 h and 1 h before: each once, even with two nodes scanning at the same moment."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bookings.models import Booking, BookingKind
from server.bookings.services import NewBooking
from server.clock import FakeClock
from server.invitations.reminders import Reminders
from server.invitations.services import BookingNotifier
from server.mail.models import OutboxMessage
from server.services import Services
from tests.support.org import SETUP, Org


async def _reminders(sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessionmaker() as s:
        rows = (await s.execute(select(OutboxMessage).where(OutboxMessage.kind.like("reminder%"))
                                .order_by(OutboxMessage.id))).scalars().all()
    return [(r.kind, r.subject) for r in rows]


async def test_day_and_hour_reminders_are_enqueued_once_by_two_nodes(
        org: Org, services: Services, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        booking: Booking = await services.bookings.create(s, SETUP, NewBooking(
            kind=BookingKind.LIVE_VIDEO, practitioner_id=org.other_tutor_id, client_id=org.child_id,
            starts_at=clock.now() + timedelta(days=2), duration_minutes=30, guardian_ids=(org.guardian_id,)))
        await s.commit()
    notifier = BookingNotifier(services.settings, clock, services.links, services.consent)
    nodes = [Reminders(clock, notifier) for _ in range(2)]
    assert await nodes[0].run_once(sessionmaker) == 0  # two days ahead: nothing yet
    clock.set(booking.starts_at - timedelta(hours=23))
    counts = await asyncio.gather(*(n.run_once(sessionmaker) for n in nodes))
    assert sum(counts) == 1
    clock.set(booking.starts_at - timedelta(minutes=50))
    counts = await asyncio.gather(*(n.run_once(sessionmaker) for n in nodes))
    assert sum(counts) == 1 and await nodes[1].run_once(sessionmaker) == 0
    got = [(kind, subject) for kind, subject in await _reminders(sessionmaker)]
    assert [k for k, _ in got] == ["reminder_24h", "reminder_1h"]
    assert got[1][1].endswith("please run the device check")  # no check recorded yet


async def test_a_booking_made_inside_the_hour_gets_no_reminder(
        org: Org, services: Services, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    reminders = Reminders(clock, BookingNotifier(services.settings, clock, services.links, services.consent))
    assert await reminders.run_once(sessionmaker) == 0  # org's booking was made an hour before it starts
    assert await _reminders(sessionmaker) == []
