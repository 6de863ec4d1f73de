"""Attendance at live sessions in the timetable (policies/000_*: "attendance records ... maintained
accurately"): written on every join and leave of the session socket, read through the API, FakeClock time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession, ClientWebSocketResponse, CookieJar, WSMsgType
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.bookings.models import BookingKind
from server.bookings.services import NewBooking
from server.clock import FakeClock
from server.services import Services
from tests.support.org import PASSWORD, SETUP, Org, issue_link
from tests.support.visits import People

Entry = dict[str, Any]


class Browser:
    """One person's browser against the live server (served as ``duet serve`` serves it: a socket that closes
    does not cancel its handler, so every leave is seen)."""

    def __init__(self, base: str) -> None:
        self.http = ClientSession(base_url=base, cookie_jar=CookieJar(unsafe=True))
        self.origin = base
        self.email: str | None = None

    async def sign_in(self, email: str) -> None:
        self.email = email
        assert (await self.http.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})).status == 200

    async def get(self, path: str) -> tuple[int, Any]:
        response = await self.http.get(path)
        if response.status == 401 and self.email:  # the FakeClock moved past the login's idle limit
            await self.sign_in(self.email)
            response = await self.http.get(path)
        return response.status, await response.json()

    async def enter(self, services: Services, sessionmaker: async_sessionmaker[AsyncSession], booking_id: int,
                    subject: str) -> ClientWebSocketResponse:
        """Open ``subject``'s join link and be welcomed into the live session."""
        token = await issue_link(services, sessionmaker, booking_id, subject)
        assert (await self.http.get(f"/l/{token}", allow_redirects=False)).status == 303
        ws = await self.http.ws_connect(f"/s/{booking_id}/ws", headers={"Origin": self.origin})
        while (msg := await ws.receive(timeout=10)).type == WSMsgType.TEXT:
            if msg.json()["type"] == "welcome":
                return ws
        raise AssertionError(f"{subject} was not welcomed: {msg}")


@pytest.fixture
async def browsers(live_server: str) -> AsyncIterator[Callable[[], Browser]]:
    made: list[Browser] = []

    def make() -> Browser:
        made.append(Browser(live_server))
        return made[-1]

    yield make
    for b in made:
        await b.http.close()


async def _entry(browser: Browser, query: str, booking_id: int,
                 ready: Callable[[Entry], Any] = lambda e: True) -> Entry:
    """The booking's timetable entry once ``ready`` (a leave is written when the server sees the socket close)."""
    for _ in range(250):
        status, entries = await browser.get(f"/api/v1/visits/timetable?{query}")
        assert status == 200, entries
        entry: Entry = next(e for e in entries if e["booking_id"] == booking_id)
        if ready(entry):
            return entry
        await asyncio.sleep(0.02)
    raise AssertionError(f"timetable entry never ready: {entry}")


def _at(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


async def test_the_timetable_shows_who_attended_a_live_session_and_who_did_not(
        browsers: Callable[[], Browser], org: Org, clock: FakeClock, services: Services,
        sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    today = clock.now()  # 09:00; org.booking_id is a video session 10:00-10:45 with the guardian invited
    async with sessionmaker() as s:
        later = await services.bookings.create(s, SETUP, NewBooking(
            kind=BookingKind.LIVE_AUDIO, practitioner_id=org.tutor_id, client_id=org.child_id,
            starts_at=today.replace(hour=14), duration_minutes=30, guardian_ids=(org.guardian_id,)))
        await s.commit()
    tutor, office, family = browsers(), browsers(), browsers()
    await tutor.sign_in(org.email("tutor"))
    await office.sign_in(org.email("admin"))
    mine = f"practitioner_id={org.tutor_id}"
    for booking in (org.booking_id, later.id):
        entry = await _entry(tutor, mine, booking)
        assert entry["attendance"] is None and entry["attendees"] == []  # still to come

    clock.set(today.replace(hour=9, minute=58))  # early join
    guardian = await family.enter(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")
    clock.set(today.replace(hour=10, minute=1))
    host = await tutor.enter(services, sessionmaker, org.booking_id, f"staff:{org.tutor_id}")
    entry = await _entry(tutor, mine, org.booking_id, lambda e: len(e["attendees"]) == 2)
    assert entry["attendance"] == "attended"
    assert [(a["subject"], a["name"], a["role"]) for a in entry["attendees"]] == [
        (f"guardian:{org.guardian_id}", "Gail Guardian", "participant"),
        (f"staff:{org.tutor_id}", "Tutor Person", "host")]
    assert _at(entry["attendees"][0]["first_joined_at"]) == today.replace(hour=9, minute=58)
    assert all(a["last_left_at"] is None for a in entry["attendees"])  # both still there

    clock.set(today.replace(hour=10, minute=40))
    await guardian.close()
    entry = await _entry(tutor, mine, org.booking_id, lambda e: e["attendees"][0]["last_left_at"])
    assert _at(entry["attendees"][0]["last_left_at"]) == today.replace(hour=10, minute=40)
    assert entry["attendees"][1]["last_left_at"] is None

    clock.set(today.replace(hour=11, minute=1))  # joining closed at 11:00: the session ends for the tutor
    entry = await _entry(tutor, mine, org.booking_id, lambda e: e["attendees"][1]["last_left_at"])
    assert _at(entry["attendees"][1]["last_left_at"]) == today.replace(hour=11, minute=1)
    await host.close()

    clock.set(today.replace(hour=14, minute=2))  # the tutor waits alone in the afternoon session
    alone = await tutor.enter(services, sessionmaker, later.id, f"staff:{org.tutor_id}")
    entry = await _entry(tutor, mine, later.id, lambda e: e["attendees"])
    assert entry["attendance"] is None  # the family may still come
    clock.set(today.replace(hour=14, minute=46))  # 14:30 plus 15 minutes' grace: joining has closed
    entry = await _entry(office, f"client_id={org.child_id}", later.id, lambda e: e["attendance"])
    assert entry["attendance"] == "did not attend"
    assert [a["subject"] for a in entry["attendees"]] == [f"staff:{org.tutor_id}"]
    morning = await _entry(office, f"client_id={org.child_id}", org.booking_id)
    assert morning["attendance"] == "attended" and len(morning["attendees"]) == 2
    await alone.close()

    async with sessionmaker() as s:  # the record and the audit chain agree
        joins = (await s.execute(select(AuditEvent.actor).where(
            AuditEvent.action == "session.joined", AuditEvent.target == f"booking:{org.booking_id}")
            .order_by(AuditEvent.seq))).scalars().all()
    assert joins == [f"guardian:{org.guardian_id}", f"staff:{org.tutor_id}"]


async def test_a_practitioner_sees_attendance_only_in_their_own_timetable(
        people: People, org: Org, clock: FakeClock) -> None:
    status, problem = await people.get("tutor2", f"/api/v1/visits/timetable?practitioner_id={org.tutor_id}")
    assert status == 404
    status, problem = await people.get("tutor2", f"/api/v1/visits/timetable?client_id={org.child_id}")
    assert status == 404
    clock.advance(timedelta(hours=3))  # the 10:00 session has come and gone, nobody joined
    status, entries = await people.get("tutor", f"/api/v1/visits/timetable?practitioner_id={org.tutor_id}")
    assert status == 200 and [(e["attendance"], e["attendees"]) for e in entries] == [("did not attend", [])]
