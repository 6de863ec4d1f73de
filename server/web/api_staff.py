"""Staff records: list, add, suspend and reinstate approval."""

from __future__ import annotations

from datetime import date

from aiohttp import web
from pydantic import EmailStr, Field
from sqlalchemy import select

from server.accounts.models import DbsLevel, Role, Staff
from server.accounts.services import NewStaff
from server.bookings.models import Booking
from server.web.access import staff
from server.web.api import Body, OneLine, documented, ok, path_id, read_body
from server.web.api_auth import StaffOut
from server.web.keys import DB, HUB, SERVICES, STAFF

routes = web.RouteTableDef()


class StaffBody(Body):
    name: OneLine = Field(min_length=1, max_length=200)
    email: EmailStr
    roles: list[Role] = Field(min_length=1)
    password: str | None = Field(default=None, min_length=12, max_length=1024)
    dbs_level: DbsLevel | None = None
    dbs_checked_on: date | None = None
    safeguarding_training_on: date | None = None
    hcpc_number: str | None = Field(default=None, max_length=20)
    is_therapist: bool = False
    home_visits_opt_in: bool = False
    base_lat: float | None = Field(default=None, ge=-90, le=90)
    base_lon: float | None = Field(default=None, ge=-180, le=180)
    phone: OneLine = Field(default="", max_length=40)  # for the office when a lone worker is overdue
    vehicle: OneLine = Field(default="", max_length=200)  # make, colour and registration


class ReasonBody(Body):
    reason: str = Field(min_length=3, max_length=2000)


@routes.get("/api/v1/staff")
@staff(Role.ADMIN, Role.MANAGER, Role.SAFEGUARDING)
@documented("All staff with their checks and approval", response=StaffOut, many=True)
async def list_staff(request: web.Request) -> web.Response:
    rows = (await request[DB].execute(select(Staff).order_by(Staff.name))).scalars().all()
    return ok([StaffOut.of(s) for s in rows])


@routes.post("/api/v1/staff")
@staff(Role.ADMIN)
@documented("Add a member of staff", body=StaffBody, response=StaffOut)
async def create_staff(request: web.Request) -> web.Response:
    body = await read_body(request, StaffBody)
    services = request.app[SERVICES]
    new = NewStaff(**body.model_dump(exclude={"roles"}), roles=frozenset(body.roles))
    created = await services.staff.create(request[DB], request[STAFF].actor, new)
    await request[DB].commit()
    return ok(StaffOut.of(created), status=201)


@routes.post("/api/v1/staff/{staff_id}/suspend")
@staff(Role.SAFEGUARDING)
@documented("Suspend a practitioner's approval: their sessions end at once", body=ReasonBody, response=StaffOut)
async def suspend_staff(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    services = request.app[SERVICES]
    target = await services.staff.get(request[DB], path_id(request, "staff_id"))
    await services.staff.suspend(request[DB], request[STAFF].actor, target, body.reason)
    await request[DB].commit()
    hub = request.app.get(HUB)
    if hub is not None:  # a suspended practitioner's live sessions end at once; observing stops too
        for live in list(hub.sessions.values()):
            booking = await request[DB].get(Booking, live.booking_id)
            if booking is not None and booking.practitioner_id == target.id:
                await hub.end(live.booking_id, "This session cannot go ahead at the moment. We will be in touch.")
        await hub.remove_subject(None, f"staff:{target.id}", "Your approval has been suspended.")
    return ok(StaffOut.of(target))


@routes.post("/api/v1/staff/{staff_id}/reinstate")
@staff(Role.SAFEGUARDING)
@documented("Lift a suspension of approval", body=ReasonBody, response=StaffOut)
async def reinstate_staff(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    services = request.app[SERVICES]
    target = await services.staff.get(request[DB], path_id(request, "staff_id"))
    await services.staff.reinstate(request[DB], request[STAFF].actor, target, body.reason)
    await request[DB].commit()
    return ok(StaffOut.of(target))
