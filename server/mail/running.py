"""Running the outbox Sender inside Duet: in `duet serve`, once from the CLI, and failures for staff.

A permanent failure (550 unknown user, too many attempts) writes a "mail.failed"
audit event and stays in the outbox with status "failed", which the staff
dashboard lists through ``failed_mail`` so a person can fix the address and resend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.config import Settings
from server.mail.models import OutboxMessage, OutboxStatus
from server.mail.outbox import FailedMail, FailureCallback, Sender, SendReport
from server.mail.setup import mail_from_settings

MAILER = Actor("system", "mail sender")


def failure_recorder(sessionmaker: async_sessionmaker[AsyncSession], audit: AuditLog) -> FailureCallback:
    """An ``on_failure`` callback that writes the audit event in its own transaction."""

    async def record(failed: FailedMail) -> None:
        async with sessionmaker() as session:
            target = f"booking:{failed.booking_id}" if failed.booking_id else f"mail:{failed.id}"
            await audit.record(session, MAILER, "mail.failed", target, {
                "outbox_id": failed.id, "kind": failed.kind, "recipient": failed.recipient,
                "attempts": failed.attempts, "error": failed.error[:500]})
            await session.commit()

    return record


def make_sender(settings: Settings, clock: Clock, sessionmaker: async_sessionmaker[AsyncSession],
                audit: AuditLog) -> Sender:
    """The Sender with the transport DUET_MAIL_URL names (a ConfigError if it is wrong)."""
    setup = mail_from_settings(settings, contact=settings.contact_email or None)
    return Sender(sessionmaker, setup.transport, clock, on_failure=failure_recorder(sessionmaker, audit))


async def send_pending(settings: Settings, clock: Clock, sessionmaker: async_sessionmaker[AsyncSession],
                       audit: AuditLog) -> SendReport:
    """Send every due row once (``duet mail send-pending``); batches until none is left."""
    sender = make_sender(settings, clock, sessionmaker, audit)
    total = SendReport()
    while True:
        report = await sender.send_pending_once()
        total = SendReport(total.sent + report.sent, total.retrying + report.retrying, total.failed + report.failed)
        if report.handled == 0 or report.sent + report.failed == 0:
            return total


def sender_context(settings: Settings, clock: Clock, audit: AuditLog,
                   sessionmaker: Callable[[], async_sessionmaker[AsyncSession]]
                   ) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context running the Sender while `duet serve` is up (sessionmaker read late)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        sender = make_sender(settings, clock, sessionmaker(), audit)
        stop = asyncio.Event()
        task = asyncio.create_task(sender.run_forever(stop), name="mail-sender")
        yield
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def failed_mail(session: AsyncSession, limit: int = 100) -> list[OutboxMessage]:
    """Emails that will not be delivered without a person acting, newest first."""
    rows = await session.execute(select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED.value)
                                 .order_by(OutboxMessage.id.desc()).limit(limit))
    return list(rows.scalars().all())
