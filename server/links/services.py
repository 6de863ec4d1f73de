"""Issue, check and revoke access links; exchange a link for a cookie scoped to one booking.

A link is a key to one booking for one person and one purpose, never a login. The token (192 random bits)
is shown once, in the email or the CLI; the database keeps its SHA-256. After the exchange the browser
holds a signed cookie naming the link, with ``Path=/s/<booking>``, and the URL no longer has the token.
Every request with that cookie re-reads the link, so a revocation or suspension applies at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import Booking, BookingStatus
from server.clock import Clock
from server.config import Settings
from server.errors import DuetError, Forbidden, Gone, NotFound
from server.events import Events, LinksRevoked
from server.keys import AppKeys, new_token, token_hash
from server.links.models import AccessLink, LinkPurpose
from server.people.models import Client, Guardian
from server.subjects import Subject

COOKIE_PURPOSE = "link-cookie"


class Window(StrEnum):
    NOT_YET = "not_yet"
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True)
class LinkHolder:
    """The person behind a checked link, for one booking."""

    link: AccessLink
    booking: Booking
    name: str

    @property
    def actor(self) -> Actor:
        return Actor(self.link.subject, f"link:{self.link.id}")


class LinkService:
    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog, keys: AppKeys,
                 events: Events | None = None) -> None:
        self._events = events or Events()  # revoked links: live sessions opened with them end
        self._settings = settings
        self._clock = clock
        self._audit = audit
        self._keys = keys

    # ---- issuing ---------------------------------------------------------------
    async def issue(self, session: AsyncSession, booking: Booking, subject: str, purpose: LinkPurpose) -> str:
        """Create a link and return its token (shown once). Join and check links end with the window."""
        now = self._clock.now()
        if purpose == LinkPurpose.CONSENT:
            expires = max(now, booking.ends_at) + timedelta(days=self._settings.link_valid_days)
        else:
            expires = booking.ends_at + timedelta(minutes=self._settings.late_grace_minutes)
        token = new_token()
        link = AccessLink(token_hash=token_hash(token), purpose=purpose.value, booking_id=booking.id,
                          subject=subject, created_at=now, expires_at=expires)
        session.add(link)
        await session.flush()
        return token

    def url(self, token: str) -> str:
        return f"{self._settings.public_url}/l/{token}"

    async def revoke_for_booking(self, session: AsyncSession, actor: Actor, booking_id: int, reason: str) -> int:
        return await self._revoke(session, actor, AccessLink.booking_id == booking_id, f"booking:{booking_id}", reason)

    async def revoke_for_subject(self, session: AsyncSession, actor: Actor, subject: str, reason: str,
                                 booking_id: int | None = None) -> int:
        """Revoke every link ``subject`` holds (for one booking, or for all)."""
        where = AccessLink.subject == subject
        if booking_id is not None:
            where = and_(where, AccessLink.booking_id == booking_id)
        return await self._revoke(session, actor, where, f"booking:{booking_id}" if booking_id else subject, reason)

    async def _revoke(self, session: AsyncSession, actor: Actor, where: ColumnElement[bool], target: str,
                      reason: str) -> int:
        """Revoke the live links matching ``where``, audited; a live session opened with one ends on commit."""
        ids = frozenset((await session.execute(
            update(AccessLink).where(where, AccessLink.revoked_at.is_(None))
            .values(revoked_at=self._clock.now(), revoked_reason=reason[:200]).returning(AccessLink.id)
        )).scalars())
        if ids:
            await self._audit.record(session, actor, "links.revoked", target, {"count": len(ids), "reason": reason})
            self._events.publish(session, LinksRevoked(ids, reason))
        return len(ids)

    async def still_valid(self, session: AsyncSession, link_id: int) -> bool:
        """Whether a link still opens its booking (not revoked or expired, nobody suspended, not cancelled):
        the live session's periodic re-check."""
        link = await session.get(AccessLink, link_id)
        if link is None:
            return False
        try:
            await self._check(session, link)
        except DuetError:
            return False
        return True

    # ---- checking -------------------------------------------------------------
    def window(self, booking: Booking, now: datetime | None = None) -> Window:
        now = now or self._clock.now()
        if now < booking.starts_at - timedelta(minutes=self._settings.early_join_minutes):
            return Window.NOT_YET
        if now > booking.ends_at + timedelta(minutes=self._settings.late_grace_minutes):
            return Window.CLOSED
        return Window.OPEN

    async def open_token(self, session: AsyncSession, token: str) -> LinkHolder:
        """Check a token from a URL. Unknown tokens and wrong-looking strings get the same answer."""
        if not (16 <= len(token) <= 100):
            raise NotFound("This link is not valid. Use the newest link from your email.")
        link = (
            await session.execute(select(AccessLink).where(AccessLink.token_hash == token_hash(token)))
        ).scalar_one_or_none()
        if link is None:
            raise NotFound("This link is not valid. Use the newest link from your email.")
        holder = await self._check(session, link)
        link.last_used_at = self._clock.now()
        await self._audit.record(session, holder.actor, "link.opened", f"booking:{link.booking_id}",
                                 {"purpose": link.purpose})
        await session.commit()
        return holder

    async def from_cookie(self, session: AsyncSession, cookie: str | None, booking_id: int) -> LinkHolder | None:
        """The holder named by a link cookie for ``booking_id``; None when absent or not for this booking."""
        if not cookie:
            return None
        try:
            link_id_text, expiry_text, signature = cookie.split(".", 2)
            link_id, expiry = int(link_id_text), int(expiry_text)
        except ValueError:
            return None
        if not self._keys.verify(COOKIE_PURPOSE, f"{link_id}.{expiry}", signature):
            return None
        if expiry < self._clock.now().timestamp():
            return None
        link = await session.get(AccessLink, link_id)
        if link is None or link.booking_id != booking_id:
            return None
        return await self._check(session, link)

    def cookie_for(self, holder: LinkHolder) -> tuple[str, int]:
        """The cookie value and its max-age, ending when the link does."""
        expiry = int(holder.link.expires_at.timestamp())
        payload = f"{holder.link.id}.{expiry}"
        max_age = max(60, expiry - int(self._clock.now().timestamp()))
        return f"{payload}.{self._keys.sign(COOKIE_PURPOSE, payload)}", max_age

    def csrf_token(self, holder: LinkHolder) -> str:
        return self._keys.sign("link-csrf", str(holder.link.id))

    async def _check(self, session: AsyncSession, link: AccessLink) -> LinkHolder:
        now = self._clock.now()
        if link.revoked_at is not None:
            raise Gone(f"This link has been withdrawn. Use the newest link from your email.{self._contact()}")
        if link.expires_at <= now:
            ended = await session.get(Booking, link.booking_id)
            if ended is not None and link.purpose != LinkPurpose.CONSENT and self.window(ended, now) == Window.CLOSED:
                raise Gone("This session has ended. The link in your email only works during the session.")
            raise Gone("This link has expired. Ask us to send a new one.")
        booking = await session.get(Booking, link.booking_id)
        if booking is None:
            raise NotFound("This link is not valid. Use the newest link from your email.")
        if booking.status == BookingStatus.CANCELLED:
            raise Gone(f"This session was cancelled.{self._contact()}")
        client = await session.get(Client, booking.client_id)
        practitioner = await session.get(Staff, booking.practitioner_id)
        if client is None or client.status != "approved" or practitioner is None or practitioner.suspended:
            raise Forbidden(f"This session cannot go ahead at the moment.{self._contact()}")
        name = await self._subject_name(session, link.subject)
        return LinkHolder(link, booking, name)

    def _contact(self) -> str:
        """Whom a family contacts when a link cannot be used (DUET_CONTACT_EMAIL), in one sentence."""
        who = self._settings.organisation
        if self._settings.contact_email:
            return f" Please contact {who} at {self._settings.contact_email}."
        return f" Please contact {who}."

    async def _subject_name(self, session: AsyncSession, subject: str) -> str:
        who = Subject.parse(subject)
        kind, ident = (who.kind, who.id) if who is not None else ("", 0)
        person: Staff | Guardian | Client | None
        if kind == "staff":
            person = await session.get(Staff, ident)
            if person is None or person.suspended:
                raise Forbidden("This account is suspended. Contact your safeguarding lead.")
            return person.name
        if kind == "guardian":
            person = await session.get(Guardian, ident)
            if person is None or person.status != "approved":
                raise Forbidden(f"This session cannot go ahead at the moment.{self._contact()}")
            return person.name
        if kind == "client":
            person = await session.get(Client, ident)
            if person is None or person.status != "approved":
                raise Forbidden(f"This session cannot go ahead at the moment.{self._contact()}")
            return person.name
        raise NotFound("This link is not valid.")
