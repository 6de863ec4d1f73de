"""Periodic work of safeguarding: escalating concerns not discussed within 24 hours.

All its state is in the database (each concern is escalated once, leased on PostgreSQL), so a restart
loses nothing and repeats nothing, and several nodes may run it at once.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import Periodic
from server.safeguarding.services import SafeguardingService

ESCALATION_INTERVAL = 20.0  # seconds: an overdue concern is escalated at most this late


def periodic(safeguarding: SafeguardingService, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Periodic]:
    return [Periodic("concern-escalation", ESCALATION_INTERVAL, lambda: safeguarding.escalate_due(sessionmaker))]
