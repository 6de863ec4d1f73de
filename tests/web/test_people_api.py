"""People and bookings through the API as each role sees them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.people.models import Guardian
from tests.support.org import Org

Login = Callable[[str], Awaitable[str]]


async def test_admin_adds_a_family_and_the_child_is_a_child_by_age(
    client: TestClient, org: Org, login: Login, clock: FakeClock
) -> None:
    csrf = await login("admin")
    h = {"X-CSRF-Token": csrf}
    born = clock.now().date().replace(year=clock.now().year - 18) + timedelta(days=1)  # 18 tomorrow
    kid = await (await client.post("/api/v1/clients", headers=h, json={
        "first_name": "Rory", "last_name": "Ray", "date_of_birth": born.isoformat()})).json()
    assert kid["age_today"] == 17 and kid["adult_today"] is False
    mum = await (await client.post("/api/v1/guardians", headers=h, json={
        "name": "Mo Ray", "email": "Mo.Ray@Family.example.org"})).json()
    assert mum["email"] == "mo.ray@family.example.org"
    linked = await (await client.post(f"/api/v1/clients/{kid['id']}/guardians", headers=h, json={
        "guardian_id": mum["id"], "parental_responsibility": True, "account_holder": True})).json()
    assert linked["guardians"][0]["parental_responsibility"] is True
    clock.advance(timedelta(days=1))
    await login("admin")  # yesterday's sign-in has ended
    again = await (await client.get(f"/api/v1/clients/{kid['id']}")).json()
    assert again["adult_today"] is True


async def test_a_practitioner_sees_only_their_own_clients_and_bookings(
    client: TestClient, org: Org, login: Login
) -> None:
    await login("tutor2")
    assert await (await client.get("/api/v1/clients")).json() == []
    assert (await client.get(f"/api/v1/clients/{org.child_id}")).status == 404
    assert (await client.get(f"/api/v1/bookings/{org.booking_id}")).status == 404
    await login("tutor")
    names = [c["name"] for c in await (await client.get("/api/v1/clients")).json()]
    assert names == ["Kit Child"]


async def test_todays_bookings_for_the_dashboard(client: TestClient, org: Org, login: Login) -> None:
    await login("manager")
    today = await (await client.get("/api/v1/bookings")).json()
    assert [b["id"] for b in today] == [org.booking_id]
    assert await (await client.get("/api/v1/bookings?day=2026-11-24")).json() == []
    bad = await client.get("/api/v1/bookings?day=tomorrow")
    assert bad.status == 422 and "2026-11-23" in (await bad.json())["detail"]


async def test_cancelling_a_booking_stops_its_links(client: TestClient, org: Org, login: Login,
                                                     services: object, sessionmaker: object) -> None:
    from tests.support.org import issue_link

    token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}")  # type: ignore[arg-type]
    csrf = await login("admin")
    r = await client.post(f"/api/v1/bookings/{org.booking_id}/cancel", json={"reason": "tutor ill"},
                          headers={"X-CSRF-Token": csrf})
    assert (await r.json())["status"] == "cancelled"
    client.session.cookie_jar.clear()
    opened = await client.get(f"/l/{token}")
    assert opened.status == 410


async def test_staff_records_show_checks_and_when_training_is_due(client: TestClient, org: Org, login: Login) -> None:
    await login("manager")
    staff = {s["email"]: s for s in await (await client.get("/api/v1/staff")).json()}
    tutor = staff[org.email("tutor")]
    assert tutor["dbs_level"] == "enhanced_barred" and tutor["status"] == "approved"
    assert tutor["safeguarding_training_due_on"] == "2029-10-24"  # trained 2026-10-24, refreshed every 3 years
    assert staff[org.email("safeguarding")]["totp_enrolled"] is True


async def test_a_family_abroad_keeps_its_own_time_zone_for_emails(
    client: TestClient, org: Org, login: Login, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    h = {"X-CSRF-Token": await login("admin")}
    abroad = await (await client.post("/api/v1/guardians", headers=h, json={
        "name": "Nia Far", "email": "nia@far.example.org", "time_zone": "America/New_York"})).json()
    home = await (await client.post("/api/v1/guardians", headers=h, json={
        "name": "Ned Near", "email": "ned@near.example.org"})).json()
    async with sessionmaker() as s:
        zones = {g.email: g.time_zone for g in (await s.scalars(select(Guardian).where(
            Guardian.id.in_([abroad["id"], home["id"]])))).all()}
    assert zones == {"nia@far.example.org": "America/New_York", "ned@near.example.org": "Europe/London"}
