"""policies/000_*: a practitioner unavailable for work during the day does not operate live sessions in the
evening without their manager's agreement (server/bookings/evening.py), through the API with the FakeClock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp import WSMsgType
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.mail.models import OutboxMessage
from server.services import Services
from server.web.live.hub import SessionHub
from tests.support.org import Org, issue_link
from tests.support.visits import People


def _session(org: Org, starts_at: datetime, minutes: int = 60) -> dict[str, Any]:
    """A live video session with the tutor for the child, the guardian invited."""
    return {"kind": "live_video", "practitioner_id": org.tutor_id, "client_id": org.child_id,
            "starts_at": starts_at.isoformat(), "duration_minutes": minutes, "guardian_ids": [org.guardian_id]}


async def _mail_for(sessionmaker: async_sessionmaker[AsyncSession], booking_id: int) -> int:
    async with sessionmaker() as s:
        return int((await s.execute(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.booking_id == booking_id))).scalar_one())


async def _actions(sessionmaker: async_sessionmaker[AsyncSession], booking_id: int) -> list[str]:
    async with sessionmaker() as s:
        return list((await s.execute(select(AuditEvent.action).where(
            AuditEvent.target == f"booking:{booking_id}").order_by(AuditEvent.seq))).scalars())


async def _join(people: People, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
                booking_id: int, subject: str) -> tuple[dict[str, Any], int | None]:
    """Open ``subject``'s join link in a fresh browser, open the session socket: (first message, close code)."""
    browser = await people.new_client()
    token = await issue_link(services, sessionmaker, booking_id, subject)
    assert (await browser.get(f"/l/{token}", allow_redirects=False)).status == 303
    ws = await browser.ws_connect(f"/s/{booking_id}/ws", headers={"Origin": services.settings.public_url})
    first: dict[str, Any] = {}
    while (msg := await ws.receive(timeout=10)).type == WSMsgType.TEXT:
        data = msg.json()
        if data["type"] in ("welcome", "error"):
            first = data
            break
    await ws.close()
    return first, ws.close_code


