"""Periodic work of the audit log inside ``duet serve``: anchor the head outside the database, then verify.

At start-up it anchors the head at once (so an upgraded installation's old chain is anchored before
anything else happens), then once a day. A broken chain is logged as an error naming the first bad event.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import AuditLog
from server.audit.verify import VerifyResult
from server.clock import Periodic

log = logging.getLogger(__name__)
DAY = 24 * 3600.0


async def run_once(audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]) -> VerifyResult:
    """Checkpoint the committed head, then verify the whole chain against every checkpoint."""
    async with sessionmaker() as session:
        written = await audit.checkpoint(session)
        if written is not None:
            log.info("audit checkpoint written: %s", written.name)
        result = await audit.verify(session)
    if result.ok:
        log.info("%s", "; ".join(result.lines()))
    else:
        log.error("%s", result.lines()[0])
    return result


def periodic(audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]) -> list[Periodic]:
    """Anchor and verify at start-up and then once a day (``duet serve`` anchors once more at shutdown)."""
    return [Periodic("audit-daily", DAY, lambda: run_once(audit, sessionmaker), run_now=True)]
