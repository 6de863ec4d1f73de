"""A legal hold (a claim, an inquiry, a court order) keeps recordings without any safeguarding concern."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.recording.stores import FolderStore
from server.retention.dates import EraseDates
from server.retention.job import RetentionJob
from server.services import Services
from server.storage_policies.loader import load_policies
from tests.support.org import Org
from tests.support.recordings import add_fake_recording
from tests.support.visits import People

POLICIES = Path(__file__).resolve().parents[2] / "storage_policies"


async def test_a_legal_hold_keeps_recordings_past_their_date_until_lifted(
        people: People, org: Org, services: Services, clock: FakeClock,
        sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "recordings")
    job = RetentionJob(EraseDates(load_policies(POLICIES), clock, services.audit), store, tmp_path / "spool")
    clock.advance(timedelta(hours=1))
    async with sessionmaker() as s:
        rid = await add_fake_recording(s, org.booking_id, clock.now())
        await s.commit()
    await store.put_chunk(rid, 0, b"sealed chunk")

    status, problem = await people.post("manager", f"/api/v1/clients/{org.child_id}/legal-holds",
                                        {"reason": "solicitor's letter ref 2026/114"})
    assert status == 403  # only the safeguarding lead holds recordings
    status, problem = await people.post("safeguarding", "/api/v1/clients/9999/legal-holds",
                                        {"reason": "solicitor's letter ref 2026/114"})
    assert status == 404 and "no client with id 9999" in problem["detail"]
    status, hold = await people.post("safeguarding", f"/api/v1/clients/{org.child_id}/legal-holds",
                                     {"reason": "solicitor's letter ref 2026/114"})
    assert status == 201 and hold["concern_id"] is None and hold["client_id"] == org.child_id

    clock.advance(timedelta(days=60))  # long past a lesson recording's 28 days
    assert [d.action for d in await job.run(sessionmaker)] == ["held"] and await store.exists(rid)
    status, lifted = await people.post("safeguarding", f"/api/v1/holds/{hold['id']}/lift",
                                       {"reason": "the claim was withdrawn"})
    assert status == 200 and lifted["lifted_at"] is not None
    assert [d.action for d in await job.run(sessionmaker)] == ["erase"] and not await store.exists(rid)
    async with sessionmaker() as s:
        actions = set((await s.scalars(select(AuditEvent.action).where(
            AuditEvent.target.in_([f"client:{org.child_id}", f"hold:{hold['id']}"])))).all())
    assert {"recording.hold_placed", "recording.hold_lifted"} <= actions
