"""The audit chain: keyed, anchored outside the database; each kind of rewriting is caught and named.

The forger in these tests can write the database (and knows the code) but not the app secret, so they
re-hash what they change with the chain's public SHA-256 scheme, the best they can do.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor, AuditLog, event_hash
from server.audit.models import AuditEvent, AuditHead
from server.clock import FakeClock
from server.keys import AppKeys

ACTOR = Actor("staff:1", "192.0.2.10")


@pytest.fixture
def audit(clock: FakeClock, tmp_path: Path) -> AuditLog:
    """A checkpoint every two events: five events leave checkpoints at 2 and 4, and event 5 unanchored."""
    return AuditLog(clock, AppKeys.ensure(tmp_path / "keys"), tmp_path / "anchors", checkpoint_every=2)


@pytest.fixture
async def five_events(audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock) -> None:
    async with sessionmaker() as s:
        for n in range(1, 6):
            await audit.record(s, ACTOR, "booking.created", f"booking:{n}", {"n": n})
            clock.advance(1)
            await s.commit()


async def _events(s: AsyncSession) -> list[AuditEvent]:
    return list((await s.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars())


async def _rehash_from(s: AsyncSession, first: int) -> None:
    """What a forger does after a change: re-link every later event with SHA-256 and move the head."""
    events = await _events(s)
    prev = events[first - 2].hash if first > 1 else "0" * 64
    for ev in events[first - 1:]:
        digest = event_hash(prev, ev.seq, ev.at, ev.actor, ev.action, ev.target, ev.details, ev.source)
        await s.execute(update(AuditEvent).where(AuditEvent.id == ev.id).values(prev_hash=prev, hash=digest))
        prev = digest
    await s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=events[-1].seq, last_hash=prev))
    await s.commit()


async def test_an_untouched_chain_verifies_against_its_checkpoints(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with sessionmaker() as s:
        result = await audit.verify(s)
    assert result.ok and result.events == 5, result.problem
    assert result.checkpoints == 2 and result.anchored_seq == 4
    files = sorted((tmp_path / "anchors").glob("checkpoint-*.json"))
    assert [json.loads(f.read_text())["seq"] for f in files] == [2, 4]
    assert oct(files[0].stat().st_mode & 0o777) == "0o600"
    assert oct((tmp_path / "anchors").stat().st_mode & 0o777) == "0o700"


async def test_events_record_who_what_which_when_and_where(
    five_events: None, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        first = (await s.execute(select(AuditEvent).where(AuditEvent.seq == 1))).scalar_one()
    assert (first.actor, first.action, first.target, first.source) == (
        "staff:1", "booking.created", "booking:1", "192.0.2.10")
    assert first.at.tzinfo is not None and first.details == '{"n":1}'


async def test_an_edit_with_recomputed_hashes_is_named(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(target="booking:99"))
        await _rehash_from(s, 3)
        # and claims the keyed chain starts after the edit, so event 3 would pass as an old unkeyed one
        await s.execute(update(AuditHead).where(AuditHead.id == 1).values(keyed_from=6))
        await s.commit()
        result = await audit.verify(s)
    assert not result.ok and result.event_seq == 3 and "changed" in result.problem


async def test_a_deletion_with_renumbering_is_named(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 2))
        for seq in (3, 4, 5):
            await s.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq - 1))
        await s.commit()
        await _rehash_from(s, 2)
        result = await audit.verify(s)
    assert not result.ok and result.event_seq == 2, result.problem


async def test_a_cut_tail_with_the_head_rewound_is_caught_by_the_checkpoint(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        three = (await s.execute(select(AuditEvent).where(AuditEvent.seq == 3))).scalar_one()
        await s.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
        await s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=3, last_hash=three.hash))
        await s.commit()
        result = await audit.verify(s)
    assert not result.ok and result.event_seq == 4
    assert "removed" in result.problem and "checkpoint-000000000004" in result.problem


async def test_a_wiped_log_is_not_ok_with_zero_events(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        await s.execute(delete(AuditEvent))
        await s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=0, last_hash="0" * 64))
        await s.commit()
        result = await audit.verify(s)
        assert not result.ok and result.event_seq == 1 and "wiped" in result.problem
        await s.execute(delete(AuditHead))  # the head row gone too
        await s.commit()
        assert not (await audit.verify(s)).ok


async def test_a_forged_event_is_named_even_when_linked_and_hashed(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    async with sessionmaker() as s:
        five = (await s.execute(select(AuditEvent).where(AuditEvent.seq == 5))).scalar_one()
        at = clock.now()
        digest = event_hash(five.hash, 6, at, "staff:1", "recording.viewed", "recording:1", "{}", "")
        s.add(AuditEvent(seq=6, at=at, actor="staff:1", action="recording.viewed", target="recording:1",
                         details="{}", source="", prev_hash=five.hash, hash=digest))
        await s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=6, last_hash=digest))
        await s.commit()
        result = await audit.verify(s)
    assert not result.ok and result.event_seq == 6 and "forged" in result.problem


async def test_an_inserted_event_is_named_even_with_the_rest_renumbered(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    async with sessionmaker() as s:
        for seq in (5, 4, 3):
            await s.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1))
        s.add(AuditEvent(seq=3, at=clock.now(), actor="staff:1", action="recording.viewed", target="recording:1",
                         details="{}", source="", prev_hash="", hash=""))
        await s.commit()
        await _rehash_from(s, 3)
        result = await audit.verify(s)
    assert not result.ok and result.event_seq == 3


async def test_checkpoint_files_cannot_be_forged_or_removed_from_the_middle(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    first, second = sorted((tmp_path / "anchors").glob("checkpoint-*.json"))
    data = json.loads(second.read_text())
    data["seq"] = 3
    second.write_text(json.dumps(data))
    async with sessionmaker() as s:
        result = await audit.verify(s)
        assert not result.ok and "not signed" in result.problem
        second.unlink()
        assert (await audit.verify(s)).ok  # the newest file gone: only its own protection is lost
        await audit.record(s, ACTOR, "x.done", "x:1")
        await s.commit()  # event 6: a checkpoint that follows the first file
        first.unlink()
        result = await audit.verify(s)
    assert not result.ok and "missing" in result.problem


async def test_a_checkpoint_is_written_only_for_committed_events(
    audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    async with sessionmaker() as s:
        await audit.record(s, ACTOR, "x.done", "x:1")
        await audit.record(s, ACTOR, "x.done", "x:2")
        await s.rollback()  # seq 1 and 2 will be used again, by other events
        assert not list((tmp_path / "anchors").glob("checkpoint-*"))
        await audit.record(s, ACTOR, "y.done", "y:1")
        await audit.record(s, ACTOR, "y.done", "y:2")
        await audit.record(s, ACTOR, "y.done", "y:3")
        await s.commit()
        assert [json.loads(f.read_text())["seq"] for f in (tmp_path / "anchors").glob("checkpoint-*")] == [3]
        assert (await audit.verify(s)).ok


async def test_the_daily_checkpoint_anchors_the_committed_head(
    five_events: None, audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        written = await audit.checkpoint(s)
        assert written is not None and json.loads(written.read_text())["seq"] == 5
        assert await audit.checkpoint(s) is None  # nothing new
        await s.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
        await s.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=4))
        await s.commit()
        result = await audit.verify(s)
    assert not result.ok and result.event_seq == 5


async def test_an_event_rolls_back_with_its_change(
    audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        await audit.record(s, ACTOR, "x.done", "x:1")
        await s.rollback()
    async with sessionmaker() as s:
        assert (await audit.verify(s)).events == 0
        await audit.record(s, ACTOR, "x.done", "x:1")
        await s.commit()
        assert (await audit.verify(s)).ok


async def test_a_chain_from_before_the_key_continues_and_is_sealed(
    audit: AuditLog, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    """An upgraded installation: three unkeyed events, then keyed ones; the first keyed event seals them."""
    async with sessionmaker() as s:
        prev = "0" * 64
        for seq in (1, 2, 3):
            digest = event_hash(prev, seq, clock.now(), "cli", "staff.created", f"staff:{seq}", "{}", "cli")
            s.add(AuditEvent(seq=seq, at=clock.now(), actor="cli", action="staff.created", target=f"staff:{seq}",
                             details="{}", source="cli", prev_hash=prev, hash=digest))
            prev = digest
        await s.execute(text("UPDATE audit_head SET seq = 3, last_hash = :h, keyed_from = NULL"), {"h": prev})
        await s.commit()
        assert (await audit.verify(s)).legacy_events == 3
        await audit.record(s, ACTOR, "x.done", "x:1")
        await s.commit()
        result = await audit.verify(s)
        assert result.ok and result.events == 4 and result.legacy_events == 3, result.problem
        head = await s.get(AuditHead, 1)
        assert head is not None and head.keyed_from == 4
        await s.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(target="staff:99"))
        await s.commit()
        await _rehash_from(s, 2)  # the old part re-hashed consistently: the keyed event 4 no longer follows
        result = await audit.verify(s)
    assert not result.ok and result.event_seq == 4
