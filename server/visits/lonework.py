"""Lone working on visits (policies/002_*, 003_*): itinerary, check-in and check-out, no-show, cancellation
over safety, and overdue check-out alerts.

Alerts are driven by ``OverdueAlerts.step(now)``, which a background task in ``duet serve`` calls every
few seconds (and tests call with a FakeClock). The state lives in the database: one ``VisitAlert`` row per
visit and stage, written in the same transaction as its outbox email and audit event. Visits are leased
with ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises writers), and the unique
(visit, stage) constraint plus the outbox's idempotent message key mean a restart or a second node can
neither lose an alert (it is sent on the next step) nor send it twice.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Role, Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import Booking, BookingStatus
from server.clock import Clock
from server.config import Settings
from server.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from server.mail import messages
from server.mail.outbox import enqueue
from server.subjects import Subject
from server.visits import rules
from server.visits.models import AlertStage, Visit, VisitAlert, VisitOutcome
from server.visits.services import VisitService

log = logging.getLogger(__name__)


class LoneWorking:
    """The practitioner's side: only the visit's own practitioner records these."""

    def __init__(self, clock: Clock, audit: AuditLog, visits: VisitService) -> None:
        self._clock = clock
        self._audit = audit
        self._visits = visits

    async def _own(self, session: AsyncSession, staff_id: int, booking_id: int) -> tuple[Booking, Visit]:
        booking, visit = await self._visits.get(session, booking_id)
        if booking.practitioner_id != staff_id:
            # Other practitioners are not told the visit exists (as GET /api/v1/visits/{id} does).
            raise NotFound(f"There is no visit with booking id {booking_id} among your visits.")
        return booking, visit

    async def itinerary(self, session: AsyncSession, actor: Actor, staff_id: int, booking_id: int,
                        address: str | None, expected_arrival: datetime, expected_return: datetime) -> Visit:
        """Before leaving: where, arrival and return times (policies/003_* "an itinerary")."""
        booking, visit = await self._own(session, staff_id, booking_id)
        if expected_return <= expected_arrival:
            raise InvalidInput("The expected return must be after the expected arrival.", field="expected_return")
        if expected_return < booking.ends_at:
            raise InvalidInput("The expected return is before the visit ends.", field="expected_return")
        visit.itinerary_address = address or visit.address
        visit.expected_arrival, visit.expected_return = expected_arrival, expected_return
        await self._audit.record(session, actor, "visit.itinerary", f"booking:{booking.id}", {
            "address": visit.itinerary_address, "expected_arrival": expected_arrival.isoformat(),
            "expected_return": expected_return.isoformat()})
        return visit

    async def check_in(self, session: AsyncSession, actor: Actor, staff_id: int, booking_id: int) -> Visit:
        booking, visit = await self._own(session, staff_id, booking_id)
        if booking.status != BookingStatus.CONFIRMED:
            raise PolicyViolation("This visit has not been authorised; it cannot take place.",
                                  rule="visit_authorisation")
        block = await self._visits.blocked_reason(session, booking, visit)
        if block:
            raise PolicyViolation(block + ".", rule="visit_blocked")
        if visit.expected_return is None:
            raise PolicyViolation("Record your itinerary (expected arrival and return) before the visit.",
                                  rule="itinerary")
        if visit.checked_in_at is not None:
            raise Conflict("You have already checked in to this visit.")
        visit.checked_in_at = self._clock.now()
        await self._audit.record(session, actor, "visit.checked_in", f"booking:{booking.id}", {})
        return visit

    async def check_out(self, session: AsyncSession, actor: Actor, staff_id: int, booking_id: int) -> Visit:
        booking, visit = await self._own(session, staff_id, booking_id)
        if visit.checked_in_at is None:
            raise Conflict("Check in before checking out.")
        if visit.checked_out_at is not None:
            raise Conflict("You have already checked out of this visit.")
        visit.checked_out_at = self._clock.now()
        visit.outcome = visit.outcome or VisitOutcome.HELD
        await self._audit.record(session, actor, "visit.checked_out", f"booking:{booking.id}", {})
        return visit

    async def no_show(self, session: AsyncSession, actor: Actor, staff_id: int, booking_id: int) -> Visit:
        """No answer at the door: after 5 minutes, record it and leave (checks the practitioner out)."""
        booking, visit = await self._own(session, staff_id, booking_id)
        if visit.checked_out_at is not None:
            raise Conflict("This visit is already finished.")
        reason = rules.no_show_reason(visit.checked_in_at, self._clock.now())
        if reason:
            raise PolicyViolation(reason, rule="door_wait")
        visit.outcome, visit.checked_out_at = VisitOutcome.NO_SHOW, self._clock.now()
        await self._audit.record(session, actor, "visit.no_show", f"booking:{booking.id}", {})
        return visit

    async def cancel_for_safety(self, session: AsyncSession, actor: Actor, staff_id: int, booking_id: int,
                                reason: str) -> Visit:
        """Not entering (or leaving) because of a safety concern: logged with its reason (policies/003_*)."""
        booking, visit = await self._own(session, staff_id, booking_id)
        if visit.checked_out_at is not None:
            raise Conflict("This visit is already finished.")
        now = self._clock.now()
        visit.outcome, visit.outcome_reason, visit.checked_out_at = VisitOutcome.CANCELLED_SAFETY, reason, now
        if booking.status == BookingStatus.CONFIRMED:
            booking.status, booking.sequence = BookingStatus.CANCELLED, booking.sequence + 1
        await self._audit.record(session, actor, "visit.cancelled_for_safety", f"booking:{booking.id}",
                                 {"reason": reason})
        return visit


# Who each stage goes to. The escalation stage (stored as "safeguarding") reaches the safeguarding leads and
# the head of service together (policies/003_*: a member of staff who cannot be contacted is
# reported to the head, who decides whether to call the police).
STAGE_ROLES: dict[AlertStage, frozenset[Role]] = {
    AlertStage.MANAGER: frozenset({Role.MANAGER}),
    AlertStage.SAFEGUARDING: frozenset({Role.SAFEGUARDING, Role.HEAD_OF_SERVICE}),
}
# Who may acknowledge an alert (and so stop the escalation): anyone an alert can go to.
ACKNOWLEDGERS = frozenset(role for roles in STAGE_ROLES.values() for role in roles)


class OverdueAlerts:
    """Overdue check-out alerts: managers after the grace period, then the safeguarding leads and the head of
    service after a further period."""

    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog) -> None:
        self._settings = settings
        self._clock = clock
        self._audit = audit
        self._grace = timedelta(minutes=settings.overdue_grace_minutes)
        self._escalate = timedelta(minutes=settings.overdue_escalate_minutes)
        self._org = messages.Organisation(settings.organisation, settings.mail_from)

    async def step(self, sessionmaker: async_sessionmaker[AsyncSession]) -> int:
        """Send every alert due now; returns how many were sent. Safe to run on several nodes at once."""
        now = self._clock.now()
        async with sessionmaker() as session:
            # A visit cancelled before anyone arrived has nobody out; one cancelled after check-in still does.
            due = (await session.execute(select(Visit.id).join(Booking, Booking.id == Visit.booking_id).where(
                Visit.expected_return.is_not(None), Visit.expected_return <= now - self._grace,
                Visit.checked_out_at.is_(None),
                or_(Booking.status != BookingStatus.CANCELLED, Visit.checked_in_at.is_not(None))))).scalars().all()
        sent = 0
        for visit_id in due:
            try:
                sent += await self._one(sessionmaker, visit_id, now)
            except IntegrityError:  # another node sent this stage first; it is not sent twice
                log.info("overdue alert for visit %s already sent elsewhere", visit_id)
        return sent

    async def _one(self, sessionmaker: async_sessionmaker[AsyncSession], visit_id: int, now: datetime) -> int:
        async with sessionmaker() as session:
            query = select(Visit).where(Visit.id == visit_id)
            if session.get_bind().dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            visit = (await session.execute(query)).scalar_one_or_none()
            if visit is None:
                return 0
            alerts = (await session.execute(select(VisitAlert).where(VisitAlert.visit_id == visit.id))).scalars().all()
            stage = rules.overdue_stage(visit.expected_return, visit.checked_out_at is not None, now, self._grace,
                                        self._escalate, frozenset(a.stage for a in alerts),
                                        any(a.acknowledged_at is not None for a in alerts))
            if stage is None:
                return 0
            booking = await session.get(Booking, visit.booking_id)
            practitioner = await session.get(Staff, booking.practitioner_id) if booking else None
            roles = STAGE_ROLES[AlertStage(stage)]
            # One row per person: someone holding several of the roles is sent the alert once.
            active = [s for s in (await session.execute(select(Staff).order_by(Staff.id))).scalars()
                      if not s.suspended]
            people = [s for s in active if s.role_set & roles]
            if not people:  # nobody holds the stage's roles now: an alert must still reach someone who can act
                log.error("overdue alert for visit %s: nobody holds %s; sent to every alert role instead",
                          visit.id, sorted(roles))
                people = [s for s in active if s.role_set & ACKNOWLEDGERS]
            if booking is None or practitioner is None or visit.expected_return is None:
                return 0
            late = int((now - visit.expected_return).total_seconds() // 60)
            lines = [f"{practitioner.name} has not checked out of a visit. They were expected back at "
                     f"{visit.expected_return.astimezone(self._settings.zone):%H:%M} ({late} minutes ago).",
                     f"Visit address: {visit.itinerary_address or visit.address or 'not recorded'}.",
                     f"Their phone: {practitioner.phone or 'not recorded'}. Their vehicle: "
                     f"{practitioner.vehicle or 'not recorded'}.",
                     "Try to contact them now. If they cannot be reached, follow the lone working procedure "
                     "(the police are called where there is concern for their welfare)."]
            if stage == AlertStage.SAFEGUARDING:
                lines.insert(0, "Escalation: the manager's alert was not acknowledged.")
            for person in people:
                key = f"visit-{visit.id}.overdue-{stage}.staff-{person.id}"
                message = messages.staff_alert(self._org, messages.Recipient(person.name, person.email), key=key,
                                               now=now, subject=f"Overdue check-out: {practitioner.name}",
                                               lines=lines, link=f"{self._settings.public_url}/dashboard")
                await enqueue(session, message, key, kind="staff_alert", now=now, booking_id=booking.id)
            session.add(VisitAlert(visit_id=visit.id, stage=stage, sent_at=now,
                                   recipients=", ".join(Subject.staff(p.id) for p in people)[:2000]))
            await self._audit.record(session, Actor.system(), f"visit.overdue_{stage}_alerted",
                                     f"booking:{booking.id}", {"sent_at": now.isoformat(),
                                                               "recipients": [Subject.staff(p.id) for p in people]})
            await session.commit()
            return 1

    @staticmethod
    async def open_alerts(session: AsyncSession) -> list[tuple[Booking, Visit, Staff]]:
        """Visits whose practitioner was alerted overdue and is still out, or whose alert nobody has
        acknowledged yet: what the people alerted must act on, oldest expected return first."""
        alerted = select(VisitAlert.visit_id).where(or_(
            VisitAlert.acknowledged_at.is_(None), Visit.checked_out_at.is_(None)))
        rows = await session.execute(
            select(Booking, Visit, Staff).join(Visit, Visit.booking_id == Booking.id)
            .join(Staff, Staff.id == Booking.practitioner_id)
            .where(Visit.id.in_(alerted.join(Visit, Visit.id == VisitAlert.visit_id)))
            .order_by(Visit.expected_return))
        return [(b, v, s) for b, v, s in rows.all()]

    async def acknowledge(self, session: AsyncSession, actor: Actor, staff_id: int, visit: Visit) -> list[VisitAlert]:
        """A manager, the safeguarding lead or the head of service has taken the alert in hand: recorded with
        who and when."""
        alerts = [a for a in (await session.execute(select(VisitAlert).where(VisitAlert.visit_id == visit.id)
                                                    )).scalars() if a.acknowledged_at is None]
        if not alerts:
            raise Conflict("There is no unacknowledged alert for this visit.")
        now = self._clock.now()
        for alert in alerts:
            alert.acknowledged_by_id, alert.acknowledged_at = staff_id, now
        await self._audit.record(session, actor, "visit.overdue_acknowledged", f"booking:{visit.booking_id}",
                                 {"stages": [a.stage for a in alerts]})
        return alerts
