"""The second factor: wrong codes are limited per login and per account, a code works once, and a login
that still owes its code can do nothing but give it (or sign out of this browser)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pyotp
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.clock import FakeClock
from tests.support.org import PASSWORD, Org


def _wrong(right: str) -> str:
    return f"{(int(right) + 500_000) % 1_000_000:06d}"


def _code(org: Org, clock: FakeClock) -> str:
    return pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))


async def _half_sign_in(http: ClientSession | TestClient, org: Org) -> str:
    """Password only, as the safeguarding lead: returns the CSRF token of a login owing its code."""
    r = await http.post("/api/v1/auth/login", json={"email": org.email("safeguarding"), "password": PASSWORD})
    me = await r.json()
    assert r.status == 200 and me["needs_second_factor"] is True
    return str(me["csrf_token"])


async def _give(http: ClientSession | TestClient, csrf: str, code: str) -> tuple[int, str]:
    r = await http.post("/api/v1/auth/second-factor", json={"code": code}, headers={"X-CSRF-Token": csrf})
    return r.status, str((await r.json()).get("detail", ""))


async def _count(sessionmaker: async_sessionmaker[AsyncSession], action: str) -> int:
    async with sessionmaker() as s:
        return int(await s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == action))
                   or 0)


async def test_a_burst_of_wrong_codes_is_cut_off_and_the_login_ends(
    client: TestClient, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """40 wrong codes at once: five are checked, then the login is over; even the right code is too late."""
    csrf = await _half_sign_in(client, org)
    right = _code(org, clock)
    answers = await asyncio.gather(*[_give(client, csrf, _wrong(right)) for _ in range(40)])
    assert {status for status, _ in answers} == {401}
    assert await _count(sessionmaker, "staff.totp_failed") == 5
    assert await _count(sessionmaker, "staff.totp_login_ended") == 1
    assert (await _give(client, csrf, right))[0] == 401
    assert (await client.get("/api/v1/me")).status == 401


async def test_wrong_codes_across_logins_pause_the_second_factor_for_the_account(
    client: TestClient, org: Org, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A password alone no longer buys unlimited guesses by signing in again: ten wrong codes per hour."""
    right = _code(org, clock)
    for _ in range(2):  # two logins, five wrong codes each: each login ends
        csrf = await _half_sign_in(client, org)
        for _ in range(5):
            assert (await _give(client, csrf, _wrong(right)))[0] == 401
    csrf = await _half_sign_in(client, org)
    status, detail = await _give(client, csrf, right)
    assert status == 429 and "Try again in" in detail
    assert await _count(sessionmaker, "staff.totp_locked") == 1
    clock.advance(timedelta(minutes=61))
    csrf = await _half_sign_in(client, org)
    assert (await _give(client, csrf, _code(org, clock)))[0] == 200


async def test_a_code_finishes_one_sign_in_only(client: TestClient, org: Org, clock: FakeClock) -> None:
    code = _code(org, clock)
    csrf = await _half_sign_in(client, org)
    assert (await _give(client, csrf, code))[0] == 200
    base = str(client.make_url("/"))
    for _ in range(2):  # the same code in two more browsers, within its 30 seconds
        async with ClientSession(base_url=base, cookie_jar=CookieJar(unsafe=True)) as other:
            other_csrf = await _half_sign_in(other, org)
            status, detail = await _give(other, other_csrf, code)
            assert status == 401 and "used already" in detail
    clock.advance(30)
    async with ClientSession(base_url=base, cookie_jar=CookieJar(unsafe=True)) as other:
        other_csrf = await _half_sign_in(other, org)
        assert (await _give(other, other_csrf, _code(org, clock)))[0] == 200


async def test_the_previous_step_is_refused_once_a_later_one_was_used(
    client: TestClient, org: Org, clock: FakeClock
) -> None:
    """A phone running ahead may use the next step's code; the step before it cannot be replayed after."""
    totp = pyotp.TOTP(org.totp_secret)
    now = int(clock.now().timestamp())
    csrf = await _half_sign_in(client, org)
    assert (await _give(client, csrf, totp.at(now + 30)))[0] == 200
    async with ClientSession(base_url=str(client.make_url("/")), cookie_jar=CookieJar(unsafe=True)) as other:
        other_csrf = await _half_sign_in(other, org)
        assert (await _give(other, other_csrf, totp.at(now)))[0] == 401


async def test_a_login_owing_its_code_can_only_give_it_or_sign_out(client: TestClient, org: Org) -> None:
    csrf = await _half_sign_in(client, org)
    me = await client.get("/api/v1/me")
    assert me.status == 401 and (await me.json())["next"] == "second_factor"
    everywhere = await client.post("/api/v1/auth/logout-everywhere", headers={"X-CSRF-Token": csrf})
    assert everywhere.status == 401
    assert (await client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": csrf})).status == 200


async def test_the_origin_is_compared_with_the_public_url_not_the_host_header(
    client: TestClient, org: Org, settings: object
) -> None:
    r = await client.post("/api/v1/auth/login", json={"email": org.email("admin"), "password": PASSWORD})
    csrf = (await r.json())["csrf_token"]
    body = {"name": "Sam Lee", "email": "sam@home.example"}
    # The test server's own address is what the Host header says: a rebound DNS name would say the same.
    as_host = await client.post("/api/v1/guardians", json=body,
                                headers={"X-CSRF-Token": csrf, "Origin": f"http://{client.host}:{client.port}"})
    assert as_host.status == 403 and "another site" in (await as_host.json())["detail"]
    public = await client.post("/api/v1/guardians", json=body,
                               headers={"X-CSRF-Token": csrf, "Origin": settings.public_url})  # type: ignore[attr-defined]
    assert public.status == 201
