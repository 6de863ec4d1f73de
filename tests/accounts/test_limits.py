"""Sign-in limits under concurrency, per address and account; unknown emails like real ones; argon2 off the loop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import timedelta

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.logins import Logins, address_of
from server.accounts.models import Role
from server.accounts.passwords import Passwords
from server.audit.models import AuditEvent
from server.clock import FakeClock
from server.errors import RateLimited, Unauthenticated
from server.services import Services
from tests.support.org import PASSWORD, SETUP, Org, add_staff
from tests.support.passwords import watched_checks

WRONG = "not the password at all"


async def _post(client: TestClient, email: str, password: str) -> ClientResponse:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    await response.read()
    return response


async def test_a_burst_of_wrong_passwords_runs_no_more_checks_than_the_limit(
    client: TestClient, org: Org, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, services: Services,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """12 wrong passwords at once: 5 are checked (held in flight), 7 refused unchecked; the right password in
    the same burst is refused too; afterwards this place is locked out of the account, no other place is."""
    email = org.email("admin")
    answered: list[int] = []
    # the pool is not what limits this burst (raising=False: before the pool, the attribute was not there)
    monkeypatch.setattr(services.logins, "passwords", Passwords(12), raising=False)
    with watched_checks(monkeypatch, hold=True) as checks:

        async def attempt(password: str) -> None:
            answered.append((await _post(client, email, password)).status)
            checks.poke()

        burst = [asyncio.create_task(attempt(WRONG)) for _ in range(12)]
        await checks.wait_for(lambda: checks.entered + len(answered) >= 12)
        assert checks.entered == 5 and checks.on_loop == 0
        assert answered == [429] * 7
        right = await _post(client, email, PASSWORD)  # in the middle of the burst: no check, no way in
        assert right.status == 429 and checks.entered == 5
        checks.release()
        await asyncio.gather(*burst)
    assert sorted(answered) == [401] * 5 + [429] * 7
    assert (await _post(client, email, PASSWORD)).status == 429  # still locked, for this address
    async with sessionmaker() as s:  # the real user elsewhere is not locked out
        result = await services.logins.login(s, email, PASSWORD, "198.51.100.20")
        assert result.staff.id == org.admin_id
        locked = (await s.execute(select(AuditEvent).where(AuditEvent.action == "staff.locked"))).scalars().all()
    assert len(locked) == 1 and locked[0].target == f"staff:{org.admin_id}"
    clock.advance(timedelta(minutes=16))
    assert (await _post(client, email, PASSWORD)).status == 200


async def test_five_wrong_passwords_from_elsewhere_do_not_lock_the_real_user_out(
    client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker() as s:
        for _ in range(5):
            with pytest.raises(Unauthenticated):
                await services.logins.login(s, org.email("tutor"), WRONG, "203.0.113.5")
        with pytest.raises(RateLimited):
            await services.logins.login(s, org.email("tutor"), PASSWORD, "203.0.113.5")
    assert (await _post(client, org.email("tutor"), PASSWORD)).status == 200


async def test_an_address_is_limited_across_emails_and_an_account_across_addresses(
    org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = replace(services.settings, login_address_max_failures=3, login_account_max_failures=4)
    logins = Logins(settings, clock, services.audit, services.keys)
    async with sessionmaker() as s:
        for n in range(3):
            with pytest.raises(Unauthenticated):
                await logins.login(s, f"nobody{n}@x.example.org", WRONG, "192.0.2.50")
        with pytest.raises(RateLimited, match="from your network"):
            await logins.login(s, org.email("admin"), PASSWORD, "192.0.2.50")  # even the right password
        for n in range(4):  # a guesser spread over four addresses, once each
            with pytest.raises(Unauthenticated):
                await logins.login(s, org.email("manager"), WRONG, f"198.51.100.{n + 1}")
        with pytest.raises(RateLimited):
            await logins.login(s, org.email("manager"), PASSWORD, "198.51.100.99")
        manager = await services.staff.get(s, org.manager_id)
        monkeypatch.setattr(services.staff, "_logins", logins)  # the service with this test's limits
        await services.staff.set_password(s, SETUP, manager, "a brand new password")  # the way back: issue 15
        assert (await logins.login(s, org.email("manager"), "a brand new password", "198.51.100.99")).staff.id \
            == org.manager_id


def test_addresses_are_counted_by_host_and_ipv6_by_its_64() -> None:
    assert address_of("192.0.2.7") == "192.0.2.7"
    assert address_of("2001:db8:1:2:aaaa::1") == address_of("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_of("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_of("") == address_of("not an address") == "unknown"


async def test_an_unknown_email_costs_the_same_password_check_as_a_wrong_password(
    client: TestClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    with watched_checks(monkeypatch) as checks:
        wrong = await _post(client, org.email("admin"), WRONG)
        after_wrong = checks.entered
        unknown = await _post(client, "nobody@school.example.org", WRONG)
    assert after_wrong == 1 and checks.entered == 2  # the dummy hash is checked for the unknown email
    assert wrong.status == unknown.status == 401
    assert (await wrong.json()) == (await unknown.json())


async def test_unknown_emails_are_refused_with_429_exactly_like_real_ones(client: TestClient, org: Org) -> None:
    answers: dict[str, list[tuple[int, str, str | None]]] = {}
    for email in (org.email("manager"), "nobody@school.example.org"):
        answers[email] = []
        for _ in range(6):
            r = await _post(client, email, WRONG)
            answers[email].append((r.status, (await r.json())["detail"], r.headers.get("Retry-After")))
    real, unknown = answers.values()
    assert real == unknown
    assert [status for status, _, _ in real] == [401] * 5 + [429]
    assert real[-1][2] == str(15 * 60)


@pytest.fixture
async def twelve(services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    """Twelve more members of staff: twelve sign-ins at once, none limited by another's attempts."""
    emails = [f"person{n}@school.example.org" for n in range(12)]
    for email in emails:
        await add_staff(services, sessionmaker, email.split("@")[0], frozenset({Role.PRACTITIONER}))
    return emails


