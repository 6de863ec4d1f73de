"""/api/v1/bookings: remote session bookings (list by day, book, reschedule, resend a link, cancel, agree to
evening work), what waits for a manager, and the device checks of a booking. Practitioners see their own."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

from aiohttp import web
from pydantic import AwareDatetime, Field

from server.accounts.logins import StaffContext
from server.accounts.models import OFFICE, Role
from server.bookings.models import Booking, BookingKind
from server.bookings.services import NewBooking
from server.bookings.waiting import waiting_for_a_manager
from server.errors import NotFound
from server.web.access import staff
from server.web.http import Body, Out, documented, ok, path_id, query_date, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


class BookingBody(Body):
    kind: BookingKind
    practitioner_id: int = Field(gt=0)
    client_id: int = Field(gt=0)
    starts_at: AwareDatetime
    duration_minutes: int = Field(ge=5, le=240)
    guardian_ids: list[int] = Field(default_factory=list, max_length=10)
    invite_client: bool = False


class CancelBody(Body):
    reason: str = Field(min_length=3, max_length=500)


class AgreementBody(Body):
    reason: str = Field(min_length=3, max_length=2000)


class InviteeOut(Out):
    role: str
    subject: str


class BookingOut(Out):
    id: int
    kind: str
    practitioner_id: int
    client_id: int
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    status: str
    invitees: list[InviteeOut]
    evening_agreed_by_id: int | None
    blocked_reason: str | None  # why it cannot go ahead yet (a manager's agreement to evening work)

    @classmethod
    async def of(cls, request: web.Request, b: Booking) -> BookingOut:
        blocked = await request.app[SERVICES].bookings.blocked_reason(request[DB], b)
        return cls(id=b.id, kind=b.kind, practitioner_id=b.practitioner_id, client_id=b.client_id,
                   starts_at=b.starts_at, ends_at=b.ends_at, duration_minutes=b.duration_minutes, status=b.status,
                   invitees=[InviteeOut(role=i.role, subject=i.subject) for i in b.invitees],
                   evening_agreed_by_id=b.evening_agreed_by_id, blocked_reason=blocked)


def _may_see(ctx: StaffContext, booking: Booking) -> bool:
    return bool(ctx.staff.role_set & OFFICE) or booking.practitioner_id == ctx.staff.id


@routes.get("/api/v1/bookings")
@staff()
@documented("Bookings starting on the given day (default today) in the organisation's time zone",
            response=BookingOut, many=True, query=(("day", "a date like 2026-11-23"),))
async def list_bookings(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    zone = services.settings.zone
    day = query_date(request, "day", services.clock.now().astimezone(zone).date())
    start = datetime.combine(day, time(0), zone)
    ctx: StaffContext = request[STAFF]
    own = None if ctx.staff.role_set & OFFICE else ctx.staff.id
    bookings = await services.bookings.between(request[DB], start, start + timedelta(days=1), own)
    return ok([await BookingOut.of(request, b) for b in bookings])


@routes.post("/api/v1/bookings")
@staff(Role.ADMIN)
@documented("Book a live video or audio session. One running into the evening of a day its practitioner was "
            "unavailable is kept requested, uninvited, until a manager agrees", body=BookingBody, response=BookingOut)
async def create_booking(request: web.Request) -> web.Response:
    body = await read_body(request, BookingBody)
    services = request.app[SERVICES]
    new = NewBooking(kind=body.kind, practitioner_id=body.practitioner_id, client_id=body.client_id,
                     starts_at=body.starts_at, duration_minutes=body.duration_minutes,
                     guardian_ids=tuple(body.guardian_ids), invite_client=body.invite_client)
    booking = await services.bookings.create(request[DB], request[STAFF].actor, new)
    await request[DB].commit()
    return ok(await BookingOut.of(request, booking), status=201)


class WaitingOut(Out):
    booking_id: int
    kind: str
    starts_at: datetime
    client: str
    practitioner: str
    needs: str  # "evening agreement" (a manager) or "authorisation" (a manager or the safeguarding lead)
    reason: str


@routes.get("/api/v1/bookings/waiting")
@staff(Role.MANAGER, Role.SAFEGUARDING)
@documented("Bookings waiting for a manager: evening work to agree, visits to authorise (soonest first)",
            response=WaitingOut, many=True)
async def waiting_bookings(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    waiting = await waiting_for_a_manager(request[DB], services.bookings.evening, services.clock.now())
    return ok([WaitingOut(booking_id=w.booking.id, kind=w.booking.kind, starts_at=w.booking.starts_at,
                          client=w.client, practitioner=w.practitioner, needs=w.needs, reason=w.reason)
               for w in waiting])


@routes.get("/api/v1/bookings/{booking_id}")
@staff()
@documented("One booking", response=BookingOut)
async def get_booking(request: web.Request) -> web.Response:
    booking = await request.app[SERVICES].bookings.get(request[DB], path_id(request, "booking_id"))
    if not _may_see(request[STAFF], booking):
        raise NotFound(f"There is no booking with id {booking.id}.")
    return ok(await BookingOut.of(request, booking))


@routes.post("/api/v1/bookings/{booking_id}/cancel")
@staff(Role.ADMIN)
@documented("Cancel a booking; its links stop working", body=CancelBody, response=BookingOut)
async def cancel_booking(request: web.Request) -> web.Response:
    body = await read_body(request, CancelBody)
    services = request.app[SERVICES]
    booking = await services.bookings.get(request[DB], path_id(request, "booking_id"))
    actor = request[STAFF].actor
    await services.bookings.cancel(request[DB], actor, booking, body.reason)
    await services.links.revoke_for_booking(request[DB], actor, booking.id, "booking cancelled")
    await request[DB].commit()
    return ok(await BookingOut.of(request, booking))


class RescheduleBody(Body):
    starts_at: AwareDatetime
    duration_minutes: int | None = Field(default=None, ge=5, le=240)


class ResendBody(Body):
    subject: str = Field(pattern=r"^(guardian|client|staff):[0-9]{1,9}$", max_length=20)


@routes.post("/api/v1/bookings/{booking_id}/reschedule")
@staff(Role.ADMIN)
@documented("Move a booking; old links stop and everyone gets a change notice", body=RescheduleBody,
            response=BookingOut)
async def reschedule_booking(request: web.Request) -> web.Response:
    body = await read_body(request, RescheduleBody)
    services = request.app[SERVICES]
    booking = await services.bookings.get(request[DB], path_id(request, "booking_id"))
    await services.bookings.reschedule(request[DB], request[STAFF].actor, booking, body.starts_at,
                                       body.duration_minutes)
    await request[DB].commit()
    return ok(await BookingOut.of(request, booking))


@routes.post("/api/v1/bookings/{booking_id}/resend")
@staff(Role.ADMIN)
@documented("Send one invitee a new join link; their old one stops working", body=ResendBody,
            response=BookingOut)
async def resend_link(request: web.Request) -> web.Response:
    body = await read_body(request, ResendBody)
    services = request.app[SERVICES]
    booking = await services.bookings.get(request[DB], path_id(request, "booking_id"))
    await services.bookings.resend(request[DB], request[STAFF].actor, booking, body.subject)
    await request[DB].commit()
    return ok(await BookingOut.of(request, booking))


@routes.post("/api/v1/bookings/{booking_id}/evening-agreement")
@staff(Role.MANAGER)
@documented("A manager agrees to evening work on a booking (policies/000_*: after a day unavailable); a live "
            "session held for it is confirmed and its invitations sent", body=AgreementBody, response=BookingOut)
async def evening_agreement(request: web.Request) -> web.Response:
    body = await read_body(request, AgreementBody)
    services = request.app[SERVICES]
    booking = await services.bookings.get(request[DB], path_id(request, "booking_id"))
    ctx: StaffContext = request[STAFF]
    await services.bookings.agree_evening(request[DB], ctx.actor, ctx.staff, booking, body.reason)
    await request[DB].commit()
    return ok(await BookingOut.of(request, booking))


class CheckOut(Out):
    subject: str
    checked_at: datetime
    days_ago: int  # by the server's clock: the dashboard must not trust the viewer's
    verdict: str
    reasons: list[str]
    up_kbps: float
    down_kbps: float
    rtt_ms: float
    music_advisable: bool
    device: str
    shared_with: str
    safeguarding_measures: str


@routes.get("/api/v1/bookings/{booking_id}/checks")
@staff()  # every role; the handler shows the booking only to its practitioner and the office roles
@documented("Device checks for a booking, newest first (the booking's practitioner and office roles)",
            response=CheckOut, many=True)
async def booking_checks(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    booking = await services.bookings.get(request[DB], path_id(request, "booking_id"))
    ctx = request[STAFF]
    if not ctx.staff.role_set & OFFICE and booking.practitioner_id != ctx.staff.id:
        raise NotFound(f"There is no booking with id {booking.id}.")
    runs = await services.checks.runs(request[DB], booking.id)
    out = []
    for run in runs:
        m = json.loads(run.measurements)
        days = (services.clock.now() - run.created_at).days
        out.append(CheckOut(subject=run.subject, checked_at=run.created_at, days_ago=days, verdict=run.verdict,
                            reasons=json.loads(run.reasons), up_kbps=m["up_kbps"], down_kbps=m["down_kbps"],
                            rtt_ms=m["rtt_ms"], music_advisable=run.music_advisable, device=run.device,
                            shared_with=run.shared_with, safeguarding_measures=run.safeguarding_measures))
    return ok(out)
