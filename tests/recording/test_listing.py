"""The recordings list tells the safeguarding lead how long each recording is, what its consents allow
today, and what holds it, so nobody uses a recording beyond what the family agreed to."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.audit.log import Actor
from server.clock import FakeClock
from server.consent.services import Grant
from server.recording.listing import list_recordings
from server.recording.models import Recording
from server.services import Services
from tests.support.org import SETUP, Org
from tests.support.recordings import add_fake_recording


async def test_duration_the_uses_consent_allows_today_and_holds(
    services: Services, sessionmaker: async_sessionmaker[AsyncSession], org: Org, clock: FakeClock,
) -> None:
    today = clock.now().date()
    guardian, child, tutor = f"guardian:{org.guardian_id}", f"client:{org.child_id}", f"staff:{org.tutor_id}"
    async with sessionmaker() as s:
        await services.consent.set_staff_agreement(s, SETUP, org.tutor_id, today)
        for covers in (guardian, child):
            await services.consent.give(s, SETUP, guardian, covers,
                                        Grant(record=True, safeguarding=True, feedback=covers == guardian), today)
        rid = await add_fake_recording(s, org.booking_id, clock.now())
        await services.audit.record(s, Actor(tutor), "recording.started", f"booking:{org.booking_id}",
                                    {"recording_id": str(rid), "people": [child, guardian, tutor]})
        row = await s.get_one(Recording, rid)
        row.ended_at = row.started_at + timedelta(minutes=25, seconds=3)
        await s.commit()

    async with sessionmaker() as s:
        [listed] = await list_recordings(s, services.consent, today)
    assert listed.duration_seconds == 25 * 60 + 3 and listed.client == "Kit Child"
    assert sorted(listed.people) == sorted([child, guardian, tutor])
    assert listed.consent_scopes == ["record", "safeguarding"]  # feedback was not agreed for Kit
    assert listed.holds == []

    async with sessionmaker() as s:  # Kit's consent is withdrawn; a claim puts the recordings on hold
        await services.consent.withdraw(s, SETUP, guardian, child)
        lead = await s.get_one(Staff, org.safeguarding_id)
        await services.safeguarding.place_legal_hold(s, Actor(f"staff:{lead.id}"), lead, org.child_id,
                                                     None, "Solicitor's letter ref. AB/123 about lesson")
        await s.commit()
    async with sessionmaker() as s:
        [listed] = await list_recordings(s, services.consent, today)
    assert listed.consent_scopes == []  # no use allowed any more
    assert [(h.kind, h.reason) for h in listed.holds] == [("legal", "Solicitor's letter ref. AB/123 about lesson")]
