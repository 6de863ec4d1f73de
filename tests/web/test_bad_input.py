"""Bad input gets a 4xx problem+json with a detail a person understands, and changes nothing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.models import AuditEvent
from server.bookings.models import Booking, BookingInvitee
from server.clock import FakeClock
from server.people.models import Client, Guardian
from tests.support.org import Org

Login = Callable[[str], Awaitable[str]]


async def _counts(sm: async_sessionmaker[AsyncSession]) -> tuple[int, ...]:
    async with sm() as s:
        return tuple([await s.scalar(select(func.count()).select_from(t)) or 0
                      for t in (Client, Guardian, Booking, BookingInvitee, AuditEvent)])


def _booking(org: Org, clock: FakeClock, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": "live_video", "practitioner_id": org.tutor_id, "client_id": org.child_id,
        "starts_at": (clock.now() + timedelta(days=2)).isoformat(), "duration_minutes": 45,
        "guardian_ids": [org.guardian_id],
    }
    body.update(changes)
    return body


CASES: list[tuple[str, str, object, int, str]] = [
    ("malformed JSON", "/api/v1/clients", b'{"first_name": "Kim",', 422, "not valid JSON"),
    ("not an object", "/api/v1/clients", [1, 2], 422, "JSON object"),
    ("wrong type", "/api/v1/clients", {"first_name": "Kim", "last_name": "Lee", "date_of_birth": 12}, 422,
     "date_of_birth"),
    ("future birth", "/api/v1/clients", {"first_name": "Kim", "last_name": "Lee", "date_of_birth": "2030-01-01"},
     422, "in the future"),
    ("unknown field", "/api/v1/clients", {"first_name": "Kim", "last_name": "Lee", "date_of_birth": "2015-01-01",
                                          "is_admin": True}, 422, "is_admin: is not a field"),
    ("line break in a name", "/api/v1/clients", {"first_name": "Kim\r\nBcc: x@evil.example", "last_name": "Lee",
                                                 "date_of_birth": "2015-01-01"}, 422,
     "first_name: must be one line of text"),
    ("line separator in a guardian", "/api/v1/guardians", {"name": "Sam\u2028Lee", "email": "sam@home.example"}, 422,
     "name: must be one line of text"),
    ("control character in staff", "/api/v1/staff", {"name": "Ann\x00", "email": "ann@school.example.org",
                                                      "roles": ["practitioner"]}, 422, "name: must be one line"),
    ("unknown time zone", "/api/v1/guardians", {"name": "Sam", "email": "sam@home.example",
                                                 "time_zone": "Mars/Olympus"}, 422,
     "time_zone: 'Mars/Olympus' is not a time zone"),
    ("missing field", "/api/v1/guardians", {"name": "Sam"}, 422, "email: is required"),
    ("bad email", "/api/v1/guardians", {"name": "Sam", "email": "sam at home"}, 422, "email"),
    ("duplicate guardian email", "/api/v1/guardians", {"name": "Twin", "email": "gail@family.example.org"}, 409,
     "already exists"),
    ("duplicate staff email", "/api/v1/staff", {"name": "Twin", "email": "tutor@school.example.org",
                                                "roles": ["practitioner"]}, 409, "already exists"),
    ("unknown role", "/api/v1/staff", {"name": "X", "email": "x@school.example.org", "roles": ["boss"]}, 422,
     "roles.0"),
    ("link unknown guardian", "/api/v1/clients/{child}/guardians", {"guardian_id": 9999,
                                                                    "parental_responsibility": True}, 404,
     "no guardian with id 9999"),
    ("link to unknown client", "/api/v1/clients/9999/guardians", {"guardian_id": 1,
                                                                  "parental_responsibility": True}, 404,
     "no client with id 9999"),
]


@pytest.mark.parametrize(("name", "path", "body", "status", "words"), CASES, ids=[c[0] for c in CASES])
async def test_bad_people_input_is_refused_and_nothing_changes(
    name: str, path: str, body: object, status: int, words: str, client: TestClient, org: Org, login: Login,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    csrf = await login("admin")
    before = await _counts(sessionmaker)
    url = path.replace("{child}", str(org.child_id))
    if isinstance(body, bytes):
        r = await client.post(url, data=body, headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"})
    else:
        r = await client.post(url, json=body, headers={"X-CSRF-Token": csrf})
    assert r.status == status, await r.text()
    assert r.headers["Content-Type"].startswith("application/problem+json")
    problem = await r.json()
    assert words in problem["detail"] and problem["status"] == status
    assert await _counts(sessionmaker) == before


BOOKING_CASES: list[tuple[str, dict[str, object], int, str]] = [
    ("in the past", {"starts_at": "2026-11-22T10:00:00+00:00"}, 422, "in the past"),
    ("no time zone", {"starts_at": "2026-12-01T10:00:00"}, 422, "starts_at"),
    ("too long", {"duration_minutes": 600}, 422, "duration_minutes"),
    ("unknown client", {"client_id": 4242}, 404, "no client with id 4242"),
    ("unknown practitioner", {"practitioner_id": 4242}, 404, "no practitioner with id 4242"),
    ("admin is not a practitioner", {"practitioner_id": "admin"}, 404, "no practitioner"),
    ("unknown guardian", {"guardian_ids": [4242]}, 404, "no guardian with id 4242"),
    ("nobody invited", {"guardian_ids": []}, 422, "Invite at least one"),
    ("child invited alone", {"guardian_ids": [], "invite_client": True}, 409, "under 18"),
    ("overlapping", {"starts_at": "@booked"}, 409, "already has booking"),
]


@pytest.mark.parametrize(("name", "changes", "status", "words"), BOOKING_CASES, ids=[c[0] for c in BOOKING_CASES])
async def test_bad_bookings_are_refused_and_nothing_is_half_written(
    name: str, changes: dict[str, object], status: int, words: str, client: TestClient, org: Org,
    login: Login, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    csrf = await login("admin")
    if changes.get("practitioner_id") == "admin":
        changes = {"practitioner_id": org.admin_id}
    if changes.get("starts_at") == "@booked":
        changes = {"starts_at": (clock.now() + timedelta(hours=1, minutes=20)).isoformat()}
    before = await _counts(sessionmaker)
    r = await client.post("/api/v1/bookings", json=_booking(org, clock, **changes), headers={"X-CSRF-Token": csrf})
    assert r.status == status, await r.text()
    assert words in (await r.json())["detail"]
    assert await _counts(sessionmaker) == before


async def test_a_good_booking_is_written_with_its_invitees_and_audited(
    client: TestClient, org: Org, login: Login, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    csrf = await login("admin")
    r = await client.post("/api/v1/bookings", json=_booking(org, clock), headers={"X-CSRF-Token": csrf})
    assert r.status == 201
    booking = await r.json()
    assert booking["invitees"] == [{"role": "guardian", "subject": f"guardian:{org.guardian_id}"}]
    async with sessionmaker() as s:
        event = (await s.execute(select(AuditEvent).where(AuditEvent.target == f"booking:{booking['id']}"))
                 ).scalar_one()
    assert event.action == "booking.created" and event.actor == f"staff:{org.admin_id}"


async def test_an_adult_client_may_be_invited_in_their_own_right(
    client: TestClient, org: Org, login: Login, clock: FakeClock
) -> None:
    csrf = await login("admin")
    r = await client.post("/api/v1/bookings", headers={"X-CSRF-Token": csrf}, json=_booking(
        org, clock, client_id=org.adult_id, guardian_ids=[], invite_client=True))
    assert r.status == 201
    assert (await r.json())["invitees"] == [{"role": "client", "subject": f"client:{org.adult_id}"}]


async def test_an_adult_needing_one_to_one_support_comes_with_their_responsible_adult(
    client: TestClient, org: Org, login: Login, clock: FakeClock, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with sessionmaker() as s:
        adult = await s.get_one(Client, org.adult_id)
        adult.needs_one_to_one_support = True
        await s.commit()
    csrf = await login("admin")
    before = await _counts(sessionmaker)
    r = await client.post("/api/v1/bookings", headers={"X-CSRF-Token": csrf}, json=_booking(
        org, clock, client_id=org.adult_id, guardian_ids=[], invite_client=True))
    problem = await r.json()
    assert r.status == 409 and problem["rule"] == "one_to_one_support" and "1:1 support" in problem["detail"]
    assert await _counts(sessionmaker) == before


async def test_unknown_ids_in_the_path_are_404_with_a_detail(client: TestClient, org: Org, login: Login) -> None:
    await login("admin")
    for path in ("/api/v1/clients/9999", "/api/v1/bookings/9999", "/api/v1/clients/abc"):
        r = await client.get(path)
        assert r.status == 404 and (await r.json())["detail"]


async def test_unknown_address_and_wrong_method_are_problem_json(client: TestClient) -> None:
    r = await client.get("/api/v1/nothing-here")
    assert r.status == 404 and r.headers["Content-Type"].startswith("application/problem+json")
    r = await client.delete("/api/v1/openapi.json")
    assert r.status == 405 and "not allowed" in (await r.json())["detail"]
