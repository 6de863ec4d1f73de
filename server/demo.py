"""``duet demo``: a small demo organisation with a session starting now, safe to run again.

Passwords and the safeguarding lead's TOTP secret are generated on the first run and kept in
``<home>/keys/demo.json`` (0600), so every run prints logins that work. Join links are new on every run
(tokens are stored only as hashes and cannot be shown again); the earlier ones stay valid.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import DbsLevel, Role, Staff
from server.accounts.services import NewStaff
from server.audit.log import Actor
from server.bookings.models import Booking, BookingKind, BookingStatus
from server.bookings.services import NewBooking
from server.consent.models import Method
from server.consent.services import Grant
from server.keys import write_private
from server.links.models import LinkPurpose
from server.people.models import Client, Guardian
from server.people.services import NewClient, NewGuardian
from server.services import Services
from server.subjects import Subject
from server.visits.models import Studio

DOMAIN = "demo.example.org"
ACTOR = Actor("cli:demo", "cli")


@dataclass(frozen=True)
class DemoStaff:
    key: str
    name: str
    roles: frozenset[Role]
    totp: bool = False


STAFF = (
    DemoStaff("tutor", "Tess Tutor", frozenset({Role.PRACTITIONER})),
    DemoStaff("safeguarding", "Sam Safeguarding", frozenset({Role.SAFEGUARDING, Role.MANAGER}), totp=True),
    DemoStaff("admin", "Ada Admin", frozenset({Role.ADMIN})),
)


def _secrets_file(services: Services) -> Path:
    return services.settings.keys_dir / "demo.json"


def _load_secrets(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {}


async def run_demo(services: Services, session: AsyncSession) -> dict[str, Any]:
    """Create (or find) the demo organisation and return what ``duet demo`` prints."""
    path = _secrets_file(services)
    saved = _load_secrets(path)
    changed = False
    logins: dict[str, dict[str, str]] = {}
    members: dict[str, Staff] = {}
    today = services.clock.now().date()
    for spec in STAFF:
        email = f"{spec.key}@{DOMAIN}"
        entry = saved.get(spec.key, {})
        staff = await services.staff.find_by_email(session, email)
        if staff is None or "password" not in entry:
            entry = {"password": secrets.token_urlsafe(12)}
            changed = True
            if staff is None:
                staff = await services.staff.create(session, ACTOR, NewStaff(
                    name=spec.name, email=email, roles=spec.roles, password=entry["password"],
                    dbs_level=DbsLevel.ENHANCED_BARRED, dbs_checked_on=today - timedelta(days=200),
                    safeguarding_training_on=today - timedelta(days=300), home_visits_opt_in=True,
                    base_lat=51.5072, base_lon=-0.1276, phone="+44 7700 900000",  # Ofcom's drama range
                    vehicle="blue hatchback, registration not recorded in the demo",
                ))
            else:
                await services.staff.set_password(session, ACTOR, staff, entry["password"])
        if spec.totp and "totp_secret" not in entry:
            entry["totp_secret"] = await services.staff.enrol_totp_directly(session, ACTOR, staff)
            changed = True
        saved[spec.key] = entry
        members[spec.key] = staff
        logins[spec.key] = {"email": email, **entry}

    guardian = (
        await session.execute(select(Guardian).where(Guardian.email == f"guardian@{DOMAIN}"))
    ).scalar_one_or_none()
    if guardian is None:
        guardian = await services.people.add_guardian(session, ACTOR, NewGuardian(
            name="Grace Guardian", email=f"guardian@{DOMAIN}", phone="+44 20 7946 0000"))
    child = await _client(session, "Charlie", "Child")
    if child is None:
        born = date(today.year - 10, today.month, 1)  # 10 years old on any day the demo is made
        child = await services.people.add_client(session, ACTOR, NewClient(
            first_name="Charlie", last_name="Child", date_of_birth=born, address="1 Demo Street, London",
            lat=51.5155, lon=-0.0922))
        await services.people.link(session, ACTOR, child, guardian, parental_responsibility=True,
                                   account_holder=True)
    if await _client(session, "Alex", "Adult") is None:
        await services.people.add_client(session, ACTOR, NewClient(
            first_name="Alex", last_name="Adult", date_of_birth=date(today.year - 34, 6, 1),
            email=f"alex@{DOMAIN}", address="2 Demo Road, London", lat=51.5033, lon=-0.1195))

    now = services.clock.now()
    booking = (await session.execute(
        select(Booking).where(
            Booking.client_id == child.id, Booking.practitioner_id == members["tutor"].id,
            Booking.status == BookingStatus.CONFIRMED, Booking.starts_at <= now,
            Booking.kind == BookingKind.LIVE_VIDEO,
        ).order_by(Booking.starts_at.desc()).limit(1)
    )).scalar_one_or_none()
    if booking is None or booking.ends_at <= now + timedelta(minutes=15):
        booking = await services.bookings.create(session, ACTOR, NewBooking(
            kind=BookingKind.LIVE_VIDEO, practitioner_id=members["tutor"].id, client_id=child.id,
            starts_at=now, duration_minutes=60, guardian_ids=(guardian.id,)), allow_started=True)
    practitioner_token = await services.links.issue(session, booking, Subject.staff(members['tutor'].id),
                                                    LinkPurpose.JOIN)
    guardian_token = await services.links.issue(session, booking, Subject.guardian(guardian.id), LinkPurpose.JOIN)
    check_token = await services.links.issue(session, booking, Subject.guardian(guardian.id), LinkPurpose.CHECK)
    studio = await _studio(services, session, members["safeguarding"])
    consent = await demo_consent(services, session, ACTOR, booking, members["tutor"], guardian, DOMAIN)
    await session.commit()
    if changed:
        if path.exists():
            path.unlink()
        write_private(path, json.dumps(saved, indent=2).encode())
    return {
        "base_url": services.settings.public_url,
        "login_url": f"{services.settings.public_url}/login",
        "booking_id": booking.id,
        "client_id": child.id,  # for `duet gdpr export --client` and `duet gdpr erase --client`
        "starts_at": booking.starts_at.isoformat(),
        "practitioner_join_url": services.links.url(practitioner_token),
        "guardian_join_url": services.links.url(guardian_token),
        "guardian_check_url": services.links.url(check_token),
        "staff": logins,
        "visits_url": f"{services.settings.public_url}/visits",  # the practitioner's phone page
        # the invitations are in the outbox; `duet serve` (or `duet mail send-pending`) writes them
        # here as .eml files when DUET_MAIL_URL is empty.
        "outbox_folder": str(services.settings.home / "outbox"),
        "studio_id": studio.id,  # an approved studio for studio visits
        **consent,  # guardian_consent_url, unconsented_practitioner_join_url, unconsented_guardian_join_url
    }


async def _studio(services: Services, session: AsyncSession, approver: Staff) -> Studio:
    """An approved studio, so studio visits can be booked in the demo (policies/000_*)."""
    studio = (await session.execute(select(Studio).where(Studio.name == "Demo Studio"))).scalar_one_or_none()
    if studio is None:
        now = services.clock.now()
        studio = Studio(name="Demo Studio", address="3 Demo Lane, London", lat=51.5101, lon=-0.1340,
                        approved=True, approved_by_id=approver.id, approved_at=now, created_at=now)
        session.add(studio)
        await session.flush()
        await services.audit.record(session, ACTOR, "studio.approved", f"studio:{studio.id}", {"reason": "demo"})
    return studio


async def _client(session: AsyncSession, first: str, last: str) -> Client | None:
    return (await session.execute(
        select(Client).where(func.lower(Client.first_name) == first.lower(), Client.last_name == last).limit(1)
    )).scalar_one_or_none()


def describe(result: dict[str, Any]) -> str:
    """The demo as a person reads it."""
    lines = [
        f"Duet demo organisation is ready at {result['base_url']}",
        f"Sign in at {result['login_url']}:",
    ]
    for key, login in result["staff"].items():
        extra = f"  TOTP secret {login['totp_secret']}" if "totp_secret" in login else ""
        lines.append(f"  {key:<13} {login['email']:<32} password {login['password']}{extra}")
    lines += [
        f"Session {result['booking_id']} (live video, Charlie, 60 minutes) starts {result['starts_at']}:",
        f"  tutor joins:    {result['practitioner_join_url']}",
        f"  guardian joins: {result['guardian_join_url']}",
        f"  guardian's consent page: {result['guardian_consent_url']}",
        f"Session {result['unconsented_booking_id']} (nobody has consented to recording, Robin):",
        f"  tutor joins:    {result['unconsented_practitioner_join_url']}",
        f"  guardian joins: {result['unconsented_guardian_join_url']}",
    ]
    return "\n".join(lines)


# ---- consent: the demo call has it, a second demo booking has none ----------------------------------
ONLINE = Grant(record=True, safeguarding=True, feedback=True, method=Method.ONLINE)


async def demo_consent(services: Services, session: AsyncSession, actor: Actor, booking: Booking, tutor: Staff,
                       guardian: Guardian, domain: str) -> dict[str, str]:
    """Give consent for the demo booking's people; make a second booking nobody consented to."""
    now = services.clock.now()
    day = booking.starts_at.date()
    if tutor.recording_agreement_on is None:
        await services.consent.set_staff_agreement(session, actor, tutor.id, day)
    held = {(c.covers, c.given_by) for c in await services.consent.in_force(
        session, [Subject.client(booking.client_id), Subject.guardian(guardian.id)])}
    for covers in (Subject.client(booking.client_id), Subject.guardian(guardian.id)):
        if (covers, Subject.guardian(guardian.id)) not in held:
            await services.consent.give(session, actor, Subject.guardian(guardian.id), covers, ONLINE, day)

    other = (await session.execute(select(Guardian).where(Guardian.email == f"glen@{domain}"))).scalar_one_or_none()
    if other is None:
        other = await services.people.add_guardian(session, actor, NewGuardian(
            name="Glen Guardian", email=f"glen@{domain}", phone="+44 20 7946 0001"))
    robin = (await session.execute(select(Client).where(
        func.lower(Client.first_name) == "robin", Client.last_name == "Child").limit(1))).scalar_one_or_none()
    if robin is None:
        robin = await services.people.add_client(session, actor, NewClient(
            first_name="Robin", last_name="Child", date_of_birth=date(day.year - 9, 5, 20),
            address="3 Demo Lane, London", lat=51.5101, lon=-0.1340))
        await services.people.link(session, actor, robin, other, parental_responsibility=True, account_holder=True)
    second_tutor = await _second_tutor(services, session, actor, domain, day)
    second = (await session.execute(select(Booking).where(
        Booking.client_id == robin.id, Booking.practitioner_id == second_tutor.id,
        Booking.status == BookingStatus.CONFIRMED, Booking.starts_at <= now,
    ).order_by(Booking.starts_at.desc()).limit(1))).scalar_one_or_none()
    if second is None or second.ends_at <= now + timedelta(minutes=15):
        second = await services.bookings.create(session, actor, NewBooking(
            kind=BookingKind.LIVE_VIDEO, practitioner_id=second_tutor.id, client_id=robin.id, starts_at=now,
            duration_minutes=60, guardian_ids=(other.id,)), allow_started=True)
    consent_token = await services.links.issue(session, booking, Subject.guardian(guardian.id), LinkPurpose.CONSENT)
    tutor_token = await services.links.issue(session, second, Subject.staff(second_tutor.id), LinkPurpose.JOIN)
    other_token = await services.links.issue(session, second, Subject.guardian(other.id), LinkPurpose.JOIN)
    return {
        "guardian_consent_url": services.links.url(consent_token),
        "unconsented_booking_id": str(second.id),
        "unconsented_practitioner_join_url": services.links.url(tutor_token),
        "unconsented_guardian_join_url": services.links.url(other_token),
    }


async def _second_tutor(services: Services, session: AsyncSession, actor: Actor, domain: str, day: date) -> Staff:
    """A second practitioner (the demo tutor is busy with the first call), with a recording agreement, so the
    refusal on the second booking is about the family's missing consent only. Joins by link, no password."""
    email = f"theo@{domain}"
    member = await services.staff.find_by_email(session, email)
    if member is None:
        member = await services.staff.create(session, actor, NewStaff(
            name="Theo Tutor", email=email, roles=frozenset({Role.PRACTITIONER}), password=secrets.token_urlsafe(16),
            dbs_level=DbsLevel.ENHANCED_BARRED, dbs_checked_on=day - timedelta(days=200),
            safeguarding_training_on=day - timedelta(days=300)))
        await services.consent.set_staff_agreement(session, actor, member.id, day)
    return member
