"""Transactional outbox: enqueue in the caller's transaction, deliver later with leases and retries.

``enqueue`` only writes into the caller's session, so the email commits (or rolls
back) with the booking change that caused it. ``Sender`` leases due rows (on
PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED`` so any number of nodes can
run it, docs/architecture.md, "Growing past one machine"; on SQLite, whose writers are
serialised, with a conditional UPDATE), sends them outside any transaction,
and records the outcome only if it still holds the lease.

Delivery is at-least-once: if a node dies after the SMTP server accepted a
message but before the row is marked sent, the row is sent again when its lease
runs out, with the same Message-ID, which receivers use to spot the duplicate.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP

from sqlalchemy import ColumnElement, and_, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import Clock
from server.errors import InvalidInput
from server.mail.headers import header_text
from server.mail.models import OutboxMessage, OutboxStatus
from server.mail.transports import MailTransport, PermanentMailError, TransientMailError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailedMail:
    """What ``on_failure`` is told about a message that will not be delivered."""

    id: int
    message_key: str
    kind: str
    recipient: str
    booking_id: int | None
    attempts: int
    error: str


@dataclass(frozen=True)
class SendReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0

    @property
    def handled(self) -> int:
        return self.sent + self.retrying + self.failed


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off: ``base * 2**(attempt-1)``, capped; give up after ``max_attempts``.

    The defaults retry for about a day (30 s, 1 min, 2 min ... then hourly), long
    enough to ride out a mail server outage, short enough that staff hear about
    an invitation that never left before the session.
    """

    base: timedelta = timedelta(seconds=30)
    cap: timedelta = timedelta(hours=1)
    max_attempts: int = 30

    def delay(self, attempts: int) -> timedelta:
        step = self.base * (2 ** min(max(attempts - 1, 0), 30))
        return min(step, self.cap)


async def enqueue(
    session: AsyncSession,
    message: EmailMessage,
    key: str,
    *,
    kind: str,
    now: datetime,
    booking_id: int | None = None,
) -> bool:
    """Add ``message`` to the outbox inside the caller's transaction; the caller commits.

    Idempotent on ``key``: enqueueing the same key again (a retried request) adds
    nothing and returns False. The key must be the one the message's Message-ID
    was built from.
    """
    mid = str(message["Message-ID"] or "")
    if not mid.startswith(f"<{key}@"):
        raise InvalidInput(f"The message's Message-ID {mid!r} was not built from key {key!r}.", field="key")
    header_text(kind, field="kind", limit=40)
    to = message["To"]
    if to is None or not to.addresses:
        raise InvalidInput("The message has no To address.", field="recipient")
    values = {
        "message_key": key,
        "kind": kind,
        "recipient": ", ".join(a.addr_spec for a in to.addresses)[:1000],
        "subject": str(message["Subject"] or "")[:250],
        "body": message.as_bytes(policy=SMTP),
        "booking_id": booking_id,
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg_stmt = (
            postgresql.insert(OutboxMessage)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["message_key"])
        )
        result = await session.execute(pg_stmt)
    elif dialect == "sqlite":
        lite_stmt = (
            sqlite.insert(OutboxMessage)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["message_key"])
        )
        result = await session.execute(lite_stmt)
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {dialect}")
    return bool(getattr(result, "rowcount", 0))


FailureCallback = Callable[[FailedMail], Awaitable[None]]


@dataclass(frozen=True)
class _Lease:
    id: int
    token: str
    body: bytes
    attempts: int
    message_key: str
    kind: str
    recipient: str
    booking_id: int | None


