"""Blended plans through the API (policies/000_* provision type 4), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.services import Services
from tests.support.org import Org, issue_link
from tests.support.visits import People, home_visit, put_on_map


def _at(clock: FakeClock, hour: int, days: int = 0) -> datetime:
    return clock.now().replace(hour=hour, minute=0) + timedelta(days=days)


async def _plan(people: People, org: Org, who: str = "admin", **overrides: Any) -> dict[str, Any]:
    body = {"client_id": org.child_id, "lead_practitioner_id": org.other_tutor_id, "title": "Piano, spring term",
            "goals": "Grade 2 pieces\nSight-reading every week", "starts_on": "2026-11-23",
            "ends_on": "2027-03-31"} | overrides
    status, plan = await people.post(who, "/api/v1/plans", body)
    assert status == 201, plan
    return plan


async def _live(people: People, org: Org, starts_at: datetime, *, tutor: int | None = None,
                adult: bool = False) -> int:
    """A live audio session booked by the admin: with the child (and Gail), or with the adult client."""
    people_part: dict[str, Any] = ({"client_id": org.adult_id, "invite_client": True} if adult
                                   else {"client_id": org.child_id, "guardian_ids": [org.guardian_id]})
    status, booking = await people.post("admin", "/api/v1/bookings", {
        "kind": "live_audio", "practitioner_id": tutor or org.other_tutor_id, "starts_at": starts_at.isoformat(),
        "duration_minutes": 30} | people_part)
    assert status == 201, booking
    return int(booking["id"])


async def _delete(people: People, key: str, path: str) -> tuple[int, Any]:
    c, csrf = await people(key)
    response = await c.delete(path, headers={"X-CSRF-Token": csrf})
    return response.status, await response.json()


async def _plan_events(sessionmaker: async_sessionmaker[AsyncSession], plan_id: int) -> list[AuditEvent]:
    async with sessionmaker() as s:
        return list((await s.execute(select(AuditEvent).where(AuditEvent.target == f"plan:{plan_id}")
                                     .order_by(AuditEvent.seq))).scalars())


async def _held_home_visit(people: People, org: Org, clock: FakeClock) -> int:
    """tutor2's home visit to the child at 14:00, authorised, checked in and out: attendance "held"."""
    status, visit = await people.post("admin", "/api/v1/visits", home_visit(org, _at(clock, 14)))
    assert status == 201, visit
    booking = visit["booking_id"]
    assert (await people.post("manager", f"/api/v1/visits/{booking}/authorise", {"purpose": "tuition"}))[0] == 200
    status, _ = await people.post("tutor2", f"/api/v1/visits/{booking}/itinerary", {
        "expected_arrival": _at(clock, 14).isoformat(), "expected_return": _at(clock, 15).isoformat()})
    assert status == 200
    for step in ("check-in", "check-out"):
        status, visit = await people.post("tutor2", f"/api/v1/visits/{booking}/{step}")
        assert status == 200, visit
    return int(booking)


