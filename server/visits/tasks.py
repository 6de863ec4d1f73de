"""Periodic work of visits: overdue check-out alerts for lone working (policies/002_*, 003_*).

The alert state is in the database (``VisitAlert`` rows with the outbox email, in one transaction), so a
restart or a second node can neither lose an alert nor send it twice.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import Periodic
from server.visits.lonework import OverdueAlerts

ALERT_INTERVAL = 20.0  # seconds: an alert goes out at most this long after it falls due


def periodic(overdue: OverdueAlerts, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Periodic]:
    return [Periodic("overdue-visit-alerts", ALERT_INTERVAL, lambda: overdue.step(sessionmaker))]
