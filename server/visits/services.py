"""Booking and authorising visits, the workspace checklist, and proposing practitioners for a home visit.

A visit is booked as ``requested``; it becomes ``confirmed`` only when a manager or the safeguarding lead
authorises it with a purpose, and only if nothing blocks it then (evening agreement, workspace checklist).
Every change is audited in the caller's transaction; the caller commits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import OFFICE, Role, Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import LIVE, Booking, BookingKind, BookingStatus, StaffUnavailability
from server.bookings.rules import MAX_DURATION_MINUTES, is_evening
from server.bookings.services import BookingService, NewBooking
from server.clock import Clock
from server.config import Settings
from server.errors import Conflict, InvalidInput, NotFound, PolicyViolation
from server.people.models import Client
from server.subjects import Subject
from server.visits import allocation, rules
from server.visits.distance import DistanceModel, Location
from server.visits.models import LocationKind, Studio, Visit, VisitAlert, WorkspaceCheck

KIND_LOCATION = {BookingKind.HOME_VISIT: LocationKind.HOME, BookingKind.STUDIO_VISIT: LocationKind.STUDIO}
CHECKLIST_ITEMS = ("ventilation", "lighting_and_heat", "window_or_open_door", "safe_to_work", "carer_on_site")

@dataclass(frozen=True)
class NewVisit:
    kind: BookingKind
    practitioner_id: int
    client_id: int
    starts_at: datetime
    duration_minutes: int
    guardian_ids: tuple[int, ...] = ()
    invite_client: bool = False
    location: LocationKind | None = None  # setting sessions: setting or music_centre
    address: str = ""
    clients: int = 1
    preferred_location_available: bool = False
    home_reason: str | None = None
    conditions: rules.Conditions | None = None
    conditions_confirmed_by: str | None = None  # "guardian:3" (account holder) or "client:4" (adult)
    studio_id: int | None = None
    responsible_adult: str | None = None


def _refuse(reasons: list[str], field: str, rule: str) -> None:
    if reasons:
        raise PolicyViolation("This visit cannot be booked: " + "; ".join(reasons) + ".", field=field, rule=rule,
                              reasons=reasons)


class VisitService:
    def __init__(self, settings: Settings, clock: Clock, audit: AuditLog, bookings: BookingService,
                 distance: DistanceModel | None = None) -> None:
        self._settings = settings
        self._clock = clock
        self._audit = audit
        self._bookings = bookings
        self._distance = distance
        self.allocation_rules = allocation.AllocationRules()

    # ---- booking --------------------------------------------------------------------------------------
    async def book(self, session: AsyncSession, actor: Actor, new: NewVisit) -> tuple[Booking, Visit]:
        """Check every visit rule, then add the booking (status requested) and its visit row.

        Raises:
            PolicyViolation: with every broken rule in ``reasons``.
            InvalidInput, NotFound: as ``BookingService.create``.
        """
        if new.kind.is_remote:
            raise InvalidInput("Book live sessions through /api/v1/bookings.", field="kind")
        client = await session.get(Client, new.client_id)
        practitioner = await session.get(Staff, new.practitioner_id)
        if client is None:
            raise NotFound(f"There is no client with id {new.client_id}.", field="client_id")
        if practitioner is None or not practitioner.has_role(Role.PRACTITIONER):
            raise NotFound(f"There is no practitioner with id {new.practitioner_id}.", field="practitioner_id")
        local = new.starts_at.astimezone(self._settings.zone)
        location = KIND_LOCATION.get(new.kind) or new.location or LocationKind.SETTING
        if new.kind == BookingKind.SETTING_SESSION and location not in (LocationKind.SETTING,
                                                                        LocationKind.MUSIC_CENTRE):
            raise InvalidInput("A setting session is at a setting or a music centre.", field="location")
        reasons = rules.location_reasons(location, new.preferred_location_available, new.home_reason)
        adult = client.is_adult_on(local.date())
        visit = Visit(location_kind=location, address=new.address, preferred_location_available=
                      new.preferred_location_available, home_reason=new.home_reason, created_at=self._clock.now())
        candidate = await self.candidate(session, practitioner, local.date())
        if new.kind == BookingKind.HOME_VISIT:
            reasons += rules.home_visit_reasons(new.duration_minutes, new.clients, new.conditions,
                                                practitioner.home_visits_opt_in)
            reasons += await self._account_holder_reasons(client, new.conditions_confirmed_by, adult)
            if client.lat is None or client.lon is None:
                reasons.append(f"{client.name}'s home has no location recorded")
            else:
                visit.lat, visit.lon, visit.address = client.lat, client.lon, new.address or client.address
                if new.duration_minutes >= rules.MIN_HOME_VISIT_MINUTES:
                    request = allocation.VisitRequest(Location(client.lat, client.lon), local,
                                                      timedelta(minutes=new.duration_minutes))
                    result = allocation.propose(request, [candidate], distance=self._distance,
                                                rules=self.allocation_rules)
                    reasons += [r for e in result.excluded for r in e.reasons
                                if r != "not opted in to home visits"]
            if new.conditions is not None:
                visit.conditions_confirmed_by = new.conditions_confirmed_by
                visit.conditions_evidence = new.conditions.evidence
                visit.conditions_recorded_at = self._clock.now()
        else:
            reasons += allocation.credential_reasons(candidate, local.date(), self.allocation_rules)
        if new.kind == BookingKind.STUDIO_VISIT:
            studio = await session.get(Studio, new.studio_id) if new.studio_id else None
            reasons += rules.studio_reasons(None if studio is None else studio.approved, adult,
                                            client.needs_one_to_one_support, new.responsible_adult)
            if studio is not None:
                visit.studio_id, visit.address, visit.lat, visit.lon = studio.id, studio.address, studio.lat, studio.lon
            visit.responsible_adult = new.responsible_adult
        _refuse(reasons, "kind", f"{new.kind}_rules")
        visit.evening = is_evening(local, new.duration_minutes, self._settings.evening_hour)
        booking = await self._bookings.create(session, actor, NewBooking(
            kind=new.kind, practitioner_id=new.practitioner_id, client_id=new.client_id, starts_at=new.starts_at,
            duration_minutes=new.duration_minutes, guardian_ids=new.guardian_ids, invite_client=new.invite_client,
        ), visit_rules_checked=True)
        booking.status = BookingStatus.REQUESTED
        visit.booking_id = booking.id
        session.add(visit)
        await session.flush()
        await self._audit.record(session, actor, "visit.requested", f"booking:{booking.id}", {
            "location": location, "evening": visit.evening, "home_reason": new.home_reason,
            "conditions_confirmed_by": visit.conditions_confirmed_by, "studio_id": visit.studio_id,
        })
        return booking, visit

    async def _account_holder_reasons(self, client: Client, subject: str | None, adult: bool) -> list[str]:
        if subject is None:
            return []
        holders = {Subject.guardian(link.guardian_id) for link in client.guardians if link.account_holder}
        if subject in holders or (adult and subject == Subject.client(client.id)):
            return []
        return [f"{subject} is not the account holder for {client.name}"]

    # ---- listings ------------------------------------------------------------------------------------
    @staticmethod
    async def alerts(session: AsyncSession, visit_id: int) -> list[VisitAlert]:
        """The overdue check-out alerts sent for a visit, oldest first."""
        return list((await session.execute(select(VisitAlert).where(VisitAlert.visit_id == visit_id)
                                           .order_by(VisitAlert.id))).scalars())

    async def on_day(self, session: AsyncSession, practitioner_id: int, day: date) -> list[tuple[Booking, Visit]]:
        """A practitioner's visits starting on ``day`` (the organisation's time zone), in time order."""
        start = datetime.combine(day, time(0), self._settings.zone)
        rows = (await session.execute(select(Booking, Visit).join(Visit, Visit.booking_id == Booking.id).where(
            Booking.practitioner_id == practitioner_id, Booking.starts_at >= start,
            Booking.starts_at < start + timedelta(days=1)).order_by(Booking.starts_at))).all()
        return [(b, v) for b, v in rows]

    @staticmethod
    async def timetable(session: AsyncSession, *, start: datetime | None = None, end: datetime | None = None,
                        practitioner_id: int | None = None, client_id: int | None = None,
                        booking_ids: list[int] | None = None) -> list[tuple[Booking, Visit | None]]:
        """Bookings of every kind (a visit with its details, a live session with None), in time order."""
        query = select(Booking, Visit).outerjoin(Visit, Visit.booking_id == Booking.id)
        if start is not None:
            query = query.where(Booking.starts_at >= start)
        if end is not None:
            query = query.where(Booking.starts_at < end)
        if practitioner_id is not None:
            query = query.where(Booking.practitioner_id == practitioner_id)
        if client_id is not None:
            query = query.where(Booking.client_id == client_id)
        if booking_ids is not None:
            query = query.where(Booking.id.in_(booking_ids))
        rows = (await session.execute(query.order_by(Booking.starts_at, Booking.id))).all()
        return [(b, v) for b, v in rows]

    # ---- studios (policies/000_*: studio visits only at approved studios) ------------------------------
    @staticmethod
    async def studios(session: AsyncSession) -> list[Studio]:
        return list((await session.execute(select(Studio).order_by(Studio.name))).scalars())

    async def add_studio(self, session: AsyncSession, actor: Actor, *, name: str, address: str,
                         lat: float | None, lon: float | None) -> Studio:
        """A studio the office has found; not for visits until approved."""
        studio = Studio(name=name, address=address, lat=lat, lon=lon, approved=False, created_at=self._clock.now())
        session.add(studio)
        await session.flush()
        await self._audit.record(session, actor, "studio.added", f"studio:{studio.id}", {"name": studio.name})
        return studio

    async def approve_studio(self, session: AsyncSession, actor: Actor, approver_id: int, studio_id: int,
                             reason: str) -> Studio:
        studio = await session.get(Studio, studio_id)
        if studio is None:
            raise NotFound("There is no such studio.")
        studio.approved, studio.approved_by_id, studio.approved_at = True, approver_id, self._clock.now()
        await self._audit.record(session, actor, "studio.approved", f"studio:{studio.id}", {"reason": reason})
        return studio

    async def get(self, session: AsyncSession, booking_id: int) -> tuple[Booking, Visit]:
        booking = await session.get(Booking, booking_id)
        visit = (await session.execute(select(Visit).where(Visit.booking_id == booking_id))).scalar_one_or_none()
        if booking is None or visit is None:
            raise NotFound(f"There is no visit with booking id {booking_id}.")
        return booking, visit

    # ---- authorisation ----------------------------------------------------------------------------------
    async def agree_evening(self, session: AsyncSession, actor: Actor, manager: Staff, booking_id: int,
                            reason: str) -> Visit:
        """policies/000_*, 003_*: out-of-hours visits only when a manager agrees (the rule of every booking,
        server/bookings/evening.py)."""
        booking, visit = await self.get(session, booking_id)
        await self._bookings.agree_evening(session, actor, manager, booking, reason)
        return visit

    async def authorise(self, session: AsyncSession, actor: Actor, staff_id: int, booking_id: int,
                        purpose: str) -> tuple[Booking, Visit]:
        """policies/001_*, 003_*: the manager or safeguarding lead authorises, with a purpose, before
        confirmation. Refused while an evening agreement or the workspace checklist is outstanding."""
        booking, visit = await self.get(session, booking_id)
        if booking.status != BookingStatus.REQUESTED:
            raise Conflict(f"Booking {booking.id} is {booking.status}; only a requested visit can be authorised.")
        reasons = await self.blocks(session, booking, visit)
        if reasons:
            raise PolicyViolation("This visit cannot be authorised yet: " + "; ".join(reasons) + ".",
                                  rule="visit_authorisation", reasons=reasons)
        visit.purpose, visit.authorised_by_id, visit.authorised_at = purpose, staff_id, self._clock.now()
        booking.status = BookingStatus.CONFIRMED
        booking.sequence += 1
        await self._audit.record(session, actor, "visit.authorised", f"booking:{booking.id}", {"purpose": purpose})
        return booking, visit

    # ---- workspace checklist ----------------------------------------------------------------------------
    async def checklist_state(self, session: AsyncSession, client_id: int, before: datetime) -> rules.ChecklistState:
        held = (await session.execute(
            select(func.count()).select_from(Visit).join(Booking, Booking.id == Visit.booking_id).where(
                Booking.client_id == client_id, Booking.kind == BookingKind.HOME_VISIT,
                Visit.checked_in_at.is_not(None), Booking.starts_at < before))).scalar_one()
        checks = (await session.execute(select(WorkspaceCheck).where(WorkspaceCheck.client_id == client_id))
                  ).scalars().all()
        confirmed = [c.recorded_at for c in checks if c.kind == "checklist" and c.confirmed_at is not None]
        changes = [c.recorded_at for c in checks if c.kind == "change"]
        return rules.ChecklistState(
            visits_held=int(held), last_confirmed=max(confirmed, default=None), last_change=max(changes, default=None),
            unconfirmed=any(c.kind == "checklist" and c.confirmed_at is None for c in checks))

    async def blocks(self, session: AsyncSession, booking: Booking, visit: Visit) -> list[str]:
        """Why this visit cannot take place now: refused at authorisation and check-in, shown on the visit.

        Evening work (policies/000_*, 002_*, 003_*): a home visit past the evening hour, or any visit past it
        on a day the practitioner was unavailable, needs a manager's agreement. Home visits also need the
        workspace checklist (policies/001_*). A suspension of the practitioner, the client or anyone in the
        family (policies/004_*: approval suspended while a concern is looked into) stops every visit."""
        reasons = []
        practitioner = await session.get(Staff, booking.practitioner_id)
        if practitioner is not None and practitioner.suspended:
            reasons.append("Visit blocked: the practitioner's approval is suspended")
        client = await session.get(Client, booking.client_id)
        if client is not None and client.status != "approved":
            reasons.append("Visit blocked: the client's approval is suspended")
        if client is not None and any(link.guardian.status != "approved" for link in client.guardians):
            reasons.append("Visit blocked: the approval of someone in the family is suspended")
        day = booking.starts_at.astimezone(self._settings.zone).date()
        if (evening := await self._bookings.evening.block(session, booking)) is not None:
            reasons.append(f"Visit blocked: {evening}")
        if booking.kind == BookingKind.HOME_VISIT:
            block = rules.workspace_block(await self.checklist_state(session, booking.client_id, booking.starts_at),
                                          day)
            if block:
                reasons.append(block)
        return reasons

    async def blocked_reason(self, session: AsyncSession, booking: Booking, visit: Visit) -> str | None:
        return "; ".join(await self.blocks(session, booking, visit)) or None

    async def mark_unavailable(self, session: AsyncSession, actor: Actor, recorder_id: int, staff_id: int,
                               day: date, reason: str) -> tuple[StaffUnavailability, list[Booking]]:
        """Record that a practitioner was unavailable for work during ``day`` (sickness, leave...).

        Returns the row and their bookings that evening which now wait for a manager's agreement
        (policies/000_*), live sessions and visits alike; each is audited as blocked."""
        if await session.get(Staff, staff_id) is None:
            raise NotFound(f"There is no member of staff with id {staff_id}.")
        evening = self._bookings.evening
        if await evening.unavailability(session, staff_id, day) is not None:
            raise Conflict(f"Staff {staff_id} is already marked unavailable on {day}.")
        row = StaffUnavailability(staff_id=staff_id, day=day, reason=reason, recorded_by_id=recorder_id,
                                  recorded_at=self._clock.now())
        session.add(row)
        await session.flush()
        blocked = await evening.blocked_on(session, staff_id, day)
        await self._audit.record(session, actor, "staff.unavailable", Subject.staff(staff_id),
                                 {"day": day.isoformat(), "reason": reason,
                                  "blocked_bookings": [b.id for b, _ in blocked]})
        for booking, why in blocked:
            await self._audit.record(session, actor, "booking.evening_blocked", f"booking:{booking.id}",
                                     {"reason": why})
        return row, [b for b, _ in blocked]

    async def record_checklist(self, session: AsyncSession, actor: Actor, staff_id: int, booking_id: int,
                               answers: dict[str, bool], note: str) -> WorkspaceCheck:
        """The practitioner completes the checklist with the account holder (policies/001_*)."""
        booking, _ = await self.get(session, booking_id)
        if booking.kind != BookingKind.HOME_VISIT:
            raise InvalidInput("The workspace checklist is for home visits.", field="booking_id")
        missing = [item for item in CHECKLIST_ITEMS if item not in answers]
        if missing:
            raise InvalidInput(f"Answer every checklist item; missing: {', '.join(missing)}.", field="answers")
        check = WorkspaceCheck(client_id=booking.client_id, booking_id=booking.id, kind="checklist",
                               answers=json.dumps({k: bool(answers[k]) for k in CHECKLIST_ITEMS}), note=note,
                               recorded_by_id=staff_id, recorded_at=self._clock.now())
        session.add(check)
        await session.flush()
        await self._audit.record(session, actor, "visit.checklist_completed", Subject.client(booking.client_id),
                                 {"check_id": check.id, "booking_id": booking.id, "answers": answers})
        return check

    async def confirm_checklist(self, session: AsyncSession, actor: Actor, manager_id: int,
                                check_id: int) -> WorkspaceCheck:
        check = await session.get(WorkspaceCheck, check_id)
        if check is None or check.kind != "checklist":
            raise NotFound(f"There is no workspace checklist with id {check_id}.")
        if check.confirmed_at is not None:
            raise Conflict("This checklist is already confirmed.")
        failed = [k for k, v in json.loads(check.answers).items() if not v]
        if failed:
            raise PolicyViolation("A checklist with failed items cannot be confirmed: " + ", ".join(failed)
                                  + ". Visits stay stopped until the workspace is put right and checked again.",
                                  rule="workspace_checklist")
        check.confirmed_by_id, check.confirmed_at = manager_id, self._clock.now()
        await self._audit.record(session, actor, "visit.checklist_confirmed", Subject.client(check.client_id),
                                 {"check_id": check.id})
        return check

    async def report_change(self, session: AsyncSession, actor: Actor, staff: Staff, client_id: int,
                            note: str) -> WorkspaceCheck:
        """An observable change to the home: a new checklist is needed before the next visit. A practitioner
        reports it only for a client they work with (need-to-know); the office for anyone."""
        staff_id = staff.id
        if await session.get(Client, client_id) is None or (
                not staff.role_set & OFFICE and not await self._bookings.works_with(session, staff_id, client_id)):
            raise NotFound(f"There is no client with id {client_id} among your clients.")
        change = WorkspaceCheck(client_id=client_id, kind="change", note=note, recorded_by_id=staff_id,
                                recorded_at=self._clock.now())
        session.add(change)
        await session.flush()
        await self._audit.record(session, actor, "visit.workspace_changed", Subject.client(client_id), {"note": note})
        return change

    # ---- allocation -------------------------------------------------------------------------------------
    async def _diaries(self, session: AsyncSession, staff_ids: list[int], day: date
                       ) -> dict[int, list[allocation.Booking]]:
        """Each practitioner's live bookings around ``day`` (local), in one query, as allocation sees them."""
        start = datetime.combine(day, datetime.min.time(), self._settings.zone) - timedelta(
            minutes=MAX_DURATION_MINUTES)
        rows = (await session.execute(
            select(Booking.practitioner_id, Booking.id, Booking.starts_at, Booking.duration_minutes, Visit.lat,
                   Visit.lon).outerjoin(Visit, Visit.booking_id == Booking.id).where(
                Booking.practitioner_id.in_(staff_ids), Booking.status.in_(LIVE), Booking.starts_at >= start,
                Booking.starts_at < start + timedelta(days=1, minutes=2 * MAX_DURATION_MINUTES)))).all()
        diaries: dict[int, list[allocation.Booking]] = {i: [] for i in staff_ids}
        for staff_id, booking_id, starts_at, minutes, lat, lon in rows:
            where = Location(lat, lon) if lat is not None and lon is not None else None
            diaries[staff_id].append(allocation.Booking(starts_at, starts_at + timedelta(minutes=minutes), where,
                                                        label=f"booking {booking_id}"))
        return diaries

    @staticmethod
    def _as_candidate(staff: Staff, diary: list[allocation.Booking],
                      unavailable: frozenset[date] = frozenset()) -> allocation.Candidate:
        base = Location(staff.base_lat, staff.base_lon) if staff.base_lat is not None and staff.base_lon \
            is not None else None
        return allocation.Candidate(staff.id, staff.name, base, staff.home_visits_opt_in, not staff.suspended,
                                    staff.dbs_level, staff.dbs_checked_on, staff.safeguarding_training_on,
                                    tuple(diary), unavailable)

    async def _unavailable(self, session: AsyncSession, staff_ids: list[int], day: date) -> set[int]:
        """Who of ``staff_ids`` is marked unavailable for work on ``day``, in one query."""
        return set((await session.execute(select(StaffUnavailability.staff_id).where(
            StaffUnavailability.staff_id.in_(staff_ids), StaffUnavailability.day == day))).scalars())

    async def candidate(self, session: AsyncSession, staff: Staff, day: date) -> allocation.Candidate:
        """A member of staff with their diary for ``day`` (local), as allocation sees them. Booking a visit
        directly does not refuse a day marked unavailable: the evening rule blocks what it must."""
        return self._as_candidate(staff, (await self._diaries(session, [staff.id], day))[staff.id])

    async def proposals(self, session: AsyncSession, client_id: int, starts_at: datetime,
                        duration_minutes: int) -> allocation.Allocation:
        """Rank practitioners for a home visit to ``client_id`` (policies/001_*)."""
        client = await session.get(Client, client_id)
        if client is None:
            raise NotFound(f"There is no client with id {client_id}.", field="client_id")
        if client.lat is None or client.lon is None:
            raise InvalidInput(f"{client.name}'s home has no location recorded.", field="client_id")
        local = starts_at.astimezone(self._settings.zone)
        request = allocation.VisitRequest(Location(client.lat, client.lon), local,
                                          timedelta(minutes=duration_minutes))
        practitioners = [s for s in (await session.execute(select(Staff).order_by(Staff.id))).scalars()
                         if s.has_role(Role.PRACTITIONER)]
        ids = [s.id for s in practitioners]
        diaries = await self._diaries(session, ids, local.date())
        away = await self._unavailable(session, ids, local.date())
        day = frozenset({local.date()})
        candidates = [self._as_candidate(s, diaries[s.id], day if s.id in away else frozenset())
                      for s in practitioners]
        return allocation.propose(request, candidates, distance=self._distance, rules=self.allocation_rules)
