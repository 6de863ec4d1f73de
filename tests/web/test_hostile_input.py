"""Inputs that gave 500s (some to anyone) get a 4xx with a detail a person understands; nothing is written.

Each is refused at one shared depth (``server.web.inputs``: ids in paths and query strings, JSON bodies;
``server.keys.constant_time_equal``: secrets a client sends), so the walk over every route below holds for
routes added later too. A line break in a path cannot forge an access-log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.people.models import Client, Guardian
from tests.support.org import Org
from tests.web.test_access import registered

Login = Callable[[str], Awaitable[str]]
OVER_64_BITS = str(2**70)
NESTED = b'{"email": ' + b"[" * 5000 + b"]" * 5000 + b', "password": "x"}'
HUGE_NUMBER = b'{"email": "a@b.example", "password": ' + b"9" * 5000 + b"}"


async def _counts(sm: async_sessionmaker[AsyncSession]) -> tuple[int, ...]:
    async with sm() as s:
        return tuple([await s.scalar(select(func.count()).select_from(t)) or 0 for t in (Client, Guardian, AuditEvent)])


# (caller, method, path, JSON body or raw bytes, extra headers, status, words in the detail)
CASES: list[tuple[str, str, str, object, dict[str, str], int, str]] = [
    ("anonymous", "GET", "/s/²/api/context", None, {}, 404, "not an id"),
    ("anonymous", "POST", "/s/²/api/consent", {}, {}, 404, "digits 0 to 9"),
    ("anonymous", "POST", "/s/%D9%A3/check/api/offer", {}, {}, 404, "not an id"),
    ("admin", "GET", "/api/v1/bookings/²", None, {}, 404, "not an id"),
    ("admin", "GET", "/api/v1/clients/٣", None, {}, 404, "not an id"),
    ("admin", "GET", f"/api/v1/clients/{OVER_64_BITS}", None, {}, 404, "not an id"),
    ("admin", "GET", f"/api/v1/plans?client_id={OVER_64_BITS}", None, {}, 422, "client_id must be an id"),
    ("admin", "GET", f"/api/v1/visits/timetable?practitioner_id={OVER_64_BITS}", None, {}, 422,
     "practitioner_id must be an id"),
    ("admin", "POST", "/api/v1/clients/{child}/guardians", {"guardian_id": 2**70, "parental_responsibility": True},
     {}, 422, "too large"),
    ("anonymous", "POST", "/api/v1/auth/login", HUGE_NUMBER, {}, 422, "too large"),
    ("anonymous", "POST", "/api/v1/auth/login", NESTED, {}, 422, "nested more than"),
    ("anonymous", "POST", "/api/v1/auth/login", b'{"email": "a@b.example", "password": NaN}', {}, 422,
     "not a number JSON allows"),
    ("anonymous", "POST", "/api/v1/auth/login", b'{"email": "a\\u0000@b.example", "password": "x"}', {}, 422,
     "email: must not contain a NUL"),
    ("admin", "POST", "/api/v1/guardians", {"name": "Sam", "email": "sam@home.example"},
     {"X-CSRF-Token": "é"}, 403, "out of date"),
    ("anonymous", "GET", "/s/{booking}/api/context", None, {"Cookie": "duet_link=1.9999999999.é"}, 401,
     "link in your email"),
    ("admin", "GET", "/api/v1/bookings?day=9999-12-31", None, {}, 422, "years 1900 to 2999"),
    ("admin", "POST", "/api/v1/bookings", {"kind": "live_video", "practitioner_id": 1, "client_id": 1,
                                           "starts_at": "9999-12-31T23:00:00+00:00", "duration_minutes": 45,
                                           "guardian_ids": [1]}, {}, 422, "starts_at: 9999-12-31"),
]


@pytest.mark.parametrize(("caller", "method", "path", "body", "headers", "status", "words"), CASES,
                         ids=[f"{c[1]} {c[2][:40]} {str(c[4])[:20]}" for c in CASES])
async def test_hostile_input_is_a_4xx_problem_with_a_detail_and_changes_nothing(
    caller: str, method: str, path: str, body: object, headers: dict[str, str], status: int, words: str,
    client: TestClient, org: Org, login: Login, sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    csrf = await login("admin") if caller == "admin" else ""
    before = await _counts(sessionmaker)
    url = path.replace("{child}", str(org.child_id)).replace("{booking}", str(org.booking_id))
    sent = {"X-CSRF-Token": csrf} | {k: v.encode().decode("latin-1") for k, v in headers.items()}
    if isinstance(body, bytes):
        r = await client.request(method, url, data=body, headers=sent | {"Content-Type": "application/json"})
    else:
        r = await client.request(method, url, json=body, headers=sent)
    text = await r.text()
    assert r.status == status, text
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert words in (await r.json())["detail"]
    assert await _counts(sessionmaker) == before


async def test_a_malformed_id_in_a_page_address_is_a_readable_404_page(client: TestClient) -> None:
    r = await client.get("/s/²")
    assert r.status == 404 and r.content_type == "text/html" and "not an id" in await r.text()


@pytest.mark.parametrize("bad", ["²", "١٢", OVER_64_BITS, "0"])
async def test_no_route_answers_a_malformed_id_with_a_server_error(
    bad: str, client: TestClient, org: Org, login: Login, app: web.Application
) -> None:
    for caller in ("anonymous", "admin"):
        client.session.cookie_jar.clear()
        csrf = await login("admin") if caller == "admin" else ""
        errors = []
        for method, template in sorted(registered(app)):
            if "logout" in template or "{" not in template:
                continue
            path = re.sub(r"{(\w+)}", lambda m: bad if m.group(1).endswith("_id") else "x", template)
            r = await client.request(method, path, json={} if method != "GET" else None,
                                     headers={"X-CSRF-Token": csrf}, allow_redirects=False)
            if r.status >= 500:
                errors.append(f"{caller} {method} {path}: {r.status}")
        assert errors == []


async def test_a_line_break_in_the_path_cannot_forge_an_access_log_line(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        await client.get("/nowhere%0D%0A203.0.113.9%20POST%20/api/v1/staff%20201%201.0ms")
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert lines and all("\n" not in line and "\r" not in line for line in lines)
    assert "/nowhere%0D%0A203.0.113.9%20POST" in lines[-1]
