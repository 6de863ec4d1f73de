"""Helpers for the visit and safeguarding tests: homes and bases on the map, a home-visit request body."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.people.models import Client
from tests.support.org import Org, sign_in

CAMBRIDGE = (52.2053, 0.1218)
HISTON = (52.2520, 0.1050)


async def put_on_map(org: Org, sessionmaker: async_sessionmaker[AsyncSession], *, opt_in: bool = True) -> None:
    """The child and the adult client live in Histon; both tutors are based in Cambridge; tutor2 opts in to
    home visits."""
    async with sessionmaker() as s:
        for client_id in (org.child_id, org.adult_id):
            person = await s.get(Client, client_id)
            assert person is not None
            person.lat, person.lon, person.address = HISTON[0], HISTON[1], "1 High Street, Histon"
        for staff_id in (org.tutor_id, org.other_tutor_id):
            tutor = await s.get(Staff, staff_id)
            assert tutor is not None
            tutor.base_lat, tutor.base_lon = CAMBRIDGE
            tutor.home_visits_opt_in = opt_in and staff_id == org.other_tutor_id
        await s.commit()


def home_visit(org: Org, starts_at: datetime, **overrides: Any) -> dict[str, Any]:
    """A home visit by tutor2 to the child that meets every rule; ``overrides`` break one."""
    body: dict[str, Any] = {
        "kind": "home_visit", "practitioner_id": org.other_tutor_id, "client_id": org.child_id,
        "starts_at": starts_at.isoformat(), "duration_minutes": 30, "guardian_ids": [org.guardian_id],
        "conditions": {"confirmed_by": f"guardian:{org.guardian_id}", "parking": True, "accessible": True,
                       "window_or_open_door": True, "carer_on_site": True, "evidence": "email of 20 Nov 2026"},
    }
    body.update(overrides)
    return body


def adult_home_visit(org: Org, starts_at: datetime) -> dict[str, Any]:
    """The same for the adult client, who confirms the conditions as their own account holder."""
    body = home_visit(org, starts_at, client_id=org.adult_id, guardian_ids=[], invite_client=True)
    body["conditions"] = body["conditions"] | {"confirmed_by": f"client:{org.adult_id}"}
    return body


async def post(client: TestClient, path: str, csrf: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    response = await client.post(path, json=body if body is not None else {}, headers={"X-CSRF-Token": csrf})
    return response.status, await response.json()


async def book_authorised(client: TestClient, org: Org, starts_at: datetime, admin: str, manager: str) -> int:
    """Book a home visit as the admin and authorise it as the manager; returns the booking id."""
    status, visit = await post(client, "/api/v1/visits", admin, home_visit(org, starts_at))
    assert status == 201, visit
    status, visit = await post(client, f"/api/v1/visits/{visit['booking_id']}/authorise", manager,
                               {"purpose": "weekly piano tuition"})
    assert status == 200, visit
    return int(visit["booking_id"])


def later(now: datetime, hours: float) -> datetime:
    return now + timedelta(hours=hours)


class People:
    """One signed-in test client per member of staff, all on the same server (separate cookie jars)."""

    def __init__(self, client: TestClient, make_client: Any, org: Org, totp_code: Any) -> None:
        self._first = client
        self._make = make_client
        self._org = org
        self._code = totp_code
        self._signed: dict[str, tuple[TestClient, str]] = {}

    async def __call__(self, key: str, *, again: bool = False) -> tuple[TestClient, str]:
        if key not in self._signed or again:
            c = self._signed[key][0] if key in self._signed else (
                self._first if not self._signed else await self._make(self._first.server))
            csrf = await sign_in(c, self._org.email(key), totp_code=self._code() if key == "safeguarding" else None)
            self._signed[key] = (c, csrf)
        return self._signed[key]

    async def new_client(self) -> TestClient:
        """Another browser on the same server with empty cookies (a parent, someone not signed in)."""
        return await self._make(self._first.server)

    async def post(self, key: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """POST as ``key``, signing in again when the FakeClock has moved past the login's idle limit."""
        c, csrf = await self(key)
        status, data = await post(c, path, csrf, body)
        if status == 401:
            c, csrf = await self(key, again=True)
            status, data = await post(c, path, csrf, body)
        return status, data

    async def get(self, key: str, path: str) -> tuple[int, Any]:
        c, _ = await self(key)
        response = await c.get(path)
        if response.status == 401:
            c, _ = await self(key, again=True)
            response = await c.get(path)
        return response.status, await response.json()
