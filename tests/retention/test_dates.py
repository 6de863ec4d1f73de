"""Erase dates follow the facts at once: a concern raised, a hold placed or lifted, without waiting a day."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.audit.log import Actor
from server.clock import FakeClock
from server.recording.models import Recording
from server.safeguarding.models import Concern, ConcernCategory
from server.safeguarding.services import NewConcern
from server.services import Services
from tests.support.org import SETUP, Org
from tests.support.recordings import add_fake_recording


async def test_placing_and_lifting_a_hold_switches_the_policy_and_date_at_once(
        services: Services, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    clock.advance(timedelta(hours=1))
    async with sessionmaker() as s:
        rid = await add_fake_recording(s, org.booking_id, clock.now())
        await services.erase_dates.refresh_booking(s, org.booking_id)
        concern = Concern(category="other", details="a worrying remark", raised_by=f"staff:{org.tutor_id}",
                          raised_by_staff_id=org.tutor_id, booking_id=None, client_id=org.child_id,
                          raised_at=clock.now(), discuss_by=clock.now() + timedelta(days=1))
        s.add(concern)
        await s.commit()
        row = await s.get(Recording, rid)
        assert row is not None and row.policy_id == "tuition-monitoring"
        lead = await s.get(Staff, org.safeguarding_id)
        assert lead is not None
        hold = await services.safeguarding.place_hold(s, SETUP, lead, concern, "evidence for the referral", True)
        await s.commit()
        assert row.policy_id == "safeguarding-concern"
        assert row.erase_at is not None and row.erase_at.year == clock.now().year + 15  # birth + 25 years
        await services.holds.lift(s, SETUP, lead.id, hold.id, "referral closed, no further action")
        await s.commit()
        assert row.policy_id == "tuition-monitoring" and row.erase_at is not None
        assert (row.erase_at - clock.now()).days in (27, 28)


async def test_raising_a_concern_about_a_session_moves_its_recording_to_the_safeguarding_policy(
        services: Services, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    clock.advance(timedelta(hours=1))
    async with sessionmaker() as s:
        rid = await add_fake_recording(s, org.booking_id, clock.now())
        await services.erase_dates.refresh_booking(s, org.booking_id)
        await services.safeguarding.raise_concern(s, Actor("staff:1", "test"), NewConcern(
            category=ConcernCategory.OTHER, details="Kit said something worrying", booking_id=org.booking_id))
        await s.commit()
        row = await s.get(Recording, rid)
        assert row is not None and row.policy_id == "safeguarding-concern"
