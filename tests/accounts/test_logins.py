"""Staff sign-in: passwords, lockout, timeouts, new ids, CSRF, logout everywhere, suspension, TOTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pyotp
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import LoginSession, Staff
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.web.keys import SESSION_COOKIE
from tests.support.org import PASSWORD, Org, sign_in


@asynccontextmanager
async def second_browser(client: TestClient) -> AsyncIterator[ClientSession]:
    """Another browser on the same server: its own cookie jar."""
    async with ClientSession(base_url=str(client.make_url("/")), cookie_jar=CookieJar(unsafe=True)) as other:
        yield other


async def _sign_in_other(other: ClientSession, email: str) -> None:
    r = await other.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status == 200


def _cookie(client: TestClient) -> str:
    return next(c.value for c in client.session.cookie_jar if c.key == SESSION_COOKIE)


async def test_wrong_password_and_unknown_email_get_the_same_answer(client: TestClient, org: Org) -> None:
    wrong = await client.post("/api/v1/auth/login", json={"email": org.email("admin"), "password": "nope" * 4})
    unknown = await client.post("/api/v1/auth/login", json={"email": "who@x.example.org", "password": "nope" * 4})
    assert wrong.status == unknown.status == 401
    assert (await wrong.json())["detail"] == (await unknown.json())["detail"]
    assert wrong.headers["Content-Type"].startswith("application/problem+json")


async def test_repeated_failures_lock_the_account_for_a_while(client: TestClient, org: Org, clock: FakeClock) -> None:
    for _ in range(5):
        r = await client.post("/api/v1/auth/login", json={"email": org.email("admin"), "password": "x" * 12})
        assert r.status == 401
    locked = await client.post("/api/v1/auth/login", json={"email": org.email("admin"), "password": PASSWORD})
    assert locked.status == 429
    assert "Try again in" in (await locked.json())["detail"]
    clock.advance(timedelta(minutes=16))
    assert (await client.post("/api/v1/auth/login",
                              json={"email": org.email("admin"), "password": PASSWORD})).status == 200


async def test_every_login_gets_a_new_session_id(client: TestClient, org: Org) -> None:
    await sign_in(client, org.email("admin"))
    first = _cookie(client)
    await sign_in(client, org.email("admin"))
    assert _cookie(client) != first


async def test_session_cookie_is_httponly_and_samesite(client: TestClient, org: Org) -> None:
    r = await client.post("/api/v1/auth/login", json={"email": org.email("admin"), "password": PASSWORD})
    header = r.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header
    assert r.cookies[SESSION_COOKIE].value not in str(await r.json())


async def test_idle_timeout_and_absolute_lifetime(client: TestClient, org: Org, clock: FakeClock) -> None:
    await sign_in(client, org.email("admin"))
    clock.advance(timedelta(minutes=29))
    assert (await client.get("/api/v1/me")).status == 200
    clock.advance(timedelta(minutes=31))
    assert (await client.get("/api/v1/me")).status == 401  # idle for 31 minutes
    await sign_in(client, org.email("admin"))
    for _ in range(12 * 3):  # active every 20 minutes, still ends after 12 hours
        clock.advance(timedelta(minutes=20))
        status = (await client.get("/api/v1/me")).status
    assert status == 401


async def test_state_changes_need_the_csrf_token(client: TestClient, org: Org) -> None:
    csrf = await sign_in(client, org.email("admin"))
    body = {"name": "New Guardian", "email": "new@family.example.org"}
    assert (await client.post("/api/v1/guardians", json=body)).status == 403
    assert (await client.post("/api/v1/guardians", json=body, headers={"X-CSRF-Token": "wrong"})).status == 403
    assert (await client.post("/api/v1/guardians", json=body, headers={"X-CSRF-Token": csrf})).status == 201


async def test_cross_site_origin_is_refused(client: TestClient, org: Org) -> None:
    csrf = await sign_in(client, org.email("admin"))
    r = await client.post("/api/v1/guardians", json={"name": "X", "email": "x@family.example.org"},
                          headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example.com"})
    assert r.status == 403
    assert "another site" in (await r.json())["detail"]


async def test_logout_everywhere_ends_other_browsers(client: TestClient, org: Org) -> None:
    async with second_browser(client) as other:
        await _sign_in_other(other, org.email("admin"))
        csrf = await sign_in(client, org.email("admin"))
        r = await client.post("/api/v1/auth/logout-everywhere", headers={"X-CSRF-Token": csrf})
        assert (await r.json())["signed_out"] == 2
        assert (await other.get("/api/v1/me")).status == 401
        assert (await client.get("/api/v1/me")).status == 401


async def test_suspension_ends_every_session_of_that_person(
    client: TestClient, org: Org, login: object, sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with second_browser(client) as tutor:
        await _sign_in_other(tutor, org.email("tutor"))
        assert (await tutor.get("/api/v1/me")).status == 200
        csrf = await login("safeguarding")  # type: ignore[operator]
        r = await client.post(f"/api/v1/staff/{org.tutor_id}/suspend", json={"reason": "allegation under review"},
                              headers={"X-CSRF-Token": csrf})
        assert r.status == 200, await r.text()
        assert (await tutor.get("/api/v1/me")).status == 401
        again = await tutor.post("/api/v1/auth/login", json={"email": org.email("tutor"), "password": PASSWORD})
        assert again.status == 403
    async with sessionmaker() as s:
        staff = await s.get(Staff, org.tutor_id)
        assert staff is not None and staff.suspended_reason == "allegation under review"
        assert staff.suspended_by_id == org.safeguarding_id
        open_sessions = await s.scalar(select(func.count()).select_from(LoginSession).where(
            LoginSession.staff_id == org.tutor_id, LoginSession.ended_at.is_(None)))
        assert open_sessions == 0
        event = (await s.execute(select(AuditEvent).where(AuditEvent.action == "staff.suspended"))).scalar_one()
        assert event.actor == f"staff:{org.safeguarding_id}" and event.target == f"staff:{org.tutor_id}"


async def test_totp_is_required_after_password_when_enrolled(client: TestClient, org: Org, clock: FakeClock) -> None:
    r = await client.post("/api/v1/auth/login", json={"email": org.email("safeguarding"), "password": PASSWORD})
    me = await r.json()
    assert me["needs_second_factor"] is True
    assert (await client.get("/api/v1/staff")).status == 401  # half signed in: nothing yet
    bad = await client.post("/api/v1/auth/second-factor", json={"code": "000000"},
                            headers={"X-CSRF-Token": me["csrf_token"]})
    assert bad.status == 401
    code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
    good = await client.post("/api/v1/auth/second-factor", json={"code": code},
                             headers={"X-CSRF-Token": me["csrf_token"]})
    assert good.status == 200
    assert (await client.get("/api/v1/staff")).status == 200


async def test_safeguarding_cannot_act_until_enrolled_then_can(
    client: TestClient, org: Org, clock: FakeClock, login: object
) -> None:
    admin_csrf = await login("admin")  # type: ignore[operator]
    r = await client.post("/api/v1/staff", headers={"X-CSRF-Token": admin_csrf}, json={
        "name": "New Lead", "email": "lead2@school.example.org", "roles": ["safeguarding"], "password": PASSWORD})
    assert r.status == 201
    csrf = await sign_in(client, "lead2@school.example.org")
    refused = await client.get("/api/v1/staff")
    assert refused.status == 403 and "authenticator" in (await refused.json())["detail"]
    uri = (await (await client.post("/api/v1/me/totp", headers={"X-CSRF-Token": csrf})).json())["otpauth_uri"]
    secret = pyotp.parse_uri(uri).secret
    wrong = await client.post("/api/v1/me/totp/confirm", json={"code": "123456"}, headers={"X-CSRF-Token": csrf})
    assert wrong.status == 422
    code = pyotp.TOTP(secret).at(int(clock.now().timestamp()))
    ok = await client.post("/api/v1/me/totp/confirm", json={"code": code}, headers={"X-CSRF-Token": csrf})
    assert ok.status == 200
    assert (await client.get("/api/v1/staff")).status == 200


async def test_passwords_are_stored_as_argon2_hashes(org: Org, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker() as s:
        staff = await s.get(Staff, org.admin_id)
        assert staff is not None and staff.password_hash is not None
        assert staff.password_hash.startswith("$argon2id$") and PASSWORD not in staff.password_hash
        assert staff.totp_secret is None
        lead = await s.get(Staff, org.safeguarding_id)
        assert lead is not None and lead.totp_secret is not None and org.totp_secret not in lead.totp_secret
