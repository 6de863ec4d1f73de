"""Signed links: one booking, one person, one purpose; exchanged for a scoped cookie; never logged."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.bookings.models import BookingKind
from server.bookings.services import NewBooking
from server.clock import FakeClock
from server.links.models import AccessLink
from server.services import Services
from server.web.keys import LINK_COOKIE
from tests.support.org import SETUP, Org, issue_link


async def _open(client: TestClient, token: str) -> tuple[int, str]:
    r = await client.get(f"/l/{token}", allow_redirects=False)
    return r.status, r.headers.get("Location", "")


async def test_link_becomes_a_cookie_scoped_to_its_booking_and_the_url_loses_the_token(
    client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    r = await client.get(f"/l/{token}", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == f"/s/{org.booking_id}"
    cookie = r.cookies[LINK_COOKIE]
    assert cookie["path"] == f"/s/{org.booking_id}" and cookie["httponly"]
    assert token not in cookie.value and token not in r.headers["Location"]
    assert r.headers["Referrer-Policy"] == "no-referrer"
    page = await client.get(f"/s/{org.booking_id}/api/context")
    assert page.status == 200
    body = await page.json()
    assert body["you"] == "Gail Guardian" and body["window"] == "not_yet"


async def test_tokens_are_long_random_and_stored_only_as_hashes(
    org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    tokens = {await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
              for _ in range(20)}
    assert len(tokens) == 20 and all(len(t) >= 32 for t in tokens)  # 24 bytes = 192 bits, base64url
    async with sessionmaker() as s:
        stored = {link.token_hash for link in (await s.execute(select(AccessLink))).scalars()}
    assert not tokens & stored


async def test_a_link_for_booking_a_never_opens_booking_b(
    client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    async with sessionmaker() as s:
        other = await services.bookings.create(s, SETUP, NewBooking(
            kind=BookingKind.LIVE_AUDIO, practitioner_id=org.tutor_id, client_id=org.child_id,
            starts_at=clock.now() + timedelta(hours=5), duration_minutes=30, guardian_ids=(org.guardian_id,)))
        await s.commit()
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    await _open(client, token)
    # The cookie is path-scoped, and even sent by hand to booking B it is refused.
    value = next(c.value for c in client.session.cookie_jar if c.key == LINK_COOKIE)
    r = await client.get(f"/s/{other.id}/api/context", cookies={LINK_COOKIE: value})
    assert r.status == 401
    assert (await client.get(f"/s/{other.id}/api/context")).status == 401


async def test_revoked_expired_and_unknown_links_say_so_in_a_page(
    client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    unknown = await client.get("/l/" + "A" * 32)
    assert unknown.status == 404 and "not valid" in await unknown.text()
    assert unknown.headers["Content-Type"].startswith("text/html")
    async with sessionmaker() as s:
        await services.links.revoke_for_subject(s, SETUP, f"guardian:{org.guardian_id}", "resent")
        await s.commit()
    revoked = await client.get(f"/l/{token}")
    assert revoked.status == 410 and "withdrawn" in await revoked.text()
    fresh = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    clock.advance(timedelta(hours=3))  # booking ended at +1h45, grace 15 min
    expired = await client.get(f"/l/{fresh}")  # after the window an old link says the session is over
    assert expired.status == 410 and "This session has ended" in await expired.text()


async def test_revocation_applies_to_a_cookie_already_held(
    client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    await _open(client, token)
    assert (await client.get(f"/s/{org.booking_id}/api/context")).status == 200
    async with sessionmaker() as s:
        await services.links.revoke_for_booking(s, SETUP, org.booking_id, "safeguarding")
        await s.commit()
    assert (await client.get(f"/s/{org.booking_id}/api/context")).status == 410


async def test_a_forged_cookie_is_refused(client: TestClient, org: Org) -> None:
    for forged in ("1.9999999999.AAAA", "garbage", "1.2"):
        r = await client.get(f"/s/{org.booking_id}/api/context", cookies={LINK_COOKIE: forged})
        assert r.status == 401


@pytest.mark.parametrize(("offset_minutes", "window"), [(-11, "not_yet"), (-9, "open"), (60, "open"),
                                                         (45 + 14, "open"), (45 + 16, "closed")])
async def test_the_booked_window_opens_a_little_early_and_closes_after_the_grace(
    offset_minutes: int, window: str, org: Org, services: Services,
    sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock,
) -> None:
    async with sessionmaker() as s:
        booking = await services.bookings.get(s, org.booking_id)
    assert services.links.window(booking, booking.starts_at + timedelta(minutes=offset_minutes)).value == window


async def test_link_tokens_never_reach_the_access_log(
    client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    with caplog.at_level(logging.DEBUG):
        await _open(client, token)
        await client.get("/l/" + token + "x")
    assert token not in caplog.text


async def test_a_suspended_client_cannot_use_a_link(
    client: TestClient, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    async with sessionmaker() as s:
        child = await services.people.client(s, org.child_id)
        child.status = "suspended"
        await s.commit()
    r = await client.get(f"/l/{token}")
    assert r.status == 403 and "contact" in (await r.text()).lower()