class Sender:
    """Delivers due outbox rows through a ``MailTransport``; safe to run on every node at once."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: MailTransport,
        clock: Clock,
        *,
        on_failure: FailureCallback | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int = 20,
        lease: timedelta = timedelta(minutes=5),
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._sessionmaker = sessionmaker
        self._transport = transport
        self._clock = clock
        self._on_failure = on_failure
        self._retry = retry or RetryPolicy()
        self._batch = batch_size
        self._lease = lease

    async def send_pending_once(self) -> SendReport:
        """Lease one batch of due rows, send each, and record the outcome."""
        leases = await self._claim()
        sent = retrying = failed = 0
        for lease in leases:
            outcome = await self._deliver(lease)
            if outcome == OutboxStatus.SENT:
                sent += 1
            elif outcome == OutboxStatus.FAILED:
                failed += 1
            else:
                retrying += 1
        return SendReport(sent=sent, retrying=retrying, failed=failed)

    async def send_due(self) -> SendReport:
        """Send every row that is due, batch after batch, until a batch comes back short or nothing in it
        went out (only retries left): ``duet mail send-pending`` and each tick of ``duet serve``'s sender."""
        total = SendReport()
        while True:
            report = await self.send_pending_once()
            total = SendReport(total.sent + report.sent, total.retrying + report.retrying,
                               total.failed + report.failed)
            if report.handled < self._batch or report.sent + report.failed == 0:
                return total

    # ---- leasing ----------------------------------------------------------

    def _due(self, now: datetime) -> ColumnElement[bool]:
        return or_(
            and_(OutboxMessage.status == OutboxStatus.PENDING.value, OutboxMessage.next_attempt_at <= now),
            # a sender that died mid-send: its lease ran out, so the row is due again
            and_(OutboxMessage.status == OutboxStatus.SENDING.value, OutboxMessage.leased_until < now),
        )

    async def _claim(self) -> list[_Lease]:
        now = self._clock.now()
        token = secrets.token_hex(16)
        async with self._sessionmaker() as session, session.begin():
            due = (
                select(OutboxMessage.id)
                .where(self._due(now))
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(self._batch)
            )
            if session.get_bind().dialect.name == "postgresql":
                ids = list((await session.scalars(due.with_for_update(skip_locked=True))).all())
                if not ids:
                    return []
                target: ColumnElement[bool] = OutboxMessage.id.in_(ids)
            else:
                # SQLite serialises writers, so this UPDATE is the lock.
                target = and_(OutboxMessage.id.in_(due.scalar_subquery()), self._due(now))
            await session.execute(
                update(OutboxMessage)
                .where(target)
                .values(
                    status=OutboxStatus.SENDING.value,
                    lease_token=token,
                    leased_until=now + self._lease,
                    attempts=OutboxMessage.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            rows = (
                await session.execute(
                    select(
                        OutboxMessage.id,
                        OutboxMessage.body,
                        OutboxMessage.attempts,
                        OutboxMessage.message_key,
                        OutboxMessage.kind,
                        OutboxMessage.recipient,
                        OutboxMessage.booking_id,
                    )
                    .where(OutboxMessage.lease_token == token)
                    .order_by(OutboxMessage.id)
                )
            ).all()
        return [_Lease(r[0], token, r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]

    # ---- sending ----------------------------------------------------------

    async def _deliver(self, lease: _Lease) -> OutboxStatus:
        message = message_from_bytes(lease.body, policy=SMTP)
        assert isinstance(message, EmailMessage)  # noqa: S101 - EmailPolicy always builds EmailMessage
        try:
            await self._transport.send(message)
        except PermanentMailError as exc:
            return await self._fail(lease, exc.reason)
        except Exception as exc:
            # TransientMailError, or a bug in a transport: keep the row and retry later,
            # so one bad row cannot stop the rest of the batch.
            if not isinstance(exc, TransientMailError):
                log.exception("outbox: unexpected error sending %s", lease.message_key)
                exc = TransientMailError(f"internal error: {type(exc).__name__}: {exc}")
            if lease.attempts >= self._retry.max_attempts:
                return await self._fail(lease, f"gave up after {lease.attempts} attempts: {exc.reason}")
            await self._finish(
                lease,
                status=OutboxStatus.PENDING,
                next_attempt_at=self._clock.now() + self._retry.delay(lease.attempts),
                last_error=exc.reason[:2000],
            )
            log.info("outbox: %s deferred (attempt %d): %s", lease.message_key, lease.attempts, exc.reason)
            return OutboxStatus.PENDING
        await self._finish(lease, status=OutboxStatus.SENT, sent_at=self._clock.now(), last_error=None)
        return OutboxStatus.SENT

    async def _fail(self, lease: _Lease, reason: str) -> OutboxStatus:
        if not await self._finish(lease, status=OutboxStatus.FAILED, last_error=reason[:2000]):
            return OutboxStatus.FAILED
        log.warning("outbox: %s failed: %s", lease.message_key, reason)
        if self._on_failure is not None:
            failed = FailedMail(
                lease.id,
                lease.message_key,
                lease.kind,
                lease.recipient,
                lease.booking_id,
                lease.attempts,
                reason,
            )
            try:
                await self._on_failure(failed)
            except Exception:
                log.exception("outbox: on_failure callback raised for %s", lease.message_key)
        return OutboxStatus.FAILED

    async def _finish(self, lease: _Lease, *, status: OutboxStatus, **values: object) -> bool:
        """Record an outcome only while still holding the lease; False if another sender took over."""
        async with self._sessionmaker() as session, session.begin():
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == lease.id, OutboxMessage.lease_token == lease.token)
                .values(status=status.value, lease_token=None, leased_until=None, **values)
                .execution_options(synchronize_session=False)
            )
        return bool(getattr(result, "rowcount", 0))
