"""The retention job inside ``duet serve`` and behind ``duet retention run``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import AuditLog
from server.clock import Clock
from server.config import Settings
from server.recording.setup import store_from_settings
from server.retention.job import RetentionJob
from server.retention.loader import load_policies


def job_from_settings(settings: Settings, clock: Clock, audit: AuditLog) -> RetentionJob:
    return RetentionJob(load_policies(settings.storage_policies), clock, audit, store_from_settings(settings),
                        settings.home / "spool", settings.time_zone)


def retention_context(settings: Settings, clock: Clock, audit: AuditLog,
                      sessionmaker: Callable[[], async_sessionmaker[AsyncSession]]
                      ) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        job = job_from_settings(settings, clock, audit)
        task = asyncio.create_task(job.run_daily(sessionmaker()))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run
