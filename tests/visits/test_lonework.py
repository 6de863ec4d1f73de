"""Lone working and overdue alerts, stepped with the FakeClock (policies/002_*, 003_*), and the workspace
checklist that blocks the next visit (policies/001_*)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import ApprovalStatus, Role, Staff
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.config import Settings
from server.mail.models import OutboxMessage
from server.services import Services
from server.visits.lonework import OverdueAlerts
from server.visits.models import AlertStage, VisitAlert
from tests.support.org import Org, add_staff
from tests.support.visits import People, adult_home_visit, home_visit, put_on_map

CHECKLIST = {"ventilation": True, "lighting_and_heat": True, "window_or_open_door": True, "safe_to_work": True,
             "carer_on_site": True}


async def _ready_visit(people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession],
                       hour: int = 14, adult: bool = False) -> tuple[int, datetime]:
    """An authorised home visit by tutor2 with its itinerary: back 15 minutes after it ends."""
    await put_on_map(org, sessionmaker)
    start = clock.now().replace(hour=hour)
    body = adult_home_visit(org, start) if adult else home_visit(org, start)
    status, visit = await people.post("admin", "/api/v1/visits", body)
    assert status == 201, visit
    booking = visit["booking_id"]
    status, visit = await people.post("manager", f"/api/v1/visits/{booking}/authorise", {"purpose": "tuition"})
    assert status == 200, visit
    back = start + timedelta(minutes=45)
    status, visit = await people.post("tutor2", f"/api/v1/visits/{booking}/itinerary", {
        "expected_arrival": (start - timedelta(minutes=5)).isoformat(), "expected_return": back.isoformat()})
    assert status == 200, visit
    return booking, back


async def _alerts(sessionmaker: async_sessionmaker[AsyncSession]) -> list[OutboxMessage]:
    async with sessionmaker() as s:
        return list((await s.execute(select(OutboxMessage).where(OutboxMessage.kind == "staff_alert")
                                     .order_by(OutboxMessage.id))).scalars())


async def test_check_in_needs_authorisation_and_an_itinerary(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await put_on_map(org, sessionmaker)
    _, visit = await people.post("admin", "/api/v1/visits", home_visit(org, clock.now().replace(hour=14)))
    booking = visit["booking_id"]
    status, problem = await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    assert status == 409 and "not been authorised" in problem["detail"]
    await people.post("manager", f"/api/v1/visits/{booking}/authorise", {"purpose": "tuition"})
    status, problem = await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    assert status == 409 and "itinerary" in problem["detail"]
    status, problem = await people.post("tutor", f"/api/v1/visits/{booking}/check-in")
    assert status == 404  # another practitioner does not see the visit at all


async def test_a_no_show_is_recorded_only_after_five_minutes_at_the_door(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking, _ = await _ready_visit(people, org, clock, sessionmaker)
    clock.set(clock.now().replace(hour=14))
    status, visit = await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    assert status == 200 and visit["checked_in_at"] is not None
    clock.advance(timedelta(minutes=4))
    status, problem = await people.post("tutor2", f"/api/v1/visits/{booking}/no-show")
    assert status == 409 and "Wait at the door for 5 minutes" in problem["detail"]
    clock.advance(timedelta(minutes=1))
    status, visit = await people.post("tutor2", f"/api/v1/visits/{booking}/no-show")
    assert status == 200 and visit["outcome"] == "no_show" and visit["checked_out_at"] is not None
    # The attendance shows on the practitioner's and the client's timetables (policies/000_*).
    status, mine = await people.get("tutor2", f"/api/v1/visits/timetable?practitioner_id={org.other_tutor_id}")
    assert status == 200 and [(e["booking_id"], e["attendance"]) for e in mine] == [(booking, "no_show")]
    status, theirs = await people.get("admin", f"/api/v1/visits/timetable?client_id={org.child_id}")
    assert [(e["booking_id"], e["kind"]) for e in theirs] == [(org.booking_id, "live_video"), (booking, "home_visit")]
    status, _ = await people.get("tutor", f"/api/v1/visits/timetable?practitioner_id={org.other_tutor_id}")
    assert status == 404


async def test_a_visit_cancelled_over_safety_is_logged_with_its_reason(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking, _ = await _ready_visit(people, org, clock, sessionmaker)
    status, visit = await people.post("tutor2", f"/api/v1/visits/{booking}/safety-cancel",
                                      {"reason": "aggressive dog loose in the garden"})
    assert status == 200 and visit["outcome"] == "cancelled_safety" and visit["status"] == "cancelled"
    async with sessionmaker() as s:
        event = (await s.execute(select(AuditEvent).where(AuditEvent.action == "visit.cancelled_for_safety"))
                 ).scalar_one()
    assert "aggressive dog" in event.details and event.actor == f"staff:{org.other_tutor_id}"


async def test_overdue_check_out_alerts_the_manager_then_the_safeguarding_lead_once_each(
        people: People, org: Org, clock: FakeClock, services: Services, settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking, back = await _ready_visit(people, org, clock, sessionmaker)
    async with sessionmaker() as s:  # the office holds their phone and vehicle (policies/003_*)
        tutor2 = await s.get(Staff, org.other_tutor_id)
        assert tutor2 is not None
        tutor2.phone, tutor2.vehicle = "+44 7700 900123", "red estate car, AB12 CDE"
        await s.commit()
    clock.set(back - timedelta(minutes=45))
    await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    clock.set(back + timedelta(minutes=settings.overdue_grace_minutes) - timedelta(seconds=1))
    assert await services.overdue.step(sessionmaker) == 0
    clock.advance(timedelta(seconds=1))
    assert await services.overdue.step(sessionmaker) == 1
    assert await services.overdue.step(sessionmaker) == 0  # not twice
    sent = await _alerts(sessionmaker)
    assert [m.recipient for m in sent] == ["manager@school.example.org"]
    plain = message_from_bytes(sent[0].body, policy=default).get_body(("plain",))
    assert plain is not None
    body = plain.get_content()
    assert "Tutor2 Person has not checked out" in body and "1 High Street, Histon" in body
    assert "Their phone: +44 7700 900123. Their vehicle: red estate car, AB12 CDE." in " ".join(body.split())
    clock.advance(timedelta(minutes=settings.overdue_escalate_minutes))
    # A restarted process (fresh service objects, same database) carries on from the stored state.
    restarted = OverdueAlerts(settings, clock, services.audit)
    assert await restarted.step(sessionmaker) == 1
    assert await restarted.step(sessionmaker) == 0
    assert [m.recipient for m in await _alerts(sessionmaker)] == ["manager@school.example.org",
                                                                   "safeguarding@school.example.org"]
    status, visit = await people.post("safeguarding", f"/api/v1/visits/{booking}/acknowledge")
    assert status == 200
    assert [(a["stage"], a["acknowledged_by_id"]) for a in visit["alerts"]] == [
        ("manager", org.safeguarding_id), ("safeguarding", org.safeguarding_id)]
    async with sessionmaker() as s:
        actions = (await s.execute(select(AuditEvent.action).where(AuditEvent.target == f"booking:{booking}"))
                   ).scalars().all()
    assert {"visit.overdue_manager_alerted", "visit.overdue_safeguarding_alerted",
            "visit.overdue_acknowledged"} <= set(actions)


async def test_the_escalation_reaches_safeguarding_leads_and_the_head_of_service_once_each_and_the_head_acknowledges(
        people: People, org: Org, clock: FakeClock, services: Services, settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    head = await add_staff(services, sessionmaker, "head", frozenset({Role.HEAD_OF_SERVICE}))
    both = await add_staff(services, sessionmaker, "deputy", frozenset({Role.SAFEGUARDING, Role.HEAD_OF_SERVICE}))
    away = await add_staff(services, sessionmaker, "away", frozenset({Role.HEAD_OF_SERVICE}))
    async with sessionmaker() as s:
        on_leave = await s.get(Staff, away)
        assert on_leave is not None
        on_leave.status = ApprovalStatus.SUSPENDED  # suspended staff are not alerted
        await s.commit()
    booking, back = await _ready_visit(people, org, clock, sessionmaker)
    clock.set(back - timedelta(minutes=45))
    await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    clock.set(back + timedelta(minutes=settings.overdue_grace_minutes))
    assert await services.overdue.step(sessionmaker) == 1
    assert [m.recipient for m in await _alerts(sessionmaker)] == ["manager@school.example.org"]
    clock.advance(timedelta(minutes=settings.overdue_escalate_minutes))
    escalated_at = clock.now()
    assert await services.overdue.step(sessionmaker) == 1
    assert await services.overdue.step(sessionmaker) == 0
    sent = [m.recipient for m in await _alerts(sessionmaker)][1:]
    # The deputy holds both escalation roles and is sent it once; the head on leave not at all.
    assert sorted(sent) == ["deputy@school.example.org", "head@school.example.org",
                            "safeguarding@school.example.org"]
    expected = [f"staff:{i}" for i in sorted((org.safeguarding_id, head, both))]
    async with sessionmaker() as s:
        alert = (await s.execute(select(VisitAlert).where(VisitAlert.stage == AlertStage.SAFEGUARDING))).scalar_one()
        event = (await s.execute(select(AuditEvent).where(AuditEvent.action == "visit.overdue_safeguarding_alerted"))
                 ).scalar_one()
    assert alert.recipients == ", ".join(expected) and alert.sent_at == escalated_at
    assert json.loads(event.details) == {"sent_at": escalated_at.isoformat(), "recipients": expected}
    clock.advance(timedelta(minutes=3))
    status, visit = await people.post("head", f"/api/v1/visits/{booking}/acknowledge")
    assert status == 200, visit
    assert [(a["stage"], a["acknowledged_by_id"], datetime.fromisoformat(a["acknowledged_at"]))
            for a in visit["alerts"]] == [("manager", head, clock.now()), ("safeguarding", head, clock.now())]
    async with sessionmaker() as s:
        acknowledged = (await s.execute(select(AuditEvent).where(AuditEvent.action == "visit.overdue_acknowledged"))
                        ).scalar_one()
    assert acknowledged.actor == f"staff:{head}" and acknowledged.target == f"booking:{booking}"
    status, _ = await people.post("tutor", f"/api/v1/visits/{booking}/acknowledge")
    assert status == 403  # a practitioner cannot silence an alert


async def test_an_acknowledged_alert_is_not_escalated_and_a_check_out_stops_alerts(
        people: People, org: Org, clock: FakeClock, services: Services, settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking, back = await _ready_visit(people, org, clock, sessionmaker)
    clock.set(back - timedelta(minutes=45))
    await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    clock.set(back + timedelta(minutes=settings.overdue_grace_minutes))
    assert await services.overdue.step(sessionmaker) == 1
    status, _ = await people.post("manager", f"/api/v1/visits/{booking}/acknowledge")
    assert status == 200
    clock.advance(timedelta(minutes=settings.overdue_escalate_minutes + 5))
    assert await services.overdue.step(sessionmaker) == 0
    booking2, back2 = await _ready_visit(people, org, clock, sessionmaker, hour=16, adult=True)
    clock.set(back2 - timedelta(minutes=45))
    await people.post("tutor2", f"/api/v1/visits/{booking2}/check-in")
    status, _ = await people.post("tutor2", f"/api/v1/visits/{booking2}/check-out")
    clock.set(back2 + timedelta(hours=3))
    assert await services.overdue.step(sessionmaker) == 0
    assert len(await _alerts(sessionmaker)) == 1


async def test_two_watchers_at_once_send_each_alert_once(
        people: People, org: Org, clock: FakeClock, services: Services, settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking, back = await _ready_visit(people, org, clock, sessionmaker)
    clock.set(back + timedelta(minutes=settings.overdue_grace_minutes + 1))
    other = OverdueAlerts(settings, clock, services.audit)
    results = await asyncio.gather(services.overdue.step(sessionmaker), other.step(sessionmaker),
                                   return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sum(r for r in results if isinstance(r, int)) == 1
    assert len(await _alerts(sessionmaker)) == 1


async def test_after_the_first_visit_the_next_is_blocked_until_a_manager_confirms_the_checklist(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    first, _ = await _ready_visit(people, org, clock, sessionmaker, hour=10)
    next_week = clock.now().replace(hour=10) + timedelta(days=7)
    _, second = await people.post("admin", "/api/v1/visits", home_visit(org, next_week))
    assert second["blocked_reason"] is None  # the first visit has not been held yet
    clock.set(clock.now().replace(hour=10))
    assert (await people.post("tutor2", f"/api/v1/visits/{first}/check-in"))[0] == 200
    status, visit = await people.get("admin", f"/api/v1/visits/{second['booking_id']}")
    assert "workspace checklist from the first visit has not been confirmed" in visit["blocked_reason"]
    status, problem = await people.post("manager", f"/api/v1/visits/{second['booking_id']}/authorise",
                                        {"purpose": "tuition"})
    assert status == 409 and "workspace checklist" in problem["detail"]
    status, check = await people.post("tutor2", f"/api/v1/visits/{first}/checklist", {"answers": CHECKLIST})
    assert status == 201
    status, visit = await people.get("tutor2", f"/api/v1/visits/{second['booking_id']}")
    assert "waiting for a manager" in visit["blocked_reason"]
    status, _ = await people.post("manager", f"/api/v1/visits/checklists/{check['id']}/confirm")
    assert status == 200
    status, visit = await people.post("manager", f"/api/v1/visits/{second['booking_id']}/authorise",
                                      {"purpose": "tuition"})
    assert status == 200 and visit["blocked_reason"] is None
    # A reported change to the home blocks the next visit again until a new checklist is confirmed.
    clock.advance(timedelta(minutes=20))
    status, _ = await people.post("tutor2", f"/api/v1/clients/{org.child_id}/workspace-change",
                                  {"reason": "family moved the piano into a bedroom"})
    assert status == 201
    status, visit = await people.get("tutor2", f"/api/v1/visits/{second['booking_id']}")
    assert "the home or workspace changed" in visit["blocked_reason"]


async def test_the_checklist_is_due_again_after_a_year_and_failed_items_cannot_be_confirmed(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    first, _ = await _ready_visit(people, org, clock, sessionmaker, hour=10)
    clock.set(clock.now().replace(hour=10))
    await people.post("tutor2", f"/api/v1/visits/{first}/check-in")
    _, bad = await people.post("tutor2", f"/api/v1/visits/{first}/checklist",
                               {"answers": CHECKLIST | {"window_or_open_door": False}})
    status, problem = await people.post("manager", f"/api/v1/visits/checklists/{bad['id']}/confirm")
    assert status == 409 and "window_or_open_door" in problem["detail"]
    _, good = await people.post("tutor2", f"/api/v1/visits/{first}/checklist", {"answers": CHECKLIST})
    await people.post("manager", f"/api/v1/visits/checklists/{good['id']}/confirm")
    _, in_a_year = await people.post("admin", "/api/v1/visits", home_visit(org, clock.now() + timedelta(days=364)))
    assert in_a_year["blocked_reason"] is None
    _, too_late = await people.post("admin", "/api/v1/visits", home_visit(org, clock.now() + timedelta(days=365)))
    assert "annual workspace checklist was due on 2027-11-23" in too_late["blocked_reason"]


async def test_a_visit_cancelled_before_anyone_set_out_raises_no_alert(
        people: People, org: Org, clock: FakeClock, services: Services, settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking, back = await _ready_visit(people, org, clock, sessionmaker)
    status, _ = await people.post("admin", f"/api/v1/bookings/{booking}/cancel", {"reason": "family ill"})
    assert status == 200
    clock.set(back + timedelta(hours=2))
    assert await services.overdue.step(sessionmaker) == 0


async def test_an_alert_whose_roles_nobody_holds_now_still_reaches_someone_who_can_act(
        people: People, org: Org, clock: FakeClock, services: Services, settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    booking, back = await _ready_visit(people, org, clock, sessionmaker)
    clock.set(back - timedelta(minutes=45))
    await people.post("tutor2", f"/api/v1/visits/{booking}/check-in")
    async with sessionmaker() as s:  # the only manager's approval is suspended
        manager = await s.get_one(Staff, org.manager_id)
        manager.status = ApprovalStatus.SUSPENDED
        await s.commit()
    clock.set(back + timedelta(minutes=settings.overdue_grace_minutes))
    assert await services.overdue.step(sessionmaker) == 1
    assert [m.recipient for m in await _alerts(sessionmaker)] == ["safeguarding@school.example.org"]
