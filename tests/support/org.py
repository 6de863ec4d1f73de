"""A small organisation for tests, made through the real services (and so audited like real data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import DbsLevel, Role
from server.accounts.services import NewStaff
from server.audit.log import Actor
from server.bookings.models import Booking, BookingKind
from server.bookings.services import NewBooking
from server.links.models import LinkPurpose
from server.people.services import NewClient, NewGuardian
from server.services import Services

PASSWORD = "correct horse battery staple"
SETUP = Actor("test:setup", "test")


@dataclass
class Org:
    tutor_id: int
    other_tutor_id: int
    admin_id: int
    manager_id: int
    safeguarding_id: int
    totp_secret: str
    guardian_id: int
    child_id: int
    adult_id: int
    booking_id: int

    def email(self, key: str) -> str:
        return f"{key}@school.example.org"


async def make_org(services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> Org:
    """Staff of every role, a guardian with a 10-year-old, an adult client, and a video booking in an hour."""
    today = services.clock.now().date()
    async with sessionmaker() as s:
        ids: dict[str, int] = {}
        secret = ""
        for key, roles in (("tutor", {Role.PRACTITIONER}), ("tutor2", {Role.PRACTITIONER}),
                           ("admin", {Role.ADMIN}), ("manager", {Role.MANAGER}),
                           ("safeguarding", {Role.SAFEGUARDING})):
            staff = await services.staff.create(s, SETUP, NewStaff(
                name=f"{key.title()} Person", email=f"{key}@school.example.org", roles=frozenset(roles),
                password=PASSWORD, dbs_level=DbsLevel.ENHANCED_BARRED, dbs_checked_on=today - timedelta(days=30),
                safeguarding_training_on=today - timedelta(days=30)))
            ids[key] = staff.id
            if key == "safeguarding":
                secret = await services.staff.enrol_totp_directly(s, SETUP, staff)
        guardian = await services.people.add_guardian(s, SETUP, NewGuardian(name="Gail Guardian",
                                                                            email="gail@family.example.org"))
        child = await services.people.add_client(s, SETUP, NewClient(
            first_name="Kit", last_name="Child", date_of_birth=date(today.year - 10, 3, 1)))
        await services.people.link(s, SETUP, child, guardian, parental_responsibility=True, account_holder=True)
        adult = await services.people.add_client(s, SETUP, NewClient(
            first_name="Ada", last_name="Adult", date_of_birth=date(today.year - 30, 3, 1),
            email="ada@adult.example.org"))
        booking = await services.bookings.create(s, SETUP, NewBooking(
            kind=BookingKind.LIVE_VIDEO, practitioner_id=ids["tutor"], client_id=child.id,
            starts_at=services.clock.now() + timedelta(hours=1), duration_minutes=45,
            guardian_ids=(guardian.id,)))
        await s.commit()
        return Org(ids["tutor"], ids["tutor2"], ids["admin"], ids["manager"], ids["safeguarding"], secret,
                   guardian.id, child.id, adult.id, booking.id)


async def issue_link(services: Services, sessionmaker: async_sessionmaker[AsyncSession], booking_id: int,
                     subject: str, purpose: LinkPurpose = LinkPurpose.JOIN) -> str:
    async with sessionmaker() as s:
        booking = await s.get(Booking, booking_id)
        assert booking is not None
        token = await services.links.issue(s, booking, subject, purpose)
        await s.commit()
        return token


async def sign_in(client: TestClient, email: str, password: str = PASSWORD, totp_code: str | None = None) -> str:
    """Sign in through the API and return the CSRF token for later state changes."""
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status == 200, await response.text()
    me = await response.json()
    if totp_code is not None:
        response = await client.post("/api/v1/auth/second-factor", json={"code": totp_code},
                                     headers={"X-CSRF-Token": me["csrf_token"]})
        assert response.status == 200, await response.text()
    return str(me["csrf_token"])


async def add_staff(services: Services, sessionmaker: async_sessionmaker[AsyncSession], key: str,
                    roles: frozenset[Role]) -> int:
    """One more member of staff (signing in as ``org.email(key)`` with PASSWORD), for the roles not in every
    org, such as the head of service; returns their id."""
    async with sessionmaker() as s:
        staff = await services.staff.create(s, SETUP, NewStaff(
            name=f"{key.title()} Person", email=f"{key}@school.example.org", roles=roles, password=PASSWORD))
        await s.commit()
        return staff.id
