"""Booking emails written in the booking's own transaction (the transactional outbox).

``BookingService`` calls this module after adding or changing a booking and
before the caller commits, so a booking never exists without its invitations
and a rolled-back booking sends nothing. Delivery is the outbox ``Sender``'s job.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.audit.log import Actor
from server.bookings.models import Booking, BookingInvitee, InviteeRole
from server.clock import Clock
from server.config import Settings
from server.consent.services import ConsentService
from server.errors import NotFound
from server.links.models import LinkPurpose
from server.links.services import LinkService
from server.mail import messages
from server.mail.outbox import enqueue
from server.people.models import Client, Guardian
from server.storage_policies.loader import load_policies
from server.storage_policies.models import PolicySet, ProvisionType, RecordingKind
from server.storage_policies.rules import RecordingFacts, choose_policy
from server.subjects import Subject


def _tag(url: str) -> str:
    """A short, stable name for one issued link, so each (re)send gets its own Message-ID."""
    return hashlib.sha256(url.encode()).hexdigest()[:12]


class BookingNotifier:
    """Issues each person's links and enqueues their invitation, change notice or cancellation."""

    def __init__(self, settings: Settings, clock: Clock, links: LinkService, consent: ConsentService) -> None:
        self._clock = clock
        self._links = links
        self._consent = consent
        self._policies_dir = settings.storage_policies
        self._policies: PolicySet | None = None  # loaded on first use
        self._org = messages.Organisation(settings.organisation, settings.mail_from,
                                          contact=settings.contact_email or None)

    @property
    def organisation(self) -> messages.Organisation:
        return self._org

    async def session_info(self, session: AsyncSession, booking: Booking) -> tuple[messages.SessionInfo, Staff]:
        practitioner = await session.get(Staff, booking.practitioner_id)
        client = await session.get(Client, booking.client_id)
        if practitioner is None or client is None:
            raise NotFound(f"Booking {booking.id} lost its practitioner or client.")
        info = messages.SessionInfo(
            booking_id=booking.id, kind=messages.SessionKind(booking.kind), start=booking.starts_at,
            duration_minutes=booking.duration_minutes, practitioner_name=practitioner.name,
            client_first_name=client.first_name,
        )
        return info, practitioner

    async def retention(self, session: AsyncSession, booking: Booking) -> str:
        """How long this session's recording would be kept, in the words of its storage policy."""
        if self._policies is None:
            self._policies = load_policies(self._policies_dir)
        practitioner = await session.get(Staff, booking.practitioner_id)
        client = await session.get(Client, booking.client_id)
        if practitioner is None or client is None:
            raise NotFound(f"Booking {booking.id} lost its practitioner or client.")
        day = booking.starts_at.date()
        policy = choose_policy(self._policies, RecordingFacts(
            kind=RecordingKind.THERAPY if practitioner.is_therapist else RecordingKind.TUITION,
            provision=ProvisionType.BLENDED, session_date=day, client_birth_date=client.date_of_birth,
            last_session_date=day))
        return policy.retention.for_families()

    async def recipient(self, session: AsyncSession, invitee: BookingInvitee) -> messages.Recipient:
        if invitee.role == InviteeRole.GUARDIAN and invitee.guardian_id is not None:
            guardian = await session.get(Guardian, invitee.guardian_id)
            if guardian is not None:
                return messages.Recipient(guardian.name, guardian.email, guardian.time_zone)
        if invitee.client_id is not None:
            client = await session.get(Client, invitee.client_id)
            if client is not None and client.email:
                return messages.Recipient(client.name, client.email, client.time_zone)
        raise NotFound(f"Invitee {invitee.subject} has no email address.")

    async def consent_missing(self, session: AsyncSession, booking: Booking) -> bool:
        """True unless a consent to recording is in force for the client (from a guardian or themselves)."""
        held = await self._consent.in_force(session, [Subject.client(booking.client_id)])
        return not any(row.scope_record for row in held)

    async def family_links(self, session: AsyncSession, booking: Booking, subject: str, *,
                           consent: bool = True) -> messages.Links:
        """Fresh join and device-check links, and a consent link while consent to recording is missing."""
        issue = self._links.issue
        ask = consent and await self.consent_missing(session, booking)
        return messages.Links(
            join_url=self._links.url(await issue(session, booking, subject, LinkPurpose.JOIN)),
            check_url=self._links.url(await issue(session, booking, subject, LinkPurpose.CHECK)),
            consent_url=self._links.url(await issue(session, booking, subject, LinkPurpose.CONSENT))
            if ask else None,
        )

    async def invite(self, session: AsyncSession, booking: Booking, *, change: bool = False,
                     only_subject: str | None = None, previous_start: datetime | None = None) -> int:
        """Issue fresh links and enqueue one email per recipient; returns how many were enqueued.

        ``change`` sends change notices (the caller has revoked the old links and raised SEQUENCE);
        ``only_subject`` limits the run to one person (a resend).
        """
        info, practitioner = await self.session_info(session, booking)
        retention = await self.retention(session, booking)
        now = self._clock.now()
        seq = booking.sequence
        count = 0
        for invitee in booking.invitees:
            if only_subject is not None and invitee.subject != only_subject:
                continue
            to = await self.recipient(session, invitee)
            links = await self.family_links(session, booking, invitee.subject)
            tag = invitee.subject.replace(":", "-")
            key = f"booking-{booking.id}.{'change' if change else 'invite'}.{tag}.v{seq}.{_tag(links.join_url)}"
            if change:
                msg = messages.change_notice(self._org, info, to, links, key=key, now=now, sequence=seq,
                                             retention=retention, previous_start=previous_start)
            else:
                msg = messages.invitation(self._org, info, to, links, key=key, now=now, sequence=seq,
                                          retention=retention)
            count += await enqueue(session, msg, key, kind="change" if change else "invitation", now=now,
                                   booking_id=booking.id)
        subject = Subject.staff(practitioner.id)
        if only_subject in (None, subject):
            join = self._links.url(await self._links.issue(session, booking, subject, LinkPurpose.JOIN))
            key = f"booking-{booking.id}.practitioner.staff-{practitioner.id}.v{seq}.{_tag(join)}"
            to = messages.Recipient(practitioner.name, practitioner.email)
            msg = messages.practitioner_invitation(self._org, info, to, join, key=key, now=now, sequence=seq)
            count += await enqueue(session, msg, key, kind="invitation", now=now, booking_id=booking.id)
        return count

    async def changed(self, session: AsyncSession, actor: Actor, booking: Booking, previous: datetime) -> int:
        """The booking moved: revoke every old link, then send change notices with fresh links."""
        await self._links.revoke_for_booking(session, actor, booking.id, "booking rescheduled")
        return await self.invite(session, booking, change=True, previous_start=previous)

    async def resend(self, session: AsyncSession, booking: Booking, subject: str) -> int:
        """Revoke every link ``subject`` holds for this booking (join, check, consent) and send fresh ones."""
        await self._links.revoke_for_subject(session, Actor.system(), subject, "link resent", booking_id=booking.id)
        return await self.invite(session, booking, only_subject=subject)

    async def cancelled(self, session: AsyncSession, actor: Actor, booking: Booking, reason: str) -> int:
        """Revoke every link of the booking and enqueue a METHOD:CANCEL notice to everyone invited."""
        await self._links.revoke_for_booking(session, actor, booking.id, "booking cancelled")
        info, practitioner = await self.session_info(session, booking)
        now = self._clock.now()
        people = [(i.subject, await self.recipient(session, i)) for i in booking.invitees]
        people.append((Subject.staff(practitioner.id), messages.Recipient(practitioner.name, practitioner.email)))
        count = 0
        for subject, to in people:
            key = f"booking-{booking.id}.cancel.{subject.replace(':', '-')}.v{booking.sequence}"
            msg = messages.cancellation(self._org, info, to, key=key, now=now, sequence=booking.sequence,
                                        reason=reason or None)
            count += await enqueue(session, msg, key, kind="cancellation", now=now, booking_id=booking.id)
        return count
