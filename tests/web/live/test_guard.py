"""An open live session ends the moment its permission does: a link revoked, a booking cancelled or moved,
sign-ins ended, a person suspended; and a periodic re-check catches what no event announced."""

from __future__ import annotations

from datetime import timedelta

import pyotp
from aiohttp import ClientSession, CookieJar, web
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.links.models import AccessLink
from server.services import Services
from server.web.keys import GUARD
from tests.media.peers import until
from tests.support.org import PASSWORD, SETUP, Org
from tests.web.live.conftest import Caller, OpenCaller, tutor_and_guardian


async def _chat_reaches(sender: Caller, receiver: Caller, text: str) -> bool:
    await sender.send({"type": "chat", "text": text})
    try:
        await receiver.wait_for("chat", lambda m: m["text"] == text, within=3)
    except AssertionError:
        return False
    return True


async def test_a_resent_link_ends_the_old_links_session_at_once(
        open_caller: OpenCaller, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    assert await _chat_reaches(guardian, tutor, "hello before")
    async with sessionmaker() as s:
        booking = await services.bookings.get(s, org.booking_id)
        await services.bookings.resend(s, SETUP, booking, f"guardian:{org.guardian_id}")
        await s.commit()
    removed = await guardian.wait_for("removed")
    assert "newest link" in removed["reason"]
    await until(lambda: guardian.closed_code is not None)
    assert guardian.closed_code == 4403
    await tutor.wait_for("members", lambda m: [x["id"] for x in m["members"]] == [f"staff:{org.tutor_id}"])


async def test_a_cancelled_booking_ends_its_session_for_everyone(
        open_caller: OpenCaller, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    async with sessionmaker() as s:
        booking = await services.bookings.get(s, org.booking_id)
        await services.bookings.cancel(s, SETUP, booking, "the tutor is ill")
        await s.commit()
    for caller in (tutor, guardian):
        ended = await caller.wait_for("ended")
        assert ended["reason"] == "This session was cancelled."


async def test_a_rolled_back_revocation_ends_nobodys_session(
        open_caller: OpenCaller, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        app: web.Application) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    async with sessionmaker() as s:
        booking = await services.bookings.get(s, org.booking_id)
        await services.bookings.cancel(s, SETUP, booking, "changed my mind")
        await s.rollback()
    await app[GUARD].settled()
    assert await _chat_reaches(guardian, tutor, "still here")
    assert guardian.of_type("ended") == [] and guardian.of_type("removed") == []


async def test_signing_out_everywhere_ends_a_session_joined_by_signing_in(
        open_caller: OpenCaller, org: Org, live_server: str, clock: FakeClock) -> None:
    tutor = await open_caller(f"staff:{org.tutor_id}")
    await tutor.connect()
    await tutor.wait_for("welcome")
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as http:
        r = await http.post(f"{live_server}/api/v1/auth/login", json={"email": org.email("safeguarding"),
                                                                       "password": PASSWORD})
        assert r.status == 200
        csrf = (await r.json())["csrf_token"]
        code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp()))
        r = await http.post(f"{live_server}/api/v1/auth/second-factor", json={"code": code},
                            headers={"X-CSRF-Token": csrf})
        assert r.status == 200
        lead = Caller(http, live_server, org.booking_id)
        await lead.connect()
        assert (await lead.wait_for("welcome"))["role"] == "observer"
        r = await http.post(f"{live_server}/api/v1/auth/logout-everywhere", headers={"X-CSRF-Token": csrf})
        assert r.status == 200
        await lead.wait_for("removed")
        await until(lambda: lead.closed_code is not None)
        await lead.close()
    assert tutor.of_type("removed") == []  # the tutor's own link is untouched


async def test_the_periodic_recheck_removes_someone_whose_link_stopped_without_an_event(
        open_caller: OpenCaller, org: Org, sessionmaker: async_sessionmaker[AsyncSession], app: web.Application,
        clock: FakeClock) -> None:
    tutor, guardian = await tutor_and_guardian(open_caller, org)
    await guardian.wait_for("welcome")
    assert await app[GUARD].recheck() == 0  # everyone is still allowed
    async with sessionmaker() as s:  # a change that announced nothing (another node, a hand-made fix)
        await s.execute(update(AccessLink).where(AccessLink.subject == f"guardian:{org.guardian_id}")
                        .values(revoked_at=clock.now()))
        await s.commit()
    assert await app[GUARD].recheck() == 1
    await guardian.wait_for("removed")
    assert tutor.of_type("removed") == []
    clock.advance(timedelta(minutes=1))
    assert await app[GUARD].recheck() == 0
