"""Concerns with their 24-hour discussion clock, holds on recordings, and suspension of clients and families.

Concerns are confidential (policies/004_*): only the safeguarding lead, managers and the person who raised
one may read it; everyone else is told it does not exist. A concern not discussed with a manager within
24 hours (policies/000_*, 001_*) is escalated once by ``escalate_due`` (run by the background task in
``duet serve``), with an email to the safeguarding leads and managers through the outbox. The head of
service is told too, since escalating only to the managers who let the clock run out is no escalation;
but need-to-know (policies/004_*) still holds: their notice names the concern by number only, and the
role does not let them read it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Role, Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import Booking
from server.bookings.names import subject_names
from server.clock import Clock
from server.config import Settings
from server.errors import Conflict, InvalidInput, NotFound, RateLimited
from server.events import Events, PersonSuspended
from server.links.models import AccessLink
from server.mail import messages
from server.mail.outbox import enqueue
from server.people.models import Client, Guardian
from server.recording.holds import EraseDateRefresh, Holds
from server.recording.models import RecordingHold
from server.safeguarding.models import Concern, ConcernCategory
from server.safeguarding.rules import CONCERN_DISCUSS_WITHIN, concern_overdue
from server.subjects import Subject

READERS = frozenset({Role.SAFEGUARDING, Role.MANAGER})
LINK_CONCERNS_PER_DAY = 5  # through one family member's links; staff raise as many as they need
# How the name of whoever raised a concern is shown, by the kind of person.
ROLE_SUFFIX = {"staff": "", "guardian": " (parent or carer)", "client": " (client)"}


@dataclass(frozen=True)
class NewConcern:
    category: ConcernCategory
    details: str
    booking_id: int | None = None
    client_id: int | None = None


class SafeguardingService:
    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog, holds: Holds,
                 erase_dates: EraseDateRefresh, events: Events | None = None) -> None:
        self._events = events or Events()  # a suspended person leaves live sessions at once
        self._settings = settings
        self._holds = holds
        self._erase_dates = erase_dates  # a concern about a session moves its recordings under safeguarding
        self._clock = clock
        self._audit = audit
        self._org = messages.Organisation(settings.organisation, settings.mail_from)

    # ---- concerns ---------------------------------------------------------------------------------------
    async def raise_concern(self, session: AsyncSession, actor: Actor, new: NewConcern) -> Concern:
        """Record a concern from anyone; the 24-hour discussion clock starts now."""
        client_id = new.client_id
        if new.booking_id is not None:
            booking = await session.get(Booking, new.booking_id)
            if booking is None:
                raise NotFound(f"There is no booking with id {new.booking_id}.", field="booking_id")
            client_id = client_id or booking.client_id
        if client_id is not None and await session.get(Client, client_id) is None:
            raise NotFound(f"There is no client with id {client_id}.", field="client_id")
        now = self._clock.now()
        staff_id = who.id if (who := Subject.parse(actor.ref)) is not None and who.is_staff else None
        concern = Concern(category=new.category, details=new.details, raised_by=actor.ref,
                          raised_by_staff_id=staff_id, booking_id=new.booking_id, client_id=client_id,
                          raised_at=now, discuss_by=now + CONCERN_DISCUSS_WITHIN)
        session.add(concern)
        await session.flush()
        # The details stay in the concern row (confidential); the audit chain records that it exists.
        await self._audit.record(session, actor, "concern.raised", f"concern:{concern.id}",
                                 {"category": concern.category, "booking_id": new.booking_id,
                                  "client_id": client_id})
        if new.booking_id is not None:  # the session's recordings now fall under the safeguarding policy
            await self._erase_dates.refresh_booking(session, new.booking_id)
        await self._tell_on_raising(session, concern, now)
        return concern

    async def raise_from_link(self, session: AsyncSession, actor: Actor, new: NewConcern) -> Concern:
        """A concern from a family through their session link, at most ``LINK_CONCERNS_PER_DAY`` a day per
        person: every one reaches the lead, but a link cannot flood the safeguarding team. The first refusal
        tells the leads once that someone is trying to say more (they may need a call, not a form)."""
        since = self._clock.now() - timedelta(days=1)
        raised = await session.scalar(select(func.count()).select_from(Concern).where(
            Concern.raised_by == actor.ref, Concern.raised_at >= since)) or 0
        if raised >= LINK_CONCERNS_PER_DAY:
            await self._tell_limit_reached(session, actor)
            raise RateLimited(
                f"You have raised {raised} concerns today: our safeguarding lead has every one and will contact "
                "you. If anyone is in immediate danger, call 999.", retry_after=24 * 3600)
        return await self.raise_concern(session, actor, new)

    async def _tell_limit_reached(self, session: AsyncSession, actor: Actor) -> None:
        now = self._clock.now()
        day = now.astimezone(self._settings.zone).date().isoformat()
        key = f"concern-limit.{actor.ref.replace(':', '-')}.{day}"
        leads = [s for s in (await session.execute(select(Staff).order_by(Staff.id))).scalars()
                 if s.has_role(Role.SAFEGUARDING) and not s.suspended]
        sent = False
        for person in leads:
            message = messages.staff_alert(
                self._org, messages.Recipient(person.name, person.email), key=f"{key}.staff-{person.id}", now=now,
                subject="A family is trying to raise more concerns",
                lines=[f"{actor.ref} has raised {LINK_CONCERNS_PER_DAY} concerns through their session link today "
                       "and tried to raise another, which was refused.",
                       "Their concerns are in Duet. Consider calling them."],
                link=f"{self._settings.public_url}/concerns")
            sent = await enqueue(session, message, f"{key}.staff-{person.id}", kind="staff_alert", now=now) or sent
        if sent:  # once a day per person: the outbox key makes a second refusal enqueue nothing
            await self._audit.record(session, Actor.system(), "concern.link_limit_reached", actor.ref,
                                     {"per_day": LINK_CONCERNS_PER_DAY})
        await session.commit()

    async def _tell_on_raising(self, session: AsyncSession, concern: Concern, now: datetime) -> None:
        """policies/004_*: concerns are reported to the designated lead at once, and an allegation against
        a member of staff to the head of service too. Sent through the outbox in the concern's own
        transaction, so the email cannot be lost; heads of service are told that it exists, not what it says."""
        active = [s for s in (await session.execute(select(Staff).order_by(Staff.id))).scalars()
                  if not s.suspended and Subject.staff(s.id) != concern.raised_by]
        readers = [s for s in active if s.role_set & READERS]
        heads = [s for s in active if s.has_role(Role.HEAD_OF_SERVICE) and not s.role_set & READERS] \
            if concern.category == ConcernCategory.ALLEGATION_AGAINST_STAFF else []
        raised = f"{concern.raised_at.astimezone(self._settings.zone):%d %b %H:%M}"
        kind = concern.category.replace("_", " ")
        subject = f"New concern {concern.id}: {kind}"
        for person in readers:
            await self._mail(session, concern, person, now, "raised", subject, [
                f"Concern {concern.id} ({kind}) was raised at {raised}.",
                "Read it in Duet and discuss it with a manager within 24 hours."], "/concerns")
        for person in heads:
            await self._mail(session, concern, person, now, "raised", f"New concern {concern.id}", [
                f"An allegation against a member of staff was raised at {raised} (concern {concern.id}).",
                "The safeguarding leads and managers have the details (need-to-know)."], "/dashboard")
        await self._audit.record(session, Actor.system(), "concern.notified", f"concern:{concern.id}",
                                 {"recipients": [Subject.staff(p.id) for p in readers + heads]})

    @staticmethod
    def may_read(staff: Staff | None, actor_ref: str, concern: Concern) -> bool:
        if staff is not None and staff.role_set & READERS:
            return True
        return concern.raised_by == actor_ref

    async def visible(self, session: AsyncSession, staff: Staff) -> list[Concern]:
        query = select(Concern).order_by(Concern.raised_at.desc())
        if not staff.role_set & READERS:
            query = query.where(Concern.raised_by == Subject.staff(staff.id))
        return list((await session.execute(query)).scalars())

    @staticmethod
    async def actor_names(session: AsyncSession, refs: Iterable[str]) -> dict[str, str]:
        """Names for actor refs, to show who raised a concern or discussed it ("guardian:2" ->
        "Gail Guardian (parent or carer)"). Only for callers who may already read those concerns."""
        names = await subject_names(session, refs)
        return {ref: name + ROLE_SUFFIX[Subject(ref).kind] for ref, name in names.items()}

    async def get(self, session: AsyncSession, staff: Staff, concern_id: int) -> Concern:
        concern = await session.get(Concern, concern_id)
        if concern is None or not self.may_read(staff, Subject.staff(staff.id), concern):
            raise NotFound(f"There is no concern with id {concern_id}.")
        return concern

    async def discussed(self, session: AsyncSession, actor: Actor, manager: Staff, concern: Concern,
                        note: str) -> Concern:
        """A manager (or the safeguarding lead) has discussed the concern: the clock stops."""
        if concern.discussed_at is not None:
            raise Conflict("This concern has already been discussed.")
        concern.discussed_at, concern.discussed_with_id = self._clock.now(), manager.id
        concern.discussion_note = note
        await self._audit.record(session, actor, "concern.discussed", f"concern:{concern.id}",
                                 {"late": concern.discussed_at > concern.discuss_by})
        return concern

    async def escalate_due(self, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        """Escalate every concern whose 24 hours ran out undiscussed; each once. Returns how many."""
        now = self._clock.now()
        count = 0
        async with sessionmaker() as session:
            query = select(Concern).where(Concern.discussed_at.is_(None), Concern.escalated_at.is_(None),
                                          Concern.discuss_by <= now)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            due = [c for c in (await session.execute(query)).scalars()
                   if concern_overdue(c.discuss_by, c.discussed_at, c.escalated_at, now)]
            active = [s for s in (await session.execute(select(Staff).order_by(Staff.id))).scalars()
                      if not s.suspended]
            readers = [s for s in active if s.role_set & READERS]
            # Each person once: a head of service who is also a manager gets the readers' email.
            heads = [s for s in active if s.has_role(Role.HEAD_OF_SERVICE) and not s.role_set & READERS]
            for concern in due:
                concern.escalated_at = now
                late = f"Concern {concern.id} not discussed within 24 hours"
                raised = f"{concern.raised_at.astimezone(self._settings.zone):%d %b %H:%M}"
                for person in readers:
                    await self._mail(session, concern, person, now, "overdue", late, [
                        f"Concern {concern.id} ({concern.category.replace('_', ' ')}) was raised at {raised} and "
                        "has not been discussed with a manager within 24 hours.",
                        "Open it in Duet and record the discussion now."], "/concerns")
                for person in heads:
                    await self._mail(session, concern, person, now, "overdue", late, [
                        f"Concern {concern.id}, raised at {raised}, has not been discussed with a manager within "
                        "24 hours. The safeguarding leads and managers have been told again.",
                        "Its details stay with them (need-to-know): please make sure it is discussed today."],
                        "/dashboard")
                await self._audit.record(session, Actor.system(), "concern.escalated", f"concern:{concern.id}",
                                         {"sent_at": now.isoformat(),
                                          "recipients": [Subject.staff(p.id) for p in readers + heads]})
                count += 1
            await session.commit()
        return count

    async def _mail(self, session: AsyncSession, concern: Concern, person: Staff, now: datetime, stage: str,
                    subject: str, lines: list[str], page: str) -> None:
        key = f"concern-{concern.id}.{stage}.staff-{person.id}"
        message = messages.staff_alert(
            self._org, messages.Recipient(person.name, person.email), key=key, now=now,
            subject=subject, lines=lines, link=f"{self._settings.public_url}{page}")
        await enqueue(session, message, key, kind="staff_alert", now=now)

    # ---- holds on recordings ------------------------------------------------------------------------------
    async def place_hold(self, session: AsyncSession, actor: Actor, staff: Staff, concern: Concern,
                         reason: str, whole_client: bool) -> RecordingHold:
        """Keep the recordings of the concern's booking (or all its client's) until the hold is lifted."""
        booking_id = None if whole_client else concern.booking_id
        client_id = concern.client_id if whole_client or booking_id is None else None
        if booking_id is None and client_id is None:
            raise InvalidInput("This concern names no booking or client whose recordings could be held.")
        return await self._holds.place(session, actor, staff.id, reason, booking_id=booking_id, client_id=client_id,
                                       concern_id=concern.id, target=f"concern:{concern.id}")

    async def place_legal_hold(self, session: AsyncSession, actor: Actor, staff: Staff, client_id: int,
                               booking_id: int | None, reason: str) -> RecordingHold:
        """Keep a client's recordings (or one session's) for a legal matter, until the hold is lifted."""
        if await session.get(Client, client_id) is None:
            raise NotFound(f"There is no client with id {client_id}.")
        if booking_id is not None:
            booking = await session.get(Booking, booking_id)
            if booking is None or booking.client_id != client_id:
                raise NotFound(f"Client {client_id} has no booking with id {booking_id}.", field="booking_id")
        return await self._holds.place(session, actor, staff.id, reason, booking_id=booking_id, client_id=client_id,
                                       target=Subject.client(client_id))

    # ---- suspension of clients and families ---------------------------------------------------------------
    async def suspend(self, session: AsyncSession, actor: Actor, staff: Staff, person: Client | Guardian,
                      reason: str) -> list[int]:
        """Suspend approval: new bookings are refused and links stop working (both check the status).
        Returns the bookings whose live sessions the caller should remove the person from."""
        if person.status == "suspended":
            raise Conflict(f"{person.name} is already suspended.")
        person.status, person.suspended_by_id = "suspended", staff.id
        person.suspended_at, person.suspended_reason = self._clock.now(), reason
        kind = "client" if isinstance(person, Client) else "guardian"
        subject = f"{kind}:{person.id}"
        if isinstance(person, Client):
            ids = (await session.execute(select(Booking.id).where(Booking.client_id == person.id))).scalars()
        else:
            ids = (await session.execute(select(AccessLink.booking_id).where(AccessLink.subject == subject)
                                         )).scalars()
        bookings = sorted(set(ids))
        await self._audit.record(session, actor, f"{kind}.suspended", subject, {"reason": reason})
        self._events.publish(session, PersonSuspended(subject, "This session cannot go ahead at the moment."))
        return bookings

    async def reinstate(self, session: AsyncSession, actor: Actor, person: Client | Guardian, reason: str) -> None:
        if person.status != "suspended":
            raise Conflict(f"{person.name} is not suspended.")
        person.status, person.suspended_by_id, person.suspended_at, person.suspended_reason = (
            "approved", None, None, None)
        kind = "client" if isinstance(person, Client) else "guardian"
        await self._audit.record(session, actor, f"{kind}.reinstated", f"{kind}:{person.id}", {"reason": reason})
