"""The retention job with an injected clock: erased on time, kept while held, resumed after a crash."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.errors import Gone
from server.people.models import Client
from server.recording.models import Recording, RecordingHold
from server.recording.review import ReviewService
from server.recording.stores import FolderStore, RecordingStore, StoreUnavailable
from server.retention import tasks as retention_tasks
from server.retention.dates import EraseDates
from server.retention.job import RetentionJob
from server.safeguarding.models import Concern
from server.services import Services
from server.storage_policies.loader import load_policies
from tests.support.org import Org
from tests.support.recordings import add_fake_recording

POLICIES = Path(__file__).resolve().parents[2] / "storage_policies"


@pytest.fixture
def store(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path / "recordings")


@pytest.fixture
def job(services: Services, clock: FakeClock, store: FolderStore, tmp_path: Path) -> RetentionJob:
    return RetentionJob(EraseDates(load_policies(POLICIES), clock, services.audit), store, tmp_path / "spool")


async def record(sm: async_sessionmaker[AsyncSession], store: RecordingStore, org: Org, clock: FakeClock
                 ) -> uuid.UUID:
    """A stored recording of org.booking_id with two sealed chunks (the bytes do not matter here)."""
    async with sm() as s:
        rid = await add_fake_recording(s, org.booking_id, clock.now())
        await s.commit()
    for index in range(2):
        await store.put_chunk(rid, index, b"sealed chunk")
    return rid


async def state(sm: async_sessionmaker[AsyncSession], rid: uuid.UUID) -> Recording:
    async with sm() as s:
        row = await s.get(Recording, rid)
        assert row is not None
        return row


async def test_a_tuition_recording_is_erased_28_days_after_the_session(
    job: RetentionJob, store: FolderStore, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clock.advance(timedelta(hours=1))  # the session takes place
    rid = await record(sessionmaker, store, org, clock)
    assert await job.run(sessionmaker) == []
    row = await state(sessionmaker, rid)
    assert row.policy_id == "tuition-monitoring" and row.erase_at is not None
    assert row.erase_at.date() == date(2026, 12, 21)  # 23 Nov + 28 days
    clock.set(row.erase_at - timedelta(hours=2))
    assert await job.run(sessionmaker, dry_run=True) == []
    clock.advance(timedelta(hours=3))
    planned = await job.run(sessionmaker, dry_run=True)
    assert [d.action for d in planned] == ["erase"] and await store.exists(rid)  # a dry run changes nothing
    done = await job.run(sessionmaker)
    assert [(d.recording_id, d.action) for d in done] == [(str(rid), "erase")]
    row = await state(sessionmaker, rid)
    assert row.wrapped_key is None and row.erased_at is not None  # crypto-shredded
    assert not await store.exists(rid)
    async with sessionmaker() as s:
        erased = (await s.execute(select(AuditEvent).where(AuditEvent.action == "recording.erased"))).scalar_one()
    assert erased.target == f"recording:{rid}" and "tuition-monitoring" in erased.details
    assert await job.run(sessionmaker) == []  # idempotent
    review = ReviewService(store, wrapper=None, audit=job.audit)  # type: ignore[arg-type]  # never unwraps here
    async with sessionmaker() as s:
        with pytest.raises(Gone, match="erased on 2026-12-21 under the tuition-monitoring policy"):
            await review.get(s, rid)


async def test_a_hold_keeps_a_recording_past_its_date_until_lifted(
    job: RetentionJob, store: FolderStore, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clock.advance(timedelta(hours=1))
    rid = await record(sessionmaker, store, org, clock)
    async with sessionmaker() as s:  # a concern about the client elsewhere: every recording of theirs is held
        concern = Concern(category="other", details="x", raised_by=f"staff:{org.safeguarding_id}",
                          raised_by_staff_id=org.safeguarding_id, booking_id=None, client_id=org.child_id,
                          raised_at=clock.now(), discuss_by=clock.now() + timedelta(days=1))
        s.add(concern)
        await s.flush()
        s.add(RecordingHold(concern_id=concern.id, client_id=org.child_id, reason="evidence",
                            placed_by_id=org.safeguarding_id, placed_at=clock.now()))
        await s.commit()
    clock.advance(timedelta(days=60))
    assert [d.action for d in await job.run(sessionmaker)] == []  # the safeguarding policy now applies: years
    assert (await state(sessionmaker, rid)).policy_id == "safeguarding-concern"
    async with sessionmaker() as s:
        hold = (await s.execute(select(RecordingHold))).scalar_one()
        hold.lifted_at, hold.lifted_by_id = clock.now(), org.safeguarding_id
        await s.commit()
    done = await job.run(sessionmaker)  # not about this session: back to 28 days, long past
    assert [d.action for d in done] == ["erase"] and not await store.exists(rid)


async def test_a_concern_about_the_session_keeps_its_recording_under_the_safeguarding_policy(
    job: RetentionJob, store: FolderStore, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    clock.advance(timedelta(hours=1))
    rid = await record(sessionmaker, store, org, clock)
    async with sessionmaker() as s:
        s.add(Concern(category="other", details="x", raised_by=f"staff:{org.tutor_id}",
                      raised_by_staff_id=org.tutor_id, booking_id=org.booking_id, client_id=org.child_id,
                      raised_at=clock.now(), discuss_by=clock.now() + timedelta(days=1)))
        await s.commit()
    clock.advance(timedelta(days=60))  # long past the 28 days of a lesson recording, and no hold
    assert await job.run(sessionmaker) == []
    row = await state(sessionmaker, rid)
    assert row.policy_id == "safeguarding-concern" and row.erase_at is not None
    async with sessionmaker() as s:
        kit = await s.get(Client, org.child_id)
    assert kit is not None and row.erase_at.date() == kit.date_of_birth.replace(year=kit.date_of_birth.year + 25)
    # Kit's 25th birthday; then the safeguarding lead reviews it rather than it being erased


async def test_a_childs_therapy_recording_follows_the_birthday_rule(
    job: RetentionJob, store: FolderStore, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        tutor = await s.get(Staff, org.tutor_id)
        assert tutor is not None
        tutor.is_therapist, tutor.hcpc_number = True, "AS12345"
        await s.commit()
        child = await s.get(Client, org.child_id)
        assert child is not None
        born = child.date_of_birth
    clock.advance(timedelta(hours=1))
    rid = await record(sessionmaker, store, org, clock)
    await job.run(sessionmaker)
    row = await state(sessionmaker, rid)
    assert row.policy_id == "therapy-children"
    assert row.erase_at is not None and row.erase_at.date() == date(born.year + 25, born.month, born.day)
    async with sessionmaker() as s:  # a corrected date of birth moves the date in the same run
        child = await s.get(Client, org.child_id)
        assert child is not None
        child.date_of_birth = born - timedelta(days=365 * 2)
        await s.commit()
    await job.run(sessionmaker)
    assert (await state(sessionmaker, rid)).erase_at.date().year == born.year + 23  # type: ignore[union-attr]


async def test_a_crash_between_shredding_and_deleting_is_finished_by_the_next_run(
    job: RetentionJob, store: FolderStore, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock.advance(timedelta(hours=1))
    rid = await record(sessionmaker, store, org, clock)
    clock.advance(timedelta(days=29))

    async def crash(recording_id: uuid.UUID) -> int:
        raise OSError("the process died here")

    monkeypatch.setattr(store, "delete_recording", crash)
    with pytest.raises(OSError):
        await job.run(sessionmaker)
    assert (await state(sessionmaker, rid)).wrapped_key is None and await store.exists(rid)
    monkeypatch.undo()
    done = await job.run(sessionmaker)
    assert [d.action for d in done] == ["finish_erasure"] and not await store.exists(rid)


async def test_the_daily_job_survives_a_failed_run_and_finishes_an_hour_later(
    job: RetentionJob, store: FolderStore, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    clock.advance(timedelta(hours=1))
    rid = await record(sessionmaker, store, org, clock)
    clock.advance(timedelta(days=29))
    real_delete = store.delete_recording

    async def store_away(recording_id: uuid.UUID) -> int:
        raise StoreUnavailable("the recording store did not answer")

    monkeypatch.setattr(store, "delete_recording", store_away)
    [work] = retention_tasks.periodic(job, sessionmaker)
    daily = clock.every(work.interval, work.run, name=work.name, run_now=work.run_now)
    try:
        await daily.wait_runs(1)  # the run at start-up failed
        assert daily.failures == 1 and "retention: run failed; trying again in 3600 s" in caplog.text
        assert daily.running and await store.exists(rid)  # still running, the chunks still there
        monkeypatch.setattr(store, "delete_recording", real_delete)
        clock.advance(timedelta(hours=1))
        await daily.wait_runs(2)
        assert daily.failures == 1 and not await store.exists(rid)
        clock.advance(timedelta(hours=1))
        await daily.wait_runs(3)  # an hour later it looks again, but a day has not passed: nothing runs
        assert job.last_run_ago is not None and job.last_run_ago == timedelta(hours=1)
    finally:
        await daily.stop()


@pytest.mark.parametrize("kind", ["folder", "s3"])
async def test_erasure_leaves_nothing_in_the_store_or_the_spool(
    kind: str, request: pytest.FixtureRequest, services: Services, org: Org, clock: FakeClock,
    sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path,
) -> None:
    store: RecordingStore = FolderStore(tmp_path / "recordings") if kind == "folder" else request.getfixturevalue(
        "s3_store")
    job = RetentionJob(EraseDates(load_policies(POLICIES), clock, services.audit), store, tmp_path / "spool")
    clock.advance(timedelta(hours=1))
    rid = await record(sessionmaker, store, org, clock)
    spooled = tmp_path / "spool" / str(rid)
    spooled.mkdir(parents=True)
    (spooled / "000002.chunk").write_bytes(b"sealed chunk not uploaded yet")
    clock.advance(timedelta(days=29))
    assert [d.action for d in await job.run(sessionmaker)] == ["erase"]
    assert not await store.exists(rid) and await store.list_chunks(rid) == []
    assert not spooled.exists()
    assert (await state(sessionmaker, rid)).wrapped_key is None


async def test_a_policy_past_its_review_date_is_flagged_by_every_run(
    job: RetentionJob, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await job.run(sessionmaker)
    assert "due for review" not in caplog.text
    latest = max(p.next_review for p in job.policies)
    clock.advance(timedelta(days=(latest - clock.now().date()).days + 1))
    await job.run(sessionmaker)
    assert caplog.text.count("was due for review") == len(job.policies)
