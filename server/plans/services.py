"""Blended plans: create, attach and detach the client's bookings, resources, end (policies/000_*, type 4).

Who may do what is decided here, not only by the route, so that every caller gets the same answer:
admins and managers change any plan; a practitioner changes the plans they lead, and attaches only their
own bookings (the office attaches anyone's); the safeguarding lead reads every plan. A practitioner is
not told that another practitioner's plan exists (404), as with visits. Every change is audited in the
caller's transaction; the caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Role, Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import Booking
from server.bookings.services import BookingService
from server.clock import Clock
from server.config import Settings
from server.errors import Conflict, Forbidden, InvalidInput, NotFound, PolicyViolation
from server.people.models import Client
from server.plans import rules
from server.plans.models import BlendedPlan, PlanBooking, PlanResource, PlanStatus

READERS = frozenset({Role.ADMIN, Role.MANAGER, Role.SAFEGUARDING})  # every plan, to read
EDITORS = frozenset({Role.ADMIN, Role.MANAGER})  # every plan, to change


@dataclass(frozen=True)
class NewPlan:
    client_id: int
    lead_practitioner_id: int
    title: str
    starts_on: date
    ends_on: date
    goals: str = ""


@dataclass(frozen=True)
class NewResource:
    title: str
    url: str | None = None
    note: str | None = None


def may_see(staff: Staff, plan: BlendedPlan) -> bool:
    return bool(staff.role_set & READERS) or plan.lead_practitioner_id == staff.id


def may_change(staff: Staff, plan: BlendedPlan) -> bool:
    return bool(staff.role_set & EDITORS) or plan.lead_practitioner_id == staff.id


class PlanService:
    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog) -> None:
        self._settings = settings
        self._clock = clock
        self._audit = audit

    async def create(self, session: AsyncSession, actor: Actor, by: Staff, new: NewPlan) -> BlendedPlan:
        """Add a plan for one client with one lead practitioner.

        Raises:
            Forbidden: a practitioner naming someone else as the lead.
            InvalidInput: an end before the start.
            NotFound: an unknown client or practitioner.
            PolicyViolation: a suspended client or practitioner (policies/000_*: approval suspended).
        """
        if not by.role_set & EDITORS and new.lead_practitioner_id != by.id:
            raise Forbidden("You can create plans that you lead only.", field="lead_practitioner_id")
        if not by.role_set & EDITORS and not await BookingService.works_with(session, by.id, new.client_id):
            # policies/004_*: need-to-know. Told as "no such client", like the client list.
            raise NotFound(f"There is no client with id {new.client_id} among your clients.", field="client_id")
        if new.ends_on < new.starts_on:
            raise InvalidInput("The plan would end before it starts. Choose a later end date.", field="ends_on")
        client = await session.get(Client, new.client_id)
        if client is None:
            raise NotFound(f"There is no client with id {new.client_id}.", field="client_id")
        if client.status != "approved":
            raise PolicyViolation(f"{client.name}'s approval is suspended; no new plan can start.",
                                  field="client_id", rule="suspension")
        lead = await session.get(Staff, new.lead_practitioner_id)
        if lead is None or not lead.has_role(Role.PRACTITIONER):
            raise NotFound(f"There is no practitioner with id {new.lead_practitioner_id}.",
                           field="lead_practitioner_id")
        if lead.suspended:
            raise PolicyViolation(f"{lead.name}'s approval is suspended; they cannot lead a plan.",
                                  field="lead_practitioner_id", rule="suspension")
        plan = BlendedPlan(client_id=client.id, lead_practitioner_id=lead.id, title=new.title, goals=new.goals,
                           starts_on=new.starts_on, ends_on=new.ends_on, status=PlanStatus.ACTIVE,
                           created_by_id=by.id, created_at=self._clock.now())
        session.add(plan)
        await session.flush()
        await self._audit.record(session, actor, "plan.created", f"plan:{plan.id}", {
            "client_id": client.id, "lead_practitioner_id": lead.id, "title": plan.title,
            "starts_on": plan.starts_on.isoformat(), "ends_on": plan.ends_on.isoformat()})
        return plan

    async def get(self, session: AsyncSession, viewer: Staff, plan_id: int) -> BlendedPlan:
        """The plan if ``viewer`` may see it; otherwise the same 404 as for a plan that does not exist."""
        plan = await session.get(BlendedPlan, plan_id)
        if plan is None or not may_see(viewer, plan):
            raise NotFound(f"There is no blended plan with id {plan_id}.")
        return plan

    async def _changeable(self, session: AsyncSession, by: Staff, plan_id: int) -> BlendedPlan:
        plan = await self.get(session, by, plan_id)
        if not may_change(by, plan):
            raise Forbidden("Only an admin, a manager or the plan's lead practitioner can change it.")
        if plan.status != PlanStatus.ACTIVE:
            raise Conflict(f"Blended plan {plan.id} has ended; it can no longer be changed.")
        return plan

    async def listing(self, session: AsyncSession, viewer: Staff, *, client_id: int | None = None,
                      status: PlanStatus | None = None) -> list[BlendedPlan]:
        """Plans newest first; a practitioner without an office role sees the plans they lead only."""
        query = select(BlendedPlan).order_by(BlendedPlan.starts_on.desc(), BlendedPlan.id.desc())
        if not viewer.role_set & READERS:
            query = query.where(BlendedPlan.lead_practitioner_id == viewer.id)
        if client_id is not None:
            query = query.where(BlendedPlan.client_id == client_id)
        if status is not None:
            query = query.where(BlendedPlan.status == status)
        return list((await session.execute(query)).scalars())

    async def attach(self, session: AsyncSession, actor: Actor, by: Staff, plan_id: int,
                     booking_id: int) -> Booking:
        """Put one of the client's existing bookings, of any kind, into the plan.

        Raises:
            NotFound: no such booking, or (for a practitioner) a booking that is not theirs.
            InvalidInput: a booking of another client, or one outside the plan's dates.
            Conflict: the plan has ended, or the booking is already in this or another plan.
        """
        plan = await self._changeable(session, by, plan_id)
        booking = await session.get(Booking, booking_id)
        if booking is None or (not by.role_set & EDITORS and booking.practitioner_id != by.id):
            raise NotFound(f"There is no booking with id {booking_id}.", field="booking_id")
        if booking.client_id != plan.client_id:
            raise InvalidInput(f"Booking {booking.id} is for another client; a plan holds the bookings of its own "
                               f"client (client {plan.client_id}) only.", field="booking_id")
        day = booking.starts_at.astimezone(self._settings.zone).date()
        if not plan.starts_on <= day <= plan.ends_on:
            raise InvalidInput(f"Booking {booking.id} on {day.isoformat()} is outside the plan's dates "
                               f"({plan.starts_on.isoformat()} to {plan.ends_on.isoformat()}).", field="booking_id")
        await self._refuse_if_planned(session, booking.id, plan.id)
        session.add(PlanBooking(plan_id=plan.id, booking_id=booking.id, added_by_id=by.id,
                                added_at=self._clock.now()))
        try:
            await session.flush()
        except IntegrityError:  # another request attached it between the check and the insert (unique)
            await session.rollback()  # the transaction is spoilt (PostgreSQL); this request fails anyway
            raise Conflict(f"Booking {booking_id} was attached to a plan at the same moment; a booking belongs "
                           "to one plan at most. Reload the plan and try again.", field="booking_id") from None
        await self._audit.record(session, actor, "plan.booking_attached", f"plan:{plan.id}", {
            "booking_id": booking.id, "kind": booking.kind, "client_id": plan.client_id})
        return booking

    async def _refuse_if_planned(self, session: AsyncSession, booking_id: int, plan_id: int) -> None:
        other = (await session.execute(select(PlanBooking.plan_id).where(PlanBooking.booking_id == booking_id))
                 ).scalar_one_or_none()
        if other == plan_id:
            raise Conflict(f"Booking {booking_id} is already in this plan.", field="booking_id")
        if other is not None:
            raise Conflict(f"Booking {booking_id} is already in another blended plan (plan {other}); a booking "
                           "belongs to one plan at most. Detach it there first.", field="booking_id",
                           plan_id=other)

    async def detach(self, session: AsyncSession, actor: Actor, by: Staff, plan_id: int, booking_id: int) -> None:
        """Take a booking out of the plan; the booking itself is unchanged."""
        plan = await self._changeable(session, by, plan_id)
        removed = await session.execute(delete(PlanBooking).where(
            PlanBooking.plan_id == plan.id, PlanBooking.booking_id == booking_id).returning(PlanBooking.id))
        if removed.first() is None:
            raise NotFound(f"Booking {booking_id} is not in blended plan {plan.id}.", field="booking_id")
        await self._audit.record(session, actor, "plan.booking_detached", f"plan:{plan.id}",
                                 {"booking_id": booking_id, "client_id": plan.client_id})

    async def add_resource(self, session: AsyncSession, actor: Actor, by: Staff, plan_id: int,
                           new: NewResource) -> PlanResource:
        """A recorded or written learning resource: a link (https only) or a note, or both.

        Raises:
            InvalidInput: neither a link nor a note, or a link that is not a one-line https address.
        """
        plan = await self._changeable(session, by, plan_id)
        url = new.url or None
        note = new.note or None
        if url is None and note is None:
            raise InvalidInput("Give the resource a link (https://...) or a note.", field="url")
        if url is not None and (problem := rules.url_problem(url)):
            raise InvalidInput(f"The resource link cannot be used: {problem}.", field="url")
        resource = PlanResource(plan_id=plan.id, title=new.title, url=url, note=note, added_by_id=by.id,
                                added_at=self._clock.now())
        session.add(resource)
        await session.flush()
        await self._audit.record(session, actor, "plan.resource_added", f"plan:{plan.id}", {
            "resource_id": resource.id, "title": resource.title, "url": resource.url})
        return resource

    async def remove_resource(self, session: AsyncSession, actor: Actor, by: Staff, plan_id: int,
                              resource_id: int) -> None:
        plan = await self._changeable(session, by, plan_id)
        resource = await session.get(PlanResource, resource_id)
        if resource is None or resource.plan_id != plan.id:
            raise NotFound(f"There is no resource with id {resource_id} in blended plan {plan.id}.")
        details = {"resource_id": resource_id, "title": resource.title, "url": resource.url}
        await session.delete(resource)
        await session.flush()
        await self._audit.record(session, actor, "plan.resource_removed", f"plan:{plan.id}", details)

    async def end(self, session: AsyncSession, actor: Actor, by: Staff, plan_id: int, reason: str) -> BlendedPlan:
        """End the plan: it stays readable with its bookings, and can no longer be changed."""
        plan = await self._changeable(session, by, plan_id)
        plan.status, plan.ended_by_id, plan.ended_at = PlanStatus.ENDED, by.id, self._clock.now()
        plan.ended_reason = reason or None
        await session.flush()
        await self._audit.record(session, actor, "plan.ended", f"plan:{plan.id}", {"reason": reason})
        return plan

    async def booking_ids(self, session: AsyncSession, plan: BlendedPlan) -> list[int]:
        return list((await session.execute(select(PlanBooking.booking_id).where(PlanBooking.plan_id == plan.id)
                                           )).scalars())

    async def resources(self, session: AsyncSession, plan: BlendedPlan) -> list[PlanResource]:
        return list((await session.execute(select(PlanResource).where(PlanResource.plan_id == plan.id)
                                           .order_by(PlanResource.id))).scalars())

    async def plans_of(self, session: AsyncSession, booking_ids: list[int]) -> dict[int, tuple[int, str]]:
        """booking id -> (plan id, plan title) for those of ``booking_ids`` in a plan (for the timetable)."""
        if not booking_ids:
            return {}
        rows = await session.execute(select(PlanBooking.booking_id, BlendedPlan.id, BlendedPlan.title)
                                     .join(BlendedPlan, BlendedPlan.id == PlanBooking.plan_id)
                                     .where(PlanBooking.booking_id.in_(booking_ids)))
        return {booking_id: (plan_id, title) for booking_id, plan_id, title in rows}