async def test_sign_ins_wait_for_the_pool_and_the_server_answers_meanwhile(
    client: TestClient, twelve: list[str], monkeypatch: pytest.MonkeyPatch, services: Services
) -> None:
    """12 sign-ins held in their password checks: /healthz still answers, no check runs on the event loop,
    and no more than ``password_workers`` run at once (the others wait their turn)."""
    answered: list[int] = []
    with watched_checks(monkeypatch, hold=True) as checks:

        async def attempt(email: str) -> None:
            answered.append((await _post(client, email, PASSWORD)).status)
            checks.poke()

        workers = 2
        burst = [asyncio.create_task(attempt(email)) for email in twelve]
        await checks.wait_for(lambda: checks.entered >= workers)
        health = await client.get("/healthz")
        assert health.status == 200 and not answered  # answered while every sign-in is still in its check
        assert checks.on_loop == 0 and checks.running == workers == services.settings.password_workers
        checks.release()
        await asyncio.gather(*burst)
    assert answered == [200] * 12 and checks.entered == 12
    assert checks.most_at_once == workers


async def test_the_event_loop_stays_responsive_during_real_password_checks(
    client: TestClient, twelve: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With real argon2, the longest stall of the event loop during 12 sign-ins is shorter than the shortest
    single password check (on the loop, every check would stall it for its whole length)."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    with watched_checks(monkeypatch) as checks:
        task = asyncio.create_task(probe())
        statuses = await asyncio.gather(*[_post(client, email, PASSWORD) for email in twelve])
        done.set()
        await task
    assert [r.status for r in statuses] == [200] * 12 and checks.on_loop == 0
    assert len(checks.durations) == 12
    assert max(gaps) < min(checks.durations), (max(gaps), min(checks.durations))
