"""The consent part of ``duet demo``: the demo call has consent, and a second demo booking has none.

Kept out of server/demo.py so that file only gains a call. Idempotent: a second run finds what the first
made and issues fresh links.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import DbsLevel, Role, Staff
from server.accounts.services import NewStaff
from server.audit.log import Actor
from server.bookings.models import Booking, BookingKind, BookingStatus
from server.bookings.services import NewBooking
from server.consent.models import Method
from server.consent.services import Grant
from server.links.models import LinkPurpose
from server.people.models import Client, Guardian
from server.people.services import NewClient, NewGuardian
from server.services import Services

ONLINE = Grant(record=True, safeguarding=True, feedback=True, method=Method.ONLINE)


async def demo_consent(services: Services, session: AsyncSession, actor: Actor, booking: Booking, tutor: Staff,
                       guardian: Guardian, domain: str) -> dict[str, str]:
    """Give consent for the demo booking's people; make a second booking nobody consented to."""
    now = services.clock.now()
    day = booking.starts_at.date()
    if tutor.recording_agreement_on is None:
        await services.consent.set_staff_agreement(session, actor, tutor.id, day)
    held = {(c.covers, c.given_by) for c in await services.consent.in_force(
        session, [f"client:{booking.client_id}", f"guardian:{guardian.id}"])}
    for covers in (f"client:{booking.client_id}", f"guardian:{guardian.id}"):
        if (covers, f"guardian:{guardian.id}") not in held:
            await services.consent.give(session, actor, f"guardian:{guardian.id}", covers, ONLINE, day)

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
    consent_token = await services.links.issue(session, booking, f"guardian:{guardian.id}", LinkPurpose.CONSENT)
    tutor_token = await services.links.issue(session, second, f"staff:{second_tutor.id}", LinkPurpose.JOIN)
    other_token = await services.links.issue(session, second, f"guardian:{other.id}", LinkPurpose.JOIN)
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
