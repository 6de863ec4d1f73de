"""The safeguarding watch inside ``duet serve``: overdue visit check-outs and undiscussed concerns.

Every ``INTERVAL`` seconds of real waiting it asks the services what is due by the injected clock; all its
state is in the database, so a restart loses nothing and repeats nothing (server.visits.lonework). A failed
step is logged and retried on the next tick rather than ending the task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.services import Services

log = logging.getLogger(__name__)
INTERVAL = 20.0


@dataclass(frozen=True)
class WatchReport:
    visit_alerts: int
    concerns_escalated: int


async def watch_once(services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> WatchReport:
    """One pass: send due overdue-visit alerts and escalate concerns past their 24 hours."""
    return WatchReport(await services.overdue.step(sessionmaker),
                       await services.safeguarding.escalate_due(sessionmaker))


async def _loop(services: Services, sessionmaker: async_sessionmaker[AsyncSession], interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            report = await watch_once(services, sessionmaker)
            if report.visit_alerts or report.concerns_escalated:
                log.info("safeguarding watch: %s", report)
        except Exception:  # noqa: BLE001 - keep watching; the next tick retries from the database state
            log.exception("safeguarding watch step failed")


def watch_context(services: Services, sessionmaker: Callable[[], async_sessionmaker[AsyncSession]],
                  interval: float = INTERVAL) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running the watch while the app is up (``sessionmaker`` is read late,
    after the database context has opened it)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_loop(services, sessionmaker(), interval), name="safeguarding-watch")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
