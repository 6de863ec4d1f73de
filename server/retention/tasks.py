"""Periodic work of retention: the daily run (tried every hour until it has run that day)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import Periodic
from server.retention.job import RetentionJob

CHECK_INTERVAL = 3600.0  # a failed run is retried an hour later; a good one waits a day


def periodic(job: RetentionJob, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Periodic]:
    return [Periodic("retention", CHECK_INTERVAL, lambda: job.run_if_due(sessionmaker), run_now=True)]
