"""Deny by default: every route, every kind of caller, against the table in access_table.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Role
from server.bookings.models import BookingKind
from server.bookings.services import NewBooking
from server.clock import FakeClock
from server.links.models import LinkPurpose
from server.services import Services
from server.web.access import route_rule
from tests.support.org import PASSWORD, SETUP, Org, add_staff, issue_link
from tests.web.access_table import ACCESS, PATH_VALUES

CALLERS = ("anonymous", "practitioner", "practitioner2", "admin", "manager", "safeguarding", "head_of_service",
           "link", "link_other", "check_link")
STAFF_EMAIL = {"practitioner": "tutor", "practitioner2": "tutor2", "admin": "admin", "manager": "manager",
               "safeguarding": "safeguarding", "head_of_service": "head"}


def registered(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
        and not isinstance(route.resource, web.StaticResource)
    }


def test_every_route_has_a_row_in_the_access_table(app: web.Application) -> None:
    routes = registered(app)
    assert routes - set(ACCESS) == set(), "routes without an expected-access row"
    assert set(ACCESS) - routes == set(), "rows for routes that do not exist"


def test_every_route_declares_a_rule(app: web.Application) -> None:
    assert all(route_rule(r) is not None for r in app.router.routes())


async def _become(client: TestClient, caller: str, org: Org, clock: FakeClock, tokens: dict[str, str]) -> str:
    """Make the client's cookie jar that of ``caller``; return the CSRF token it would hold."""
    client.session.cookie_jar.clear()
    if caller == "anonymous":
        return ""
    if caller in ("link", "link_other", "check_link"):
        opened = await client.get(f"/l/{tokens[caller]}", allow_redirects=False)
        assert opened.status == 303
        booking = opened.headers["Location"].split("/")[2]
        context = await client.get(f"/s/{booking}/api/context")
        return str((await context.json())["csrf_token"]) if context.status == 200 else ""
    email = org.email(STAFF_EMAIL[caller])
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    me = await response.json()
    if caller == "safeguarding":
        code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
        await client.post("/api/v1/auth/second-factor", json={"code": code},
                          headers={"X-CSRF-Token": me["csrf_token"]})
    return str(me["csrf_token"])


def _fill(path: str, org: Org) -> str:
    def value(match: re.Match[str]) -> str:
        spec = PATH_VALUES.get(match.group(1), "=1")
        return spec[1:] if spec.startswith("=") else str(getattr(org, spec))

    return re.sub(r"{(\w+)}", value, path)


@pytest.mark.parametrize("caller", CALLERS)
async def test_each_caller_gets_exactly_what_the_table_allows(
    caller: str, client: TestClient, org: Org, clock: FakeClock, services: Services,
    sessionmaker: async_sessionmaker[AsyncSession], app: web.Application,
) -> None:
    async with sessionmaker() as s:
        other = await services.bookings.create(s, SETUP, NewBooking(
            kind=BookingKind.LIVE_AUDIO, practitioner_id=org.other_tutor_id, client_id=org.child_id,
            starts_at=clock.now() + timedelta(hours=3), duration_minutes=30, guardian_ids=(org.guardian_id,)))
        await s.commit()
    if caller == "head_of_service":  # not in every org: only this caller needs them
        await add_staff(services, sessionmaker, "head", frozenset({Role.HEAD_OF_SERVICE}))
    tokens = {
        "link": await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}"),
        "link_other": await issue_link(services, sessionmaker, other.id, f"guardian:{org.guardian_id}"),
        "check_link": await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}",
                                       LinkPurpose.CHECK),
    }
    csrf = await _become(client, caller, org, clock, tokens)
    wrong: list[str] = []
    for method, template in sorted(registered(app)):
        if template in ("/api/v1/auth/logout", "/api/v1/auth/logout-everywhere", "/api/v1/auth/login"):
            continue  # they change who is signed in; covered in tests/accounts
        response = await client.request(method, _fill(template, org), json={} if method != "GET" else None,
                                        headers={"X-CSRF-Token": csrf} if csrf else {}, allow_redirects=False)
        refused = response.status in (401, 403) or (
            response.status == 303 and response.headers.get("Location") == "/login")
        allowed = caller in ACCESS[(method, template)]
        if response.status >= 500:
            wrong.append(f"{method} {template}: server error {response.status}")
        elif allowed == refused:
            wrong.append(f"{method} {template}: {'refused' if refused else 'let through'} ({response.status})")
    assert wrong == []
