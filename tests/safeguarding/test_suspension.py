"""Suspension of a client or a family (policies/000_*): new bookings refused, links stop working, audited."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.services import Services
from tests.media.peers import until
from tests.support.org import PASSWORD, Org, issue_link
from tests.support.visits import People
from tests.web.live.conftest import Caller


def _booking(org: Org, clock: FakeClock) -> dict[str, object]:
    return {"kind": "live_video", "practitioner_id": org.tutor_id, "client_id": org.child_id,
            "starts_at": (clock.now() + timedelta(days=1)).isoformat(), "duration_minutes": 30,
            "guardian_ids": [org.guardian_id]}


async def _open(client: TestClient, token: str) -> int:
    response = await client.get(f"/l/{token}", allow_redirects=False)
    return response.status


async def test_suspending_a_client_refuses_bookings_and_stops_links_until_reinstated(
        people: People, org: Org, clock: FakeClock, client: TestClient, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    parent = await people.new_client()
    assert await _open(parent, token) == 303
    status, _ = await people.post("manager", f"/api/v1/clients/{org.child_id}/suspend", {"reason": "concern"})
    assert status == 403  # only the safeguarding lead suspends
    status, result = await people.post("safeguarding", f"/api/v1/clients/{org.child_id}/suspend",
                                       {"reason": "safeguarding referral made"})
    assert status == 200 and result["status"] == "suspended" and org.booking_id in result["live_bookings"]
    status, problem = await people.post("admin", "/api/v1/bookings", _booking(org, clock))
    assert status == 409 and problem["rule"] == "suspension"
    assert await _open(parent, token) == 403
    context = await parent.get(f"/s/{org.booking_id}/api/context")  # the cookie from before stops too
    assert context.status == 403
    status, _ = await people.post("safeguarding", f"/api/v1/clients/{org.child_id}/reinstate",
                                  {"reason": "referral closed"})
    assert status == 200
    status, _ = await people.post("admin", "/api/v1/bookings", _booking(org, clock))
    assert status == 201
    async with sessionmaker() as s:
        actions = (await s.execute(select(AuditEvent.action).where(AuditEvent.target == f"client:{org.child_id}"))
                   ).scalars().all()
    assert {"client.suspended", "client.reinstated"} <= set(actions)


async def test_suspending_a_family_refuses_their_bookings_and_links(
        people: People, org: Org, clock: FakeClock, client: TestClient, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    status, result = await people.post("safeguarding", f"/api/v1/guardians/{org.guardian_id}/suspend",
                                       {"reason": "allegation under investigation"})
    assert status == 200 and result["live_bookings"] == [org.booking_id]
    status, problem = await people.post("admin", "/api/v1/bookings", _booking(org, clock))
    assert status == 409 and "suspended" in problem["detail"]
    parent = await people.new_client()
    assert await _open(parent, token) == 403
    status, problem = await people.post("safeguarding", f"/api/v1/guardians/{org.guardian_id}/suspend",
                                        {"reason": "again"})
    assert status == 409


async def _lead(live_server: str, org: Org, clock: FakeClock) -> tuple[ClientSession, str]:
    """The safeguarding lead signed in (password and TOTP) on the live server."""
    http = ClientSession(cookie_jar=CookieJar(unsafe=True))
    response = await http.post(f"{live_server}/api/v1/auth/login",
                               json={"email": org.email("safeguarding"), "password": PASSWORD})
    csrf = (await response.json())["csrf_token"]
    code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
    response = await http.post(f"{live_server}/api/v1/auth/second-factor", json={"code": code},
                               headers={"X-CSRF-Token": csrf})
    assert response.status == 200
    return http, csrf


async def _guardian_and_tutor_in_session(live_server: str, org: Org, clock: FakeClock, services: Services,
                                        sessionmaker: async_sessionmaker[AsyncSession]) -> list[Caller]:
    """Gail and her tutor, each in the live session from their own link, welcomed."""
    clock.advance(timedelta(hours=1))  # the booking starts now
    callers: list[Caller] = []
    for subject in (f"guardian:{org.guardian_id}", f"staff:{org.tutor_id}"):
        http = ClientSession(cookie_jar=CookieJar(unsafe=True))
        token = await issue_link(services, sessionmaker, org.booking_id, subject)
        assert (await http.get(f"{live_server}/l/{token}", allow_redirects=False)).status == 303
        caller = Caller(http, live_server, org.booking_id)
        await caller.connect()
        await caller.wait_for("welcome")
        callers.append(caller)
    return callers


async def test_a_suspended_guardian_is_removed_from_the_live_session_and_a_client_suspension_ends_it(
        live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    callers = await _guardian_and_tutor_in_session(live_server, org, clock, services, sessionmaker)
    guardian, tutor = callers
    lead, csrf = await _lead(live_server, org, clock)
    try:
        response = await lead.post(f"{live_server}/api/v1/guardians/{org.guardian_id}/suspend",
                                   json={"reason": "allegation"}, headers={"X-CSRF-Token": csrf})
        assert response.status == 200
        assert (await guardian.wait_for("removed"))["reason"].startswith("This session cannot go ahead")
        await until(lambda: guardian.closed_code == 4403)
        assert tutor.closed_code is None  # the practitioner stays
        response = await lead.post(f"{live_server}/api/v1/clients/{org.child_id}/suspend",
                                   json={"reason": "referral"}, headers={"X-CSRF-Token": csrf})
        assert response.status == 200
        await tutor.wait_for("ended")
        await until(lambda: tutor.closed_code is not None)
    finally:
        for caller in callers:
            await caller.close()
            await caller.http.close()
        await lead.close()


async def test_a_suspended_practitioner_ends_their_live_session_at_once(
        live_server: str, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    callers = await _guardian_and_tutor_in_session(live_server, org, clock, services, sessionmaker)
    guardian, tutor = callers
    lead, csrf = await _lead(live_server, org, clock)
    try:
        response = await lead.post(f"{live_server}/api/v1/staff/{org.tutor_id}/suspend",
                                   json={"reason": "allegation about a lesson"}, headers={"X-CSRF-Token": csrf})
        assert response.status == 200, await response.text()
        assert (await guardian.wait_for("ended"))["reason"].startswith("This session cannot go ahead")
        await until(lambda: guardian.closed_code is not None and tutor.closed_code is not None)
    finally:
        for caller in callers:
            await caller.close()
            await caller.http.close()
        await lead.close()
