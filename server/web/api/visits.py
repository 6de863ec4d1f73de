"""/api/v1/visits: home, studio and setting visits: proposals, booking, authorisation, evening agreement,
the workspace checklist, lone working (itinerary, check-in, check-out, no-show, safety cancel), overdue
alerts and the after-visit record."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from aiohttp import web

from server.accounts.logins import StaffContext
from server.accounts.models import OFFICE, Role
from server.bookings.models import Booking
from server.errors import InvalidInput, NotFound
from server.visits import rules
from server.visits.lonework import ACKNOWLEDGERS
from server.visits.models import Visit
from server.visits.services import NewVisit
from server.web.access import staff
from server.web.http import ReasonBody, documented, ok, path_id, query_date, read_body
from server.web.keys import DB, SERVICES, STAFF
from server.web.schemas.visits import (
    AfterVisitBody,
    AfterVisitOut,
    AlertOut,
    AttendeeOut,
    ChecklistBody,
    CheckOut,
    ExclusionOut,
    ItineraryBody,
    OverdueOut,
    ProposalOut,
    ProposalsOut,
    PurposeBody,
    TimetableEntry,
    VisitBody,
    VisitOut,
)

routes = web.RouteTableDef()


async def _out(request: web.Request, booking: Booking, visit: Visit) -> VisitOut:
    services = request.app[SERVICES]
    alerts = await services.visits.alerts(request[DB], visit.id)
    return VisitOut(
        booking_id=booking.id, kind=booking.kind, status=booking.status, practitioner_id=booking.practitioner_id,
        client_id=booking.client_id, starts_at=booking.starts_at, ends_at=booking.ends_at,
        location_kind=visit.location_kind, address=visit.address, studio_id=visit.studio_id,
        responsible_adult=visit.responsible_adult, home_reason=visit.home_reason,
        conditions_confirmed_by=visit.conditions_confirmed_by, evening=visit.evening,
        evening_agreed_by_id=booking.evening_agreed_by_id, purpose=visit.purpose,
        authorised_by_id=visit.authorised_by_id, expected_arrival=visit.expected_arrival,
        expected_return=visit.expected_return, checked_in_at=visit.checked_in_at,
        checked_out_at=visit.checked_out_at, outcome=visit.outcome, outcome_reason=visit.outcome_reason,
        blocked_reason=await services.visits.blocked_reason(request[DB], booking, visit),
        alerts=[AlertOut.model_validate(a) for a in alerts])


async def _visible(request: web.Request) -> tuple[Booking, Visit]:
    booking, visit = await request.app[SERVICES].visits.get(request[DB], path_id(request, "booking_id"))
    ctx: StaffContext = request[STAFF]
    if not ctx.staff.role_set & OFFICE and booking.practitioner_id != ctx.staff.id:
        raise NotFound(f"There is no visit with booking id {booking.id}.")
    return booking, visit


@routes.get("/api/v1/visits/proposals")
@staff(Role.ADMIN)
@documented("Practitioners for a home visit, nearest first, and why the others cannot take it",
            response=ProposalsOut, query=(("client_id", "the client visited"), ("starts_at", "ISO start with offset"),
                                          ("duration", "minutes, at least 30")))
async def proposals(request: web.Request) -> web.Response:
    try:
        client_id = int(request.query["client_id"])
        starts_at = datetime.fromisoformat(request.query["starts_at"])
        duration = int(request.query.get("duration", "30"))
    except (KeyError, ValueError):
        raise InvalidInput("Give client_id, starts_at (ISO date-time with offset) and duration (minutes).") from None
    if starts_at.tzinfo is None:
        raise InvalidInput("Give starts_at with its time zone offset.", field="starts_at")
    result = await request.app[SERVICES].visits.proposals(request[DB], client_id, starts_at, duration)
    return ok(ProposalsOut(
        proposals=[ProposalOut(staff_id=p.staff_id, name=p.name, distance_km=p.distance_km,
                               travel_minutes=p.travel_minutes, coming_from=p.coming_from) for p in result.proposals],
        excluded=[ExclusionOut(staff_id=e.staff_id, name=e.name, reasons=list(e.reasons)) for e in result.excluded]))


@routes.get("/api/v1/visits/mine")
@staff(Role.PRACTITIONER)
@documented("My visits on a day (default today): the lone-working itinerary", response=VisitOut, many=True,
            query=(("day", "a date like 2026-11-23"),))
async def my_visits(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    zone = services.settings.zone
    day: date = query_date(request, "day", services.clock.now().astimezone(zone).date())
    rows = await services.visits.on_day(request[DB], request[STAFF].staff.id, day)
    return ok([await _out(request, b, v) for b, v in rows])


@routes.get("/api/v1/visits/timetable")
@staff()
@documented("A practitioner's or a client's timetable of every provision type, with attendance: visits' "
            "check-in and outcome, live sessions' who joined and when",
            response=TimetableEntry, many=True,
            query=(("practitioner_id", "whose timetable (practitioners: only their own)"),
                   ("client_id", "or a client's (office staff)"), ("from", "first day, default today"),
                   ("days", "how many days, default 7, at most 62")))
async def timetable(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    ctx: StaffContext = request[STAFF]
    zone = services.settings.zone
    first = query_date(request, "from", services.clock.now().astimezone(zone).date())
    try:
        days = int(request.query.get("days", "7"))
        person = {k: int(request.query[k]) for k in ("practitioner_id", "client_id") if k in request.query}
    except ValueError:
        raise InvalidInput("days, practitioner_id and client_id are whole numbers.") from None
    if len(person) != 1 or not 1 <= days <= 62:
        raise InvalidInput("Give either practitioner_id or client_id, and days from 1 to 62.")
    office = bool(ctx.staff.role_set & OFFICE)
    if not office and person != {"practitioner_id": ctx.staff.id}:
        raise NotFound("You can see your own timetable only.")
    start = datetime.combine(first, time(0), zone)
    rows = await services.visits.timetable(request[DB], start=start, end=start + timedelta(days=days),
                                           practitioner_id=person.get("practitioner_id"),
                                           client_id=person.get("client_id"))
    return ok(await timetable_entries(request, rows))


async def timetable_entries(request: web.Request, rows: list[tuple[Booking, Visit | None]]) -> list[TimetableEntry]:
    """Timetable entries for these bookings, with their attendance and blended plan. Blended plans
    (server/web/api/plans.py) list their bookings through this too, so that a plan shows the same
    attendance as the timetable."""
    plans = await request.app[SERVICES].plans.plans_of(request[DB], [b.id for b, _ in rows])
    attendance = request.app[SERVICES].attendance  # live sessions: who joined (server/bookings/attendance.py)
    joined = await attendance.of(request[DB], [b.id for b, v in rows if v is None])
    return [TimetableEntry(
        booking_id=b.id, kind=b.kind, status=b.status, practitioner_id=b.practitioner_id, client_id=b.client_id,
        starts_at=b.starts_at, ends_at=b.ends_at, location_kind=v.location_kind if v else None,
        attendance=(v.outcome or ("checked in" if v.checked_in_at else None)) if v
        else attendance.summary(b, joined.get(b.id, [])),
        attendees=None if v else [AttendeeOut.model_validate(a) for a in joined.get(b.id, [])],
        plan_id=plans[b.id][0] if b.id in plans else None,
        plan_title=plans[b.id][1] if b.id in plans else None) for b, v in rows]


@routes.get("/api/v1/visits/overdue")
@staff(*ACKNOWLEDGERS)
@documented("Visits with an overdue check-out alert still open (not back, or not acknowledged), with the "
            "practitioner's phone and vehicle", response=OverdueOut, many=True)
async def overdue_visits(request: web.Request) -> web.Response:
    rows = await request.app[SERVICES].overdue.open_alerts(request[DB])
    return ok([OverdueOut(**(await _out(request, b, v)).model_dump(), practitioner=s.name, phone=s.phone,
                          vehicle=s.vehicle) for b, v, s in rows])


@routes.post("/api/v1/visits")
@staff(Role.ADMIN)
@documented("Request a home visit, studio visit or setting session; every policy rule is checked",
            body=VisitBody, response=VisitOut)
async def book_visit(request: web.Request) -> web.Response:
    body = await read_body(request, VisitBody)
    c = body.conditions
    new = NewVisit(
        kind=body.kind, practitioner_id=body.practitioner_id, client_id=body.client_id, starts_at=body.starts_at,
        duration_minutes=body.duration_minutes, guardian_ids=tuple(body.guardian_ids),
        invite_client=body.invite_client, location=body.location, address=body.address, clients=body.clients,
        preferred_location_available=body.preferred_location_available, home_reason=body.home_reason,
        conditions=None if c is None else rules.Conditions(c.parking, c.accessible, c.window_or_open_door,
                                                           c.carer_on_site, c.evidence),
        conditions_confirmed_by=None if c is None else c.confirmed_by, studio_id=body.studio_id,
        responsible_adult=body.responsible_adult)
    booking, visit = await request.app[SERVICES].visits.book(request[DB], request[STAFF].actor, new)
    await request[DB].commit()
    return ok(await _out(request, booking, visit), status=201)


@routes.get("/api/v1/visits/{booking_id}")
@staff()
@documented("One visit, with what blocks it and its alerts", response=VisitOut)
async def get_visit(request: web.Request) -> web.Response:
    booking, visit = await _visible(request)
    return ok(await _out(request, booking, visit))


@routes.post("/api/v1/visits/{booking_id}/authorise")
@staff(Role.MANAGER, Role.SAFEGUARDING)
@documented("Authorise a requested visit with its purpose; it becomes confirmed", body=PurposeBody,
            response=VisitOut)
async def authorise(request: web.Request) -> web.Response:
    body = await read_body(request, PurposeBody)
    ctx: StaffContext = request[STAFF]
    booking, visit = await request.app[SERVICES].visits.authorise(
        request[DB], ctx.actor, ctx.staff.id, path_id(request, "booking_id"), body.purpose)
    await request[DB].commit()
    return ok(await _out(request, booking, visit))


@routes.post("/api/v1/visits/{booking_id}/evening-agreement")
@staff(Role.MANAGER)
@documented("A manager agrees to a visit running into the evening", body=ReasonBody, response=VisitOut)
async def evening_agreement(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    ctx: StaffContext = request[STAFF]
    booking_id = path_id(request, "booking_id")
    await request.app[SERVICES].visits.agree_evening(request[DB], ctx.actor, ctx.staff, booking_id, body.reason)
    await request[DB].commit()
    booking, visit = await request.app[SERVICES].visits.get(request[DB], booking_id)
    return ok(await _out(request, booking, visit))


@routes.post("/api/v1/visits/{booking_id}/checklist")
@staff(Role.PRACTITIONER)
@documented("The practitioner records the workspace checklist completed with the account holder",
            body=ChecklistBody, response=CheckOut)
async def record_checklist(request: web.Request) -> web.Response:
    body = await read_body(request, ChecklistBody)
    booking, _ = await _visible(request)
    ctx: StaffContext = request[STAFF]
    check = await request.app[SERVICES].visits.record_checklist(request[DB], ctx.actor, ctx.staff.id, booking.id,
                                                                body.answers, body.note)
    await request[DB].commit()
    return ok(CheckOut.model_validate(check), status=201)


@routes.post("/api/v1/visits/checklists/{check_id}/confirm")
@staff(Role.MANAGER)
@documented("A manager confirms a workspace checklist; further visits may then go ahead", response=CheckOut)
async def confirm_checklist(request: web.Request) -> web.Response:
    ctx: StaffContext = request[STAFF]
    check = await request.app[SERVICES].visits.confirm_checklist(request[DB], ctx.actor, ctx.staff.id,
                                                                 path_id(request, "check_id"))
    await request[DB].commit()
    return ok(CheckOut.model_validate(check))


@routes.post("/api/v1/visits/{booking_id}/itinerary")
@staff(Role.PRACTITIONER)
@documented("Before leaving: the visit address, expected arrival and return", body=ItineraryBody,
            response=VisitOut)
async def itinerary(request: web.Request) -> web.Response:
    body = await read_body(request, ItineraryBody)
    ctx: StaffContext = request[STAFF]
    services = request.app[SERVICES]
    booking_id = path_id(request, "booking_id")
    await services.lone_working.itinerary(request[DB], ctx.actor, ctx.staff.id, booking_id, body.address,
                                          body.expected_arrival, body.expected_return)
    await request[DB].commit()
    booking, visit = await services.visits.get(request[DB], booking_id)
    return ok(await _out(request, booking, visit))


@routes.post("/api/v1/visits/{booking_id}/acknowledge")
@staff(*ACKNOWLEDGERS)  # managers, safeguarding leads and the head of service: whoever the alerts reach
@documented("Acknowledge the overdue check-out alerts of a visit (stops escalation)", response=VisitOut)
async def acknowledge(request: web.Request) -> web.Response:
    ctx: StaffContext = request[STAFF]
    services = request.app[SERVICES]
    booking, visit = await services.visits.get(request[DB], path_id(request, "booking_id"))
    await services.overdue.acknowledge(request[DB], ctx.actor, ctx.staff.id, visit)
    await request[DB].commit()
    return ok(await _out(request, booking, visit))


@routes.post("/api/v1/visits/{booking_id}/record")
@staff(Role.PRACTITIONER)
@documented("After checking out: the practitioner's record of the visit and whether there are safeguarding "
            "concerns (policies/002_*); once per visit", body=AfterVisitBody, response=AfterVisitOut)
async def after_visit_record(request: web.Request) -> web.Response:
    body = await read_body(request, AfterVisitBody)
    ctx: StaffContext = request[STAFF]
    made = await request.app[SERVICES].visit_records.record(request[DB], ctx.actor, ctx.staff,
                                                            path_id(request, "booking_id"), body.notes,
                                                            body.safeguarding_concerns)
    await request[DB].commit()
    return ok(AfterVisitOut.of(made), status=201)


@routes.get("/api/v1/visits/{booking_id}/record")
@staff(Role.PRACTITIONER, Role.MANAGER, Role.SAFEGUARDING)
@documented("The after-visit record: for its practitioner, managers and the safeguarding lead only",
            response=AfterVisitOut)
async def get_after_visit_record(request: web.Request) -> web.Response:
    ctx: StaffContext = request[STAFF]
    made = await request.app[SERVICES].visit_records.get(request[DB], ctx.staff, path_id(request, "booking_id"))
    return ok(AfterVisitOut.of(made))


async def _lone_step(request: web.Request, step: str) -> web.Response:
    """One lone-working step by the visit's own practitioner, then the visit as it now is."""
    ctx: StaffContext = request[STAFF]
    services = request.app[SERVICES]
    booking_id = path_id(request, "booking_id")
    lone = services.lone_working
    if step == "check-in":
        await lone.check_in(request[DB], ctx.actor, ctx.staff.id, booking_id)
    elif step == "check-out":
        await lone.check_out(request[DB], ctx.actor, ctx.staff.id, booking_id)
    elif step == "no-show":
        await lone.no_show(request[DB], ctx.actor, ctx.staff.id, booking_id)
    else:
        reason = (await read_body(request, ReasonBody)).reason
        await lone.cancel_for_safety(request[DB], ctx.actor, ctx.staff.id, booking_id, reason)
    await request[DB].commit()
    booking, visit = await services.visits.get(request[DB], booking_id)
    return ok(await _out(request, booking, visit))


@routes.post("/api/v1/visits/{booking_id}/check-in")
@staff(Role.PRACTITIONER)
@documented("Check in on arrival (refused while the visit is blocked or unauthorised)", response=VisitOut)
async def visit_check_in(request: web.Request) -> web.Response:
    return await _lone_step(request, "check-in")


@routes.post("/api/v1/visits/{booking_id}/check-out")
@staff(Role.PRACTITIONER)
@documented("Check out on leaving", response=VisitOut)
async def visit_check_out(request: web.Request) -> web.Response:
    return await _lone_step(request, "check-out")


@routes.post("/api/v1/visits/{booking_id}/no-show")
@staff(Role.PRACTITIONER)
@documented("No answer at the door after 5 minutes: record a no-show and leave", response=VisitOut)
async def visit_no_show(request: web.Request) -> web.Response:
    return await _lone_step(request, "no-show")


@routes.post("/api/v1/visits/{booking_id}/safety-cancel")
@staff(Role.PRACTITIONER)
@documented("Cancel or leave a visit over safety, with the reason", body=ReasonBody, response=VisitOut)
async def visit_safety_cancel(request: web.Request) -> web.Response:
    return await _lone_step(request, "safety-cancel")
