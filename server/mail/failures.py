"""Emails that will not arrive without a person acting: recorded in the audit log and listed for staff.

A permanent failure (550 unknown user, too many attempts) writes a "mail.failed" audit event and stays in
the outbox with status "failed", which the staff dashboard lists through ``failed_mail`` so that a person
can fix the address and resend.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor, AuditLog
from server.mail.models import OutboxMessage, OutboxStatus
from server.mail.outbox import FailedMail, FailureCallback

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


async def failed_mail(session: AsyncSession, limit: int = 100) -> list[OutboxMessage]:
    """Emails that will not be delivered without a person acting, newest first."""
    rows = await session.execute(select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED.value)
                                 .order_by(OutboxMessage.id.desc()).limit(limit))
    return list(rows.scalars().all())
