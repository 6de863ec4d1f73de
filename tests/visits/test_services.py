"""Booking and authorising visits through the API, one test per policy rule (policies/000_*, 001_*, 003_*)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.links.models import AccessLink
from server.mail.models import OutboxMessage
from server.people.models import Client
from tests.support.org import Org
from tests.support.visits import People, home_visit, put_on_map


def _at(clock: FakeClock, hour: int, minute: int = 0) -> datetime:
    return clock.now().replace(hour=hour, minute=minute)


async def test_a_home_visit_meeting_every_rule_is_requested_then_authorised_with_its_purpose(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14)))
    assert status == 201, visit
    assert visit["status"] == "requested" and visit["location_kind"] == "home"
    assert visit["address"] == "1 High Street, Histon"
    assert visit["conditions_confirmed_by"] == f"guardian:{org.guardian_id}"
    booking = visit["booking_id"]
    status, problem = await people.post("admin", f"/api/v1/visits/{booking}/authorise", {"purpose": "tuition"})
    assert status == 403  # admins cannot authorise: the manager or safeguarding lead does
    status, visit = await people.post("manager", f"/api/v1/visits/{booking}/authorise",
                                      {"purpose": "weekly piano tuition"})
    assert status == 200, visit
    assert visit["status"] == "confirmed" and visit["purpose"] == "weekly piano tuition"
    assert visit["authorised_by_id"] == org.manager_id
    async with sessionmaker() as s:
        actions = (await s.execute(select(AuditEvent.action).where(AuditEvent.target == f"booking:{booking}"))
                   ).scalars().all()
    assert {"booking.created", "visit.requested", "visit.authorised"} <= set(actions)


async def test_a_home_visit_issues_no_join_links_and_sends_no_remote_session_invitation(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """A family booked for a visit at home must not get a "join the video session" email or link."""
    await put_on_map(org, sessionmaker)
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14)))
    assert status == 201, visit
    async with sessionmaker() as s:
        mail = (await s.execute(select(OutboxMessage.kind).where(
            OutboxMessage.booking_id == visit["booking_id"]))).scalars().all()
        links = (await s.execute(select(AccessLink.id).where(
            AccessLink.booking_id == visit["booking_id"]))).scalars().all()
    assert mail == [] and links == []


async def test_home_visits_last_at_least_30_minutes_and_are_for_one_person(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14),
                                                                              duration_minutes=25))
    assert status == 409 and "at least 30 minutes" in problem["detail"]
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14), clients=2))
    assert status == 409 and "one individual" in problem["detail"]


async def test_only_practitioners_who_opted_in_make_home_visits(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(
        org, _at(clock, 14), practitioner_id=org.tutor_id))
    assert status == 409 and "not opted in" in problem["detail"]


async def test_the_account_holder_must_confirm_every_condition_in_writing(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14), conditions=None))
    assert status == 409 and "confirmed the home-visit conditions in writing" in problem["detail"]
    conditions = home_visit(org, _at(clock, 14))["conditions"] | {"carer_on_site": False, "parking": False}
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14),
                                                                              conditions=conditions))
    assert status == 409
    assert "parent or carer is on site" in problem["detail"] and "parking" in problem["detail"]
    not_holder = conditions | {"carer_on_site": True, "parking": True,
                               "confirmed_by": f"guardian:{org.guardian_id + 99}"}
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14),
                                                                              conditions=not_holder))
    assert status == 409 and "not the account holder" in problem["detail"]


async def test_a_home_visit_when_a_setting_is_available_needs_a_recorded_reason(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(
        org, _at(clock, 14), preferred_location_available=True))
    assert status == 409 and "record why a home visit is needed" in problem["detail"]
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(
        org, _at(clock, 14), preferred_location_available=True,
        home_reason="drum kit cannot be moved to the school"))
    assert status == 201 and visit["home_reason"] == "drum kit cannot be moved to the school"


async def test_practitioners_need_dbs_and_training_in_date_three_years(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    async with sessionmaker() as s:
        tutor = await s.get(Staff, org.other_tutor_id)
        assert tutor is not None
        tutor.safeguarding_training_on = date(2023, 11, 24)  # three years ago tomorrow
        await s.commit()
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14)))
    assert status == 201, visit  # still in date today
    status, problem = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14) + timedelta(days=1)))
    assert status == 409 and "safeguarding training out of date since 2026-11-24" in problem["detail"]


async def test_an_evening_home_visit_needs_a_managers_agreement_before_authorisation(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)  # DUET_EVENING_HOUR defaults to 18
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 17, 45)))
    assert status == 201 and visit["evening"] is True
    booking = visit["booking_id"]
    status, problem = await people.post("safeguarding", f"/api/v1/visits/{booking}/authorise",
                                        {"purpose": "music therapy"})
    assert status == 409 and "no manager has agreed to evening work" in problem["detail"]
    status, _ = await people.post("manager", f"/api/v1/visits/{booking}/evening-agreement",
                                  {"reason": "only time the family can do"})
    assert status == 200
    status, visit = await people.post("safeguarding", f"/api/v1/visits/{booking}/authorise",
                                      {"purpose": "music therapy"})
    assert status == 200 and visit["status"] == "confirmed" and visit["evening_agreed_by_id"] == org.manager_id
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 16)))
    assert status == 201 and visit["evening"] is False  # ends 16:30, before 18:00


async def test_studio_visits_only_at_an_approved_studio_with_a_responsible_adult_for_a_child(
        people: People, org: Org, clock: FakeClock) -> None:
    status, studio = await people.post("admin", "/api/v1/studios", {"name": "Mill Road Studio",
                                                                    "address": "12 Mill Road, Cambridge"})
    assert status == 201 and studio["approved"] is False
    body = {"kind": "studio_visit", "practitioner_id": org.tutor_id, "client_id": org.child_id,
            "starts_at": _at(clock, 15).isoformat(), "duration_minutes": 45, "guardian_ids": [org.guardian_id],
            "studio_id": studio["id"]}
    status, problem = await people.post("admin", "/api/v1/visits", body)
    assert status == 409
    assert "not an approved studio" in problem["detail"] and "responsible adult" in problem["detail"]
    status, _ = await people.post("safeguarding", f"/api/v1/studios/{studio['id']}/approve",
                                  {"reason": "risk assessment done"})
    assert status == 200
    status, visit = await people.post("admin", "/api/v1/visits", body | {"responsible_adult": "Gail Guardian"})
    assert status == 201 and visit["address"] == "12 Mill Road, Cambridge"


async def test_an_adult_needing_one_to_one_support_brings_a_responsible_adult_to_the_studio(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    _, studio = await people.post("admin", "/api/v1/studios", {"name": "Studio", "address": "1 Road, Ely"})
    await people.post("manager", f"/api/v1/studios/{studio['id']}/approve", {"reason": "approved"})
    body = {"kind": "studio_visit", "practitioner_id": org.tutor_id, "client_id": org.adult_id,
            "starts_at": _at(clock, 15).isoformat(), "duration_minutes": 45, "invite_client": True,
            "studio_id": studio["id"]}
    status, visit = await people.post("admin", "/api/v1/visits", body)
    assert status == 201, visit  # an adult without 1:1 needs comes alone
    async with sessionmaker() as s:
        adult = await s.get(Client, org.adult_id)
        assert adult is not None
        adult.needs_one_to_one_support = True
        await s.commit()
    status, problem = await people.post("admin", "/api/v1/visits", body | {"starts_at": _at(clock, 16).isoformat()})
    assert status == 409 and "needs 1:1 support" in problem["detail"]


async def test_visits_cannot_be_booked_through_the_remote_booking_api(people: People, org: Org,
                                                                      clock: FakeClock) -> None:
    status, problem = await people.post("admin", "/api/v1/bookings", {
        "kind": "home_visit", "practitioner_id": org.other_tutor_id, "client_id": org.child_id,
        "starts_at": _at(clock, 14).isoformat(), "duration_minutes": 30, "guardian_ids": [org.guardian_id]})
    assert status == 422 and "/api/v1/visits" in problem["detail"]


async def test_a_setting_session_is_at_a_setting_or_music_centre(people: People, org: Org, clock: FakeClock) -> None:
    body = {"kind": "setting_session", "practitioner_id": org.tutor_id, "client_id": org.child_id,
            "starts_at": _at(clock, 13).isoformat(), "duration_minutes": 60, "guardian_ids": [org.guardian_id],
            "location": "music_centre", "address": "Music Centre, Cambridge"}
    status, visit = await people.post("admin", "/api/v1/visits", body)
    assert status == 201 and visit["location_kind"] == "music_centre"
    status, problem = await people.post("admin", "/api/v1/visits", body | {"location": "home"})
    assert status == 422


async def test_a_practitioner_unavailable_in_the_day_needs_a_manager_for_evening_sessions(
        people: People, org: Org, clock: FakeClock) -> None:
    body = {"kind": "setting_session", "practitioner_id": org.tutor_id, "client_id": org.child_id,
            "starts_at": _at(clock, 18).isoformat(), "duration_minutes": 60, "guardian_ids": [org.guardian_id],
            "address": "Cambridge Music Centre"}
    _, available = await people.post("admin", "/api/v1/visits", body)
    status, visit = await people.post("manager", f"/api/v1/visits/{available['booking_id']}/authorise",
                                      {"purpose": "orchestra sectional"})
    assert status == 200, visit  # an evening session is fine on a normal working day
    status, _ = await people.post("manager", f"/api/v1/staff/{org.tutor_id}/unavailable",
                                  {"day": (clock.now() + timedelta(days=1)).date().isoformat(), "reason": "sick"})
    assert status == 201
    _, tomorrow = await people.post("admin", "/api/v1/visits", body | {
        "starts_at": (_at(clock, 18) + timedelta(days=1)).isoformat()})
    assert "unavailable during the day" in tomorrow["blocked_reason"]
    path = f"/api/v1/visits/{tomorrow['booking_id']}"
    status, problem = await people.post("manager", f"{path}/authorise", {"purpose": "orchestra sectional"})
    assert status == 409 and "unavailable during the day" in problem["detail"]
    await people.post("manager", f"{path}/evening-agreement", {"reason": "recovered, concert next week"})
    status, visit = await people.post("manager", f"{path}/authorise", {"purpose": "orchestra sectional"})
    assert status == 200 and visit["blocked_reason"] is None


async def test_a_suspension_blocks_authorisation_and_a_visit_cannot_be_moved_past_its_rules(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14)))
    assert status == 201, visit
    booking = visit["booking_id"]
    status, _ = await people.post("safeguarding", f"/api/v1/guardians/{org.guardian_id}/suspend",
                                  {"reason": "allegation under investigation"})
    assert status == 200
    status, problem = await people.post("manager", f"/api/v1/visits/{booking}/authorise", {"purpose": "tuition"})
    assert status == 409 and "approval of someone in the family is suspended" in problem["detail"]
    status, _ = await people.post("safeguarding", f"/api/v1/guardians/{org.guardian_id}/reinstate",
                                  {"reason": "no case to answer"})
    assert status == 200
    status, visit = await people.post("manager", f"/api/v1/visits/{booking}/authorise", {"purpose": "tuition"})
    assert status == 200, visit
    # Moving a confirmed visit to 21:30 for 5 minutes would skip the evening and length rules: refused.
    status, problem = await people.post("admin", f"/api/v1/bookings/{booking}/reschedule", {
        "starts_at": _at(clock, 21, 30).isoformat(), "duration_minutes": 5})
    assert status == 409 and "cancel it and book the new time" in problem["detail"]
