"""The audit chain: every event links to the one before; a change, removal or insertion is named."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor, AuditLog, event_hash, verify
from server.audit.models import AuditEvent
from server.clock import FakeClock

ACTOR = Actor("staff:1", "192.0.2.10")


@pytest.fixture
async def five_events(sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    log = AuditLog(clock)
    async with sessionmaker() as s:
        for n in range(1, 6):
            await log.record(s, ACTOR, "booking.created", f"booking:{n}", {"n": n})
            clock.advance(1)
        await s.commit()


async def test_an_untouched_chain_verifies(five_events: None, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        result = await verify(s)
    assert result.ok and result.events == 5


async def test_events_record_who_what_which_when_and_where(
    five_events: None, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        first = (await s.execute(select(AuditEvent).where(AuditEvent.seq == 1))).scalar_one()
    assert (first.actor, first.action, first.target, first.source) == (
        "staff:1", "booking.created", "booking:1", "192.0.2.10")
    assert first.at.tzinfo is not None and first.details == '{"n":1}'


async def test_a_changed_event_is_named(five_events: None, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(target="booking:99"))
        await s.commit()
        result = await verify(s)
    assert not result.ok and result.event_seq == 3 and "changed" in result.problem


async def test_a_removed_event_is_named(five_events: None, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
        await s.commit()
        result = await verify(s)
    assert not result.ok and result.event_seq == 2 and "removed" in result.problem


async def test_removing_the_last_events_is_caught(
    five_events: None, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
        await s.commit()
        result = await verify(s)
    assert not result.ok and "removed" in result.problem


async def test_an_inserted_event_is_named_even_with_a_valid_own_hash(
    five_events: None, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    """A forger who renumbers events and hashes their insert correctly still breaks the next link."""
    async with sessionmaker() as s:
        two = (await s.execute(select(AuditEvent).where(AuditEvent.seq == 2))).scalar_one()
        for seq in (5, 4, 3):
            await s.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1))
        forged_at = clock.now()
        digest = event_hash(two.hash, 3, forged_at, "staff:1", "recording.viewed", "recording:1", "{}", "")
        s.add(AuditEvent(seq=3, at=forged_at, actor="staff:1", action="recording.viewed", target="recording:1",
                         details="{}", source="", prev_hash=two.hash, hash=digest))
        await s.execute(text("UPDATE audit_head SET seq = 6"))
        await s.commit()
        result = await verify(s)
    assert not result.ok and result.event_seq == 4 and "inserted" in result.problem


async def test_an_event_rolls_back_with_its_change(
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    log = AuditLog(clock)
    async with sessionmaker() as s:
        await log.record(s, ACTOR, "x.done", "x:1")
        await s.rollback()
    async with sessionmaker() as s:
        assert (await verify(s)).events == 0
        await log.record(s, ACTOR, "x.done", "x:1")
        await s.commit()
        assert (await verify(s)).ok
