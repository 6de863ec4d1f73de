"""The outbox: nothing lost, nothing sent twice, failures reported; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.db.engine import make_engine, make_sessionmaker
from server.errors import InvalidInput
from server.mail import tasks as mail_tasks
from server.mail.messages import Organisation, Recipient, staff_alert
from server.mail.models import OutboxMessage, OutboxStatus
from server.mail.outbox import FailedMail, RetryPolicy, Sender, enqueue
from server.mail.transports import SmtpTransport, TransientMailError, transport_from_url
from tests.support.databases import PG_URL as TEST_PG_URL
from tests.support.databases import async_url, pg_dsn, unavailable
from tests.support.smtp import SmtpTestServer

PG_URL = async_url(pg_dsn(TEST_PG_URL.rsplit("/", 1)[1]))  # the suite's one setting, DUET_TEST_POSTGRES
ORG = Organisation("Duet Music Service", "Duet <no-reply@duet.example.org>")
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
OUTBOX = cast(Table, OutboxMessage.__table__)


class RecordingTransport:
    """Counts what it is asked to send; yields to the loop so parallel senders interleave."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.arrived = asyncio.Event()

    async def send(self, message: EmailMessage) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        self.sent.append(str(message["Message-ID"]))
        self.arrived.set()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A fresh outbox table: an SQLite file, or a throwaway schema in the local PostgreSQL."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'duet.db'}")
        async with engine.begin() as conn:
            await conn.run_sync(OUTBOX.create)
        yield make_sessionmaker(engine)
        await engine.dispose()
        return
    schema = f"mail_test_{secrets.token_hex(4)}"
    admin = make_engine(PG_URL)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OSError as exc:
        await admin.dispose()
        unavailable(f"PostgreSQL not reachable at {PG_URL}: {exc}")
    engine = make_engine(PG_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        async with engine.begin() as conn:
            await conn.run_sync(OUTBOX.create)
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def alert(n: int, to: str = "lead@example.org") -> tuple[EmailMessage, str]:
    key = f"alert-{n}"
    msg = staff_alert(ORG, Recipient("Lee Lead", to), key=key, now=START, subject=f"Alert {n}", lines=["x"])
    return msg, key


async def put(
    sm: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    *numbers: int,
    to: str = "lead@example.org",
    booking_id: int | None = None,
) -> None:
    async with sm() as session, session.begin():
        for n in numbers:
            msg, key = alert(n, to)
            await enqueue(session, msg, key, kind="staff_alert", now=clock.now(), booking_id=booking_id)


async def rows(sm: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sm() as session:
        return list((await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def test_enqueue_rolls_back_with_the_callers_transaction(db: async_sessionmaker[AsyncSession]) -> None:
    clock = FakeClock(START)
    async with db() as session:
        async with session.begin():
            msg, key = alert(1)
            assert await enqueue(session, msg, key, kind="staff_alert", now=clock.now(), booking_id=42)
            await session.rollback()
    assert await rows(db) == []

    await put(db, clock, 1, booking_id=42)
    await put(db, clock, 1)  # same key again: idempotent
    [row] = await rows(db)
    assert (row.message_key, row.kind, row.recipient, row.booking_id) == (
        "alert-1",
        "staff_alert",
        "lead@example.org",
        42,
    )
    assert row.status == OutboxStatus.PENDING and row.attempts == 0 and row.created_at == START
    assert b"Message-ID: <alert-1@duet.example.org>" in row.body

    async with db() as session:
        with pytest.raises(InvalidInput, match="was not built from key"):
            await enqueue(session, msg, "alert-2", kind="staff_alert", now=clock.now())


async def test_two_senders_in_parallel_never_send_a_row_twice(db: async_sessionmaker[AsyncSession]) -> None:
    clock = FakeClock(START)
    await put(db, clock, *range(60))
    transports = [RecordingTransport() for _ in range(3)]
    senders = [Sender(db, t, clock, batch_size=4) for t in transports]
    while True:
        reports = await asyncio.gather(*(s.send_pending_once() for s in senders))
        if sum(r.handled for r in reports) == 0:
            break
    assert all(t.sent for t in transports)  # they really worked side by side
    counts = Counter(mid for t in transports for mid in t.sent)
    assert len(counts) == 60
    assert max(counts.values()) == 1
    assert {r.status for r in await rows(db)} == {OutboxStatus.SENT}


async def test_leased_row_is_not_taken_by_another_sender_until_the_lease_runs_out(
    db: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock(START)
    await put(db, clock, 1, 2)
    release = asyncio.Event()
    entered = asyncio.Event()
    slow_sent: list[str] = []

    class Stuck:
        async def send(self, message: EmailMessage) -> None:
            entered.set()
            await release.wait()
            slow_sent.append(str(message["Message-ID"]))

    stuck = Sender(db, Stuck(), clock, batch_size=1, lease=timedelta(minutes=5))
    first = asyncio.create_task(stuck.send_pending_once())
    await asyncio.wait_for(entered.wait(), timeout=10)
    assert [r.status for r in await rows(db)] == [OutboxStatus.SENDING, OutboxStatus.PENDING]

    other = RecordingTransport()
    fast = Sender(db, other, clock, batch_size=10)
    assert (await fast.send_pending_once()).sent == 1  # only the row nobody holds
    assert (await fast.send_pending_once()).handled == 0

    clock.advance(timedelta(minutes=6))  # the stuck sender "died": its lease ran out
    assert (await fast.send_pending_once()).sent == 1
    assert sorted(other.sent) == ["<alert-1@duet.example.org>", "<alert-2@duet.example.org>"]

    release.set()
    await first  # the late sender cannot overwrite the new holder's outcome
    assert {r.status for r in await rows(db)} == {OutboxStatus.SENT}


async def test_smtp_down_nothing_lost_delivered_when_it_returns(
    db: async_sessionmaker[AsyncSession], smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    clock = FakeClock(START)
    transport = transport_from_url(smtp_server.url, tmp_path)
    sender = Sender(db, transport, clock, retry=RetryPolicy(base=timedelta(seconds=30)))
    await put(db, clock, 1, 2, 3)
    smtp_server.stop()

    assert (await sender.send_pending_once()).retrying == 3
    pending = await rows(db)
    assert {(r.status, r.attempts) for r in pending} == {(OutboxStatus.PENDING, 1)}
    assert all(r.next_attempt_at == START + timedelta(seconds=30) for r in pending)
    assert all("cannot reach" in (r.last_error or "") for r in pending)

    assert (await sender.send_pending_once()).handled == 0  # not due yet
    clock.advance(30)
    assert (await sender.send_pending_once()).retrying == 3
    assert {(r.attempts, r.next_attempt_at) for r in await rows(db)} == {(2, START + timedelta(seconds=90))}

    smtp_server.start()
    clock.advance(59)
    assert (await sender.send_pending_once()).handled == 0  # back-off respected
    clock.advance(1)
    assert (await sender.send_pending_once()).sent == 3
    got = sorted(str(m.message["Message-ID"]) for m in smtp_server.messages)
    assert got == [f"<alert-{n}@duet.example.org>" for n in (1, 2, 3)]
    assert all(r.status == OutboxStatus.SENT and r.sent_at == clock.now() for r in await rows(db))


async def test_unknown_user_fails_once_and_tells_on_failure(
    db: async_sessionmaker[AsyncSession], smtp_server: SmtpTestServer, tmp_path: Path
) -> None:
    clock = FakeClock(START)
    smtp_server.reject.add("gone@example.org")
    failures: list[FailedMail] = []

    async def on_failure(failed: FailedMail) -> None:
        failures.append(failed)

    transport = transport_from_url(smtp_server.url, tmp_path)
    assert isinstance(transport, SmtpTransport)
    sender = Sender(db, transport, clock, on_failure=on_failure)
    await put(db, clock, 1, to="gone@example.org", booking_id=7)
    await put(db, clock, 2)
    report = await sender.send_pending_once()
    assert (report.sent, report.failed) == (1, 1)
    [failed] = failures
    assert (failed.message_key, failed.booking_id, failed.recipient) == ("alert-1", 7, "gone@example.org")
    assert "550" in failed.error and "User unknown" in failed.error
    clock.advance(timedelta(days=2))
    assert (await sender.send_pending_once()).handled == 0  # never retried
    bad = (await rows(db))[0]
    assert bad.status == OutboxStatus.FAILED and "User unknown" in (bad.last_error or "")


async def test_gives_up_after_max_attempts_with_growing_delays(db: async_sessionmaker[AsyncSession]) -> None:
    clock = FakeClock(START)
    failures: list[FailedMail] = []

    class Down:
        async def send(self, message: EmailMessage) -> None:
            raise TransientMailError("connection refused")

    async def on_failure(failed: FailedMail) -> None:
        failures.append(failed)

    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(seconds=60), max_attempts=5)
    sender = Sender(db, Down(), clock, retry=policy, on_failure=on_failure)
    await put(db, clock, 1)
    delays = []
    for _ in range(4):
        await sender.send_pending_once()
        [row] = await rows(db)
        delays.append((row.next_attempt_at - clock.now()).total_seconds())
        clock.set(row.next_attempt_at)
    assert delays == [10, 20, 40, 60]
    assert (await sender.send_pending_once()).failed == 1
    [failed] = failures
    assert failed.attempts == 5 and "gave up after 5 attempts" in failed.error


async def test_the_sender_loop_delivers_each_time_its_interval_passes(db: async_sessionmaker[AsyncSession]) -> None:
    clock = FakeClock(START)
    transport = RecordingTransport()
    sender = Sender(db, transport, clock)
    [work] = mail_tasks.periodic(sender)
    await put(db, clock, 1)
    call = clock.every(work.interval, work.run, name=work.name, run_now=work.run_now)
    try:
        await call.wait_runs(1)  # the first run is at start-up
        assert transport.sent == ["<alert-1@duet.example.org>"]
        await put(db, clock, 2)
        clock.advance(work.interval)
        await call.wait_runs(2)
        assert transport.sent == ["<alert-1@duet.example.org>", "<alert-2@duet.example.org>"]
    finally:
        await call.stop()
    assert not call.running


async def test_a_transport_bug_on_one_row_does_not_stop_the_batch(
    db: async_sessionmaker[AsyncSession],
) -> None:
    clock = FakeClock(START)
    delivered: list[str] = []

    class Buggy:
        async def send(self, message: EmailMessage) -> None:
            if message["Message-ID"] == "<alert-1@duet.example.org>":
                raise RuntimeError("boom")
            delivered.append(str(message["Message-ID"]))

    await put(db, clock, 1, 2)
    report = await Sender(db, Buggy(), clock).send_pending_once()
    assert (report.retrying, report.sent) == (1, 1)
    first = (await rows(db))[0]
    assert first.status == OutboxStatus.PENDING and "internal error: RuntimeError: boom" in (
        first.last_error or ""
    )
    assert delivered == ["<alert-2@duet.example.org>"]