async def test_a_live_session_into_the_evening_of_a_day_unavailable_waits_for_a_manager_uninvited(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tomorrow = clock.now() + timedelta(days=1)  # Europe/London is UTC in November
    status, _ = await people.post("manager", f"/api/v1/staff/{org.tutor_id}/unavailable",
                                  {"day": tomorrow.date().isoformat(), "reason": "sick"})
    assert status == 201
    status, day = await people.post("admin", "/api/v1/bookings", _session(org, tomorrow.replace(hour=16)))
    assert status == 201 and day["status"] == "confirmed" and day["blocked_reason"] is None  # ends 17:00
    status, evening = await people.post("admin", "/api/v1/bookings",
                                        _session(org, tomorrow.replace(hour=17, minute=30)))
    assert status == 201 and evening["status"] == "requested"
    assert "unavailable during the day and it runs past 18:00" in evening["blocked_reason"]
    assert f"/api/v1/bookings/{evening['id']}/evening-agreement" in evening["blocked_reason"]  # how to get it
    assert await _mail_for(sessionmaker, evening["id"]) == 0  # nobody is told of a session that may not happen
    path = f"/api/v1/bookings/{evening['id']}/evening-agreement"
    for not_a_manager in ("admin", "tutor", "safeguarding"):
        status, problem = await people.post(not_a_manager, path, {"reason": "feeling better"})
        assert status == 403, (not_a_manager, problem)
    status, agreed = await people.post("manager", path, {"reason": "recovered by the afternoon"})
    assert status == 200, agreed
    assert agreed["status"] == "confirmed" and agreed["blocked_reason"] is None
    assert agreed["evening_agreed_by_id"] == org.manager_id
    invited = await _mail_for(sessionmaker, day["id"])
    assert invited > 0 and await _mail_for(sessionmaker, evening["id"]) == invited  # the invitations go out now
    status, problem = await people.post("manager", path, {"reason": "again"})
    assert status == 409 and "not waiting for agreement" in problem["detail"]
    actions = await _actions(sessionmaker, evening["id"])
    assert actions[-2:] == ["booking.evening_agreed", "booking.confirmed"]
    async with sessionmaker() as s:
        event = (await s.execute(select(AuditEvent).where(AuditEvent.action == "booking.evening_agreed"))).scalar_one()
    assert event.actor == f"staff:{org.manager_id}" and "recovered by the afternoon" in event.details


async def test_marking_unavailable_after_booking_blocks_the_evening_session_until_a_manager_agrees(
        people: People, org: Org, clock: FakeClock, services: Services, hub: SessionHub,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    status, booking = await people.post("admin", "/api/v1/bookings", _session(org, clock.now().replace(hour=18), 45))
    assert status == 201 and booking["status"] == "confirmed" and booking["blocked_reason"] is None
    status, marked = await people.post("admin", f"/api/v1/staff/{org.tutor_id}/unavailable",
                                       {"day": clock.now().date().isoformat(), "reason": "dentist all day"})
    assert status == 201 and marked["blocked_booking_ids"] == [booking["id"]]  # the 10:00 session is not
    status, shown = await people.get("tutor", f"/api/v1/bookings/{booking['id']}")
    assert status == 200 and shown["status"] == "confirmed"
    assert shown["blocked_reason"].startswith("Session blocked: the practitioner was unavailable during the day")
    assert "booking.evening_blocked" in await _actions(sessionmaker, booking["id"])

    clock.set(clock.now().replace(hour=17, minute=55))  # the join window is open
    refused, code = await _join(people, services, sessionmaker, booking["id"], f"staff:{org.tutor_id}")
    assert refused["type"] == "error" and refused["code"] == "evening_agreement" and code == 4403
    assert "no manager has agreed to evening work" in refused["detail"]
    welcome, _ = await _join(people, services, sessionmaker, booking["id"], f"guardian:{org.guardian_id}")
    assert welcome["type"] == "welcome"  # the family may wait in the session; the practitioner may not run it

    status, agreed = await people.post("manager", f"/api/v1/bookings/{booking['id']}/evening-agreement",
                                       {"reason": "only a morning appointment, fine for the evening"})
    assert status == 200 and agreed["blocked_reason"] is None
    welcome, _ = await _join(people, services, sessionmaker, booking["id"], f"staff:{org.tutor_id}")
    assert welcome["type"] == "welcome" and welcome["role"] == "host"


async def test_a_manager_cannot_agree_to_their_own_evening_work_and_moving_a_session_needs_agreement_again(
        people: People, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        tutor = await s.get(Staff, org.tutor_id)
        assert tutor is not None
        tutor.roles = "practitioner manager"  # a practitioner who also manages others
        await s.commit()
    tomorrow = clock.now() + timedelta(days=1)
    for day in (tomorrow, tomorrow + timedelta(days=1)):
        await people.post("manager", f"/api/v1/staff/{org.tutor_id}/unavailable",
                          {"day": day.date().isoformat(), "reason": "annual leave"})
    _, booking = await people.post("admin", "/api/v1/bookings", _session(org, tomorrow.replace(hour=18)))
    path = f"/api/v1/bookings/{booking['id']}/evening-agreement"
    status, problem = await people.post("tutor", path, {"reason": "I feel fine"})
    assert status == 403 and "your own evening work" in problem["detail"]
    status, agreed = await people.post("manager", path, {"reason": "agreed for tomorrow"})
    assert status == 200 and agreed["status"] == "confirmed"
    status, moved = await people.post("admin", f"/api/v1/bookings/{booking['id']}/reschedule", {
        "starts_at": (tomorrow + timedelta(days=1)).replace(hour=18).isoformat()})
    assert status == 200 and moved["evening_agreed_by_id"] is None  # agreed for the old day, not the new one
    assert "no manager has agreed to evening work" in moved["blocked_reason"]
    status, _ = await people.post("admin", f"/api/v1/bookings/{booking['id']}/cancel", {"reason": "still on leave"})
    assert status == 200
