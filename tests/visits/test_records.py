"""The after-visit record (policies/002_* "After the visit"): made once after check-out by the visit's
practitioner, read only by them, managers and the safeguarding lead, pointing to raising a concern."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.visits.models import VisitRecord
from tests.support.org import Org
from tests.support.visits import People, home_visit, put_on_map

NOTES = "Piano lesson held in the front room, mother present throughout; scales and two pieces."


async def _checked_in(people: People, org: Org, clock: FakeClock,
                      sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """An authorised home visit by tutor2 at 14:00 with its itinerary, checked in; returns the booking id."""
    await put_on_map(org, sessionmaker)
    start = clock.now().replace(hour=14)
    _, visit = await people.post("admin", "/api/v1/visits", home_visit(org, start))
    booking = visit["booking_id"]
    status, _ = await people.post("manager", f"/api/v1/visits/{booking}/authorise", {"purpose": "piano tuition"})
    assert status == 200
    await people.post("tutor2", f"/api/v1/visits/{booking}/itinerary", {
        "expected_arrival": start.isoformat(), "expected_return": (start + timedelta(minutes=45)).isoformat()})
    status, problem = await people.post("tutor2", f"/api/v1/visits/{booking}/record",
                                        {"notes": NOTES, "safeguarding_concerns": False})
    assert status == 409 and "Check out of the visit first" in problem["detail"]  # not even there yet
    clock.set(start)
    status, visit = await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    assert status == 200, visit
    return int(booking)


async def test_the_record_is_made_after_check_out_once_and_points_to_raising_a_concern(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking = await _checked_in(people, org, clock, sessionmaker)
    path = f"/api/v1/visits/{booking}/record"
    body = {"notes": NOTES, "safeguarding_concerns": True}
    status, problem = await people.post("tutor2", path, body)
    assert status == 409 and "Check out of the visit first" in problem["detail"]  # still in the home
    clock.advance(timedelta(minutes=31))
    await people.post("tutor2", f"/api/v1/visits/{booking}/check-out")
    status, problem = await people.post("tutor", path, body)
    assert status == 404  # another practitioner is not told the visit exists
    status, problem = await people.post("tutor2", path, body | {"notes": "fine"})
    assert status == 422  # say what happened
    status, record = await people.post("tutor2", path, body)
    assert status == 201, record
    assert record["notes"] == NOTES and record["safeguarding_concerns"] is True
    assert record["recorded_by_id"] == org.other_tutor_id and record["concern_ids"] == []
    assert "raise a concern now" in record["next_step"] and "POST /api/v1/concerns" in record["next_step"]
    status, problem = await people.post("tutor2", path, body | {"safeguarding_concerns": False})
    assert status == 409 and "not changed afterwards" in problem["detail"]

    status, concern = await people.post("tutor2", "/api/v1/concerns", {
        "category": "home_visit_issue", "details": "Smell of smoke and the child seemed withdrawn.",
        "booking_id": booking})
    assert status == 201, concern
    status, record = await people.get("tutor2", path)
    assert status == 200 and record["concern_ids"] == [concern["id"]]
    assert f"concern {concern['id']} is raised" in record["next_step"]

    async with sessionmaker() as s:
        assert len((await s.execute(select(VisitRecord))).scalars().all()) == 1  # one per visit
        event = (await s.execute(select(AuditEvent).where(AuditEvent.action == "visit.after_record"))).scalar_one()
    assert event.actor == f"staff:{org.other_tutor_id}" and event.target == f"booking:{booking}"
    assert json.loads(event.details)["safeguarding_concerns"] is True
    assert "front room" not in event.details  # the notes stay in their own row, out of the audit chain


async def test_a_record_without_concerns_is_read_only_by_its_practitioner_managers_and_the_safeguarding_lead(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking = await _checked_in(people, org, clock, sessionmaker)
    path = f"/api/v1/visits/{booking}/record"
    status, problem = await people.get("manager", path)
    assert status == 404 and "No after-visit record" in problem["detail"]
    clock.advance(timedelta(minutes=40))
    await people.post("tutor2", f"/api/v1/visits/{booking}/check-out")
    status, record = await people.post("tutor2", path, {"notes": NOTES, "safeguarding_concerns": False})
    assert status == 201 and record["next_step"] is None
    for reader in ("tutor2", "manager", "safeguarding"):
        status, seen = await people.get(reader, path)
        assert status == 200 and seen["notes"] == NOTES, reader
    status, _ = await people.get("admin", path)
    assert status == 403  # the administration team books visits but does not read what happened
    status, _ = await people.get("tutor", path)
    assert status == 404  # as for the visit itself
    status, visit = await people.get("admin", f"/api/v1/visits/{booking}")
    assert status == 200 and NOTES not in json.dumps(visit)
