"""Join-window pages: waiting with a countdown before, "ended" after, a clear page for a withdrawn link."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.services import Services
from tests.support.org import Org, issue_link

Login = Callable[[str], Awaitable[str]]


async def test_before_the_window_a_waiting_page_after_it_an_ended_page(
        client: TestClient, org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    assert (await client.get(f"/l/{token}", allow_redirects=False)).status == 303
    waiting = await client.get(f"/s/{org.booking_id}")  # the booking starts in an hour
    page = await waiting.text()
    assert waiting.status == 200 and 'data-testid="countdown"' in page
    assert "Monday 23 November 2026, 10:00 to 10:" in page
    assert f'href="/s/{org.booking_id}/check"' in page
    opens_in = int(re.findall(r'data-opens-in="(\d+)"', page)[0]) / 1000  # by the server's clock, not the device's
    assert opens_in == timedelta(minutes=60 - services.settings.early_join_minutes).total_seconds()
    clock.advance(timedelta(minutes=55))
    lobby = await (await client.get(f"/s/{org.booking_id}")).text()
    assert 'data-testid="countdown"' not in lobby and "has ended" not in lobby
    clock.advance(timedelta(hours=2))
    client.session.cookie_jar.clear()
    ended = await client.get(f"/l/{token}", headers={"Accept": "text/html"})
    assert ended.status == 410 and "This session has ended" in await ended.text()


async def test_a_withdrawn_link_says_so_and_whom_to_contact(
        client: TestClient, org: Org, login: Login, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    csrf = await login("admin")
    r = await client.post(f"/api/v1/bookings/{org.booking_id}/resend",
                          json={"subject": f"guardian:{org.guardian_id}"}, headers={"X-CSRF-Token": csrf})
    assert r.status == 200
    client.session.cookie_jar.clear()
    page = await client.get(f"/l/{token}", headers={"Accept": "text/html"})
    text = await page.text()
    assert page.status == 410 and "text/html" in page.headers["Content-Type"]
    assert "withdrawn" in text and f"Please contact {services.settings.organisation}" in text
    assert "Traceback" not in text