async def test_a_plan_groups_the_clients_bookings_of_every_kind_with_attendance_and_a_summary(
        people: People, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    home = await _held_home_visit(people, org, clock)
    status, studio = await people.post("admin", "/api/v1/studios", {"name": "Mill Road Studio",
                                                                    "address": "12 Mill Road, Cambridge"})
    assert status == 201
    await people.post("safeguarding", f"/api/v1/studios/{studio['id']}/approve", {"reason": "risk assessed"})
    status, studio_visit = await people.post("admin", "/api/v1/visits", {
        "kind": "studio_visit", "practitioner_id": org.tutor_id, "client_id": org.child_id,
        "starts_at": _at(clock, 15).isoformat(), "duration_minutes": 45, "guardian_ids": [org.guardian_id],
        "studio_id": studio["id"], "responsible_adult": "Gail Guardian"})
    assert status == 201, studio_visit
    status, setting = await people.post("admin", "/api/v1/visits", {
        "kind": "setting_session", "practitioner_id": org.tutor_id, "client_id": org.child_id,
        "starts_at": _at(clock, 12).isoformat(), "duration_minutes": 60, "guardian_ids": [org.guardian_id],
        "location": "music_centre", "address": "Music Centre, Cambridge"})
    assert status == 201, setting
    unplanned = await _live(people, org, _at(clock, 17))

    plan = await _plan(people, org)
    assert plan["status"] == "active" and plan["bookings"] == [] and plan["created_by_id"] == org.admin_id
    assert plan["summary"]["blended"] is False and len(plan["summary"]["missing"]) == 3
    # Attached in any order; the plan lists them in time order.
    for booking in (studio_visit["booking_id"], home, org.booking_id, setting["booking_id"]):
        status, plan = await people.post("admin", f"/api/v1/plans/{plan['id']}/bookings", {"booking_id": booking})
        assert status == 201, plan
    assert [(b["booking_id"], b["kind"], b["attendance"]) for b in plan["bookings"]] == [
        (org.booking_id, "live_video", None), (setting["booking_id"], "setting_session", None),
        (home, "home_visit", "held"), (studio_visit["booking_id"], "studio_visit", None)]
    assert plan["summary"] | {"missing": []} == {
        "total": 4, "by_kind": {"live_video": 1, "setting_session": 1, "home_visit": 1, "studio_visit": 1},
        "held": 1, "cancelled": 0, "blended": False, "missing": []}
    assert plan["summary"]["missing"] == ["a learning resource"]

    status, plan = await people.post("admin", f"/api/v1/plans/{plan['id']}/resources", {
        "title": "Practice recording: Minuet in G", "url": "https://media.example.org/minuet-in-g.mp3"})
    assert status == 201, plan
    status, plan = await people.post("tutor2", f"/api/v1/plans/{plan['id']}/resources", {
        "title": "Scales", "note": "C, G and F major,\nhands together"})
    assert status == 201, plan
    assert [(r["title"], r["url"], r["note"]) for r in plan["resources"]] == [
        ("Practice recording: Minuet in G", "https://media.example.org/minuet-in-g.mp3", None),
        ("Scales", None, "C, G and F major,\nhands together")]
    assert plan["summary"]["blended"] is True and plan["summary"]["missing"] == []

    # The family joins the live session: the plan shows it as the timetable does, and counts it as held.
    async with sessionmaker() as s:
        await services.attendance.joined(s, org.booking_id, f"guardian:{org.guardian_id}", "participant")
        await s.commit()
    status, plan = await people.get("admin", f"/api/v1/plans/{plan['id']}")
    assert plan["bookings"][0]["attendance"] == "attended" and plan["summary"]["held"] == 2

    # The client's timetable carries the plan on each planned booking, and nothing on the others.
    status, timetable = await people.get("admin", f"/api/v1/visits/timetable?client_id={org.child_id}")
    assert status == 200
    assert [e for e in timetable if e["booking_id"] != unplanned] == plan["bookings"]
    assert {e["booking_id"]: (e["plan_id"], e["plan_title"]) for e in timetable} == {
        org.booking_id: (plan["id"], "Piano, spring term"), setting["booking_id"]: (plan["id"], "Piano, spring term"),
        home: (plan["id"], "Piano, spring term"), studio_visit["booking_id"]: (plan["id"], "Piano, spring term"),
        unplanned: (None, None)}
    status, mine = await people.get("tutor2", f"/api/v1/visits/timetable?practitioner_id={org.other_tutor_id}")
    assert [(e["booking_id"], e["plan_id"]) for e in mine] == [(home, plan["id"]), (unplanned, None)]

    # The lead practitioner reads the plan, and lists it among their own.
    status, read = await people.get("tutor2", f"/api/v1/plans/{plan['id']}")
    assert status == 200 and read == plan
    status, listed = await people.get("tutor2", f"/api/v1/plans?client_id={org.child_id}")
    assert status == 200 and [p["id"] for p in listed] == [plan["id"]]

    # Detaching a booking and removing a resource change the plan only, never the booking.
    status, plan = await _delete(people, "admin", f"/api/v1/plans/{plan['id']}/bookings/{studio_visit['booking_id']}")
    assert status == 200 and "studio_visit" not in plan["summary"]["by_kind"] and plan["summary"]["total"] == 3
    status, visit = await people.get("admin", f"/api/v1/visits/{studio_visit['booking_id']}")
    assert status == 200 and visit["status"] == "requested"
    status, plan = await _delete(people, "tutor2", f"/api/v1/plans/{plan['id']}/resources/{plan['resources'][0]['id']}")
    assert status == 200 and [r["title"] for r in plan["resources"]] == ["Scales"]

    events = await _plan_events(sessionmaker, plan["id"])
    assert [e.action for e in events] == ["plan.created"] + ["plan.booking_attached"] * 4 + [
        "plan.resource_added"] * 2 + ["plan.booking_detached", "plan.resource_removed"]
    assert [e.actor for e in events][-3:] == [f"staff:{org.other_tutor_id}", f"staff:{org.admin_id}",
                                              f"staff:{org.other_tutor_id}"]
    assert f'"booking_id":{home}' in events[2].details


async def test_a_booking_of_another_client_or_already_planned_is_refused_with_a_clear_problem(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    plan = await _plan(people, org, ends_on="2026-11-30")
    path = f"/api/v1/plans/{plan['id']}/bookings"
    adults = await _live(people, org, _at(clock, 16), adult=True)
    c, csrf = await people("admin")
    response = await c.post(path, json={"booking_id": adults}, headers={"X-CSRF-Token": csrf})
    problem = await response.json()
    assert response.status == 422 and response.headers["Content-Type"].startswith("application/problem+json")
    assert "is for another client" in problem["detail"] and problem["field"] == "booking_id"

    status, problem = await people.post("admin", path, {"booking_id": 999999})
    assert status == 404 and "no booking with id 999999" in problem["detail"]
    later = await _live(people, org, _at(clock, 10, days=12))
    status, problem = await people.post("admin", path, {"booking_id": later})
    assert status == 422 and "outside the plan's dates (2026-11-23 to 2026-11-30)" in problem["detail"]

    status, _ = await people.post("admin", path, {"booking_id": org.booking_id})
    assert status == 201
    status, problem = await people.post("admin", path, {"booking_id": org.booking_id})
    assert status == 409 and problem["detail"] == f"Booking {org.booking_id} is already in this plan."
    other = await _plan(people, org, title="Music therapy", lead_practitioner_id=org.tutor_id)
    status, problem = await people.post("admin", f"/api/v1/plans/{other['id']}/bookings",
                                        {"booking_id": org.booking_id})
    assert status == 409 and "already in another blended plan" in problem["detail"]
    assert problem["plan_id"] == plan["id"]

    status, problem = await _delete(people, "admin", f"/api/v1/plans/{other['id']}/bookings/{org.booking_id}")
    assert status == 404 and "is not in blended plan" in problem["detail"]
    status, plan = await people.get("admin", f"/api/v1/plans/{plan['id']}")
    assert [b["booking_id"] for b in plan["bookings"]] == [org.booking_id]
    # Refused changes leave no trace in the audit log.
    assert [e.action for e in await _plan_events(sessionmaker, plan["id"])] == ["plan.created",
                                                                                 "plan.booking_attached"]
    assert [e.action for e in await _plan_events(sessionmaker, other["id"])] == ["plan.created"]


async def test_resource_links_are_https_and_one_line(people: People, org: Org) -> None:
    plan = await _plan(people, org)
    path = f"/api/v1/plans/{plan['id']}/resources"
    for url, words in (
        ("http://media.example.org/minuet.mp3", "must start with https://"),
        ("javascript:alert(1)", "must start with https://"),
        ("data:text/html,<script>alert(1)</script>", "must start with https://"),
        ("https://media.example.org/a.mp3\r\nSet-Cookie: x=1", "must be one line"),
        ("https://media.example.org/my piece.mp3", "must be one line"),
        ("https://user:secret@media.example.org/a.mp3", "user name or password"),
        ("https:///a.mp3", "no host name"),
        ("https://media.example.org:99999/a.mp3", "not a valid URL"),
    ):
        status, problem = await people.post("admin", path, {"title": "Minuet", "url": url})
        assert status == 422 and words in problem["detail"] and problem["field"] == "url", (url, problem)
    status, problem = await people.post("admin", path, {"title": "Minuet"})
    assert status == 422 and "a link (https://...) or a note" in problem["detail"]
    status, problem = await people.post("admin", path, {"title": "Two\nlines", "note": "fine"})
    assert status == 422 and problem["field"] == "title"
    status, plan = await people.get("admin", f"/api/v1/plans/{plan['id']}")
    assert plan["resources"] == []


async def test_plans_are_checked_when_they_start(people: People, org: Org) -> None:
    body = {"client_id": org.child_id, "lead_practitioner_id": org.tutor_id, "title": "Piano",
            "starts_on": "2026-12-01", "ends_on": "2026-11-30"}
    status, problem = await people.post("admin", "/api/v1/plans", body)
    assert status == 422 and "end before it starts" in problem["detail"] and problem["field"] == "ends_on"
    status, problem = await people.post("admin", "/api/v1/plans", body | {"ends_on": "2027-01-31",
                                                                           "client_id": 999999})
    assert status == 404 and problem["field"] == "client_id"
    status, problem = await people.post("admin", "/api/v1/plans", body | {"ends_on": "2027-01-31",
                                                                           "lead_practitioner_id": org.admin_id})
    assert status == 404 and "no practitioner" in problem["detail"]


async def test_the_lead_practitioner_runs_their_own_plan_and_no_one_else_sees_it(
        people: People, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    status, problem = await people.post("tutor", "/api/v1/plans", {
        "client_id": org.child_id, "lead_practitioner_id": org.other_tutor_id, "title": "Piano",
        "starts_on": "2026-11-23", "ends_on": "2027-01-31"})
    assert status == 403 and "plans that you lead" in problem["detail"]
    plan = await _plan(people, org, "tutor", lead_practitioner_id=org.tutor_id)
    assert plan["created_by_id"] == org.tutor_id
    path = f"/api/v1/plans/{plan['id']}"
    assert (await people.post("tutor", f"{path}/bookings", {"booking_id": org.booking_id}))[0] == 201
    theirs = await _live(people, org, _at(clock, 16), tutor=org.other_tutor_id)
    status, problem = await people.post("tutor", f"{path}/bookings", {"booking_id": theirs})
    assert status == 404  # a practitioner attaches their own bookings; they are not told of others'
    assert (await people.post("manager", f"{path}/bookings", {"booking_id": theirs}))[0] == 201

    # Another practitioner is not told the plan exists, whatever they try.
    assert (await people.get("tutor2", path))[0] == 404
    assert (await people.get("tutor2", "/api/v1/plans")) == (200, [])
    assert (await people.post("tutor2", f"{path}/bookings", {"booking_id": theirs}))[0] == 404
    assert (await _delete(people, "tutor2", f"{path}/bookings/{org.booking_id}"))[0] == 404
    assert (await people.post("tutor2", f"{path}/resources", {"title": "x", "note": "y"}))[0] == 404
    assert (await people.post("tutor2", f"{path}/end", {}))[0] == 404
    # The safeguarding lead reads every plan but changes none.
    status, read = await people.get("safeguarding", path)
    assert status == 200 and read["summary"]["total"] == 2
    assert (await people.post("safeguarding", f"{path}/end", {}))[0] == 403
    # Families have no plan routes: their link opens their session, nothing here.
    family = await people.new_client()
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    assert (await family.get(f"/l/{token}", allow_redirects=False)).status == 303
    assert (await family.get(path)).status == 401
    assert (await family.get("/api/v1/plans")).status == 401

    status, ended = await people.post("tutor", f"{path}/end", {"reason": "moved to group lessons"})
    assert status == 200 and ended["status"] == "ended" and ended["ended_by_id"] == org.tutor_id
    assert ended["ended_reason"] == "moved to group lessons" and ended["summary"]["total"] == 2
    status, problem = await _delete(people, "tutor", f"{path}/bookings/{org.booking_id}")
    assert status == 409 and "has ended" in problem["detail"]
    assert (await people.post("tutor", f"{path}/end", {}))[0] == 409
    status, listed = await people.get("admin", "/api/v1/plans?status=ended")
    assert [p["id"] for p in listed] == [plan["id"]]
    events = await _plan_events(sessionmaker, plan["id"])
    assert [(e.action, e.actor) for e in events] == [
        ("plan.created", f"staff:{org.tutor_id}"), ("plan.booking_attached", f"staff:{org.tutor_id}"),
        ("plan.booking_attached", f"staff:{org.manager_id}"), ("plan.ended", f"staff:{org.tutor_id}")]


async def test_a_practitioner_plans_only_for_clients_they_work_with(people: People, org: Org) -> None:
    """policies/004_*: need-to-know. tutor2 has no booking with the adult client, so that client is unknown to
    them (as in the client list); the office plans for anyone."""
    body = {"client_id": org.adult_id, "lead_practitioner_id": org.other_tutor_id, "title": "Guitar",
            "goals": "", "starts_on": "2026-11-23", "ends_on": "2027-03-31"}
    status, problem = await people.post("tutor2", "/api/v1/plans", body)
    assert status == 404 and problem["field"] == "client_id" and "among your clients" in problem["detail"]
    assert (await people.post("admin", "/api/v1/plans", body))[0] == 201


async def test_a_practitioner_reports_a_home_change_only_for_clients_they_work_with(people: People, org: Org) -> None:
    status, problem = await people.post("tutor2", f"/api/v1/clients/{org.adult_id}/workspace-change",
                                        {"reason": "I heard they moved house"})
    assert status == 404 and "among your clients" in problem["detail"]
    status, _ = await people.post("admin", f"/api/v1/clients/{org.adult_id}/workspace-change",
                                  {"reason": "the family called: they moved house"})
    assert status == 201
