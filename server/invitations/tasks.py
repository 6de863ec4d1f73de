"""Periodic work of the invitations feature: the reminder pass (safe on every node at once)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import Periodic
from server.invitations.reminders import Reminders

REMINDER_INTERVAL = 60.0  # seconds: a reminder is at most a minute late


def periodic(reminders: Reminders, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Periodic]:
    return [Periodic("booking-reminders", REMINDER_INTERVAL, lambda: reminders.run_once(sessionmaker),
                     run_now=True)]
