"""/api/v1/staff: staff records, their approval (suspend, reinstate), the recording agreement and the days
they are unavailable."""

from __future__ import annotations

from datetime import date, datetime

from aiohttp import web
from pydantic import EmailStr, Field

from server.accounts.logins import StaffContext
from server.accounts.models import DbsLevel, Role, Staff
from server.accounts.services import NewStaff
from server.web.access import staff
from server.web.http import Body, OneLine, Out, ReasonBody, documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


class StaffOut(Out):
    id: int
    name: str
    email: EmailStr
    roles: list[Role]
    status: str
    dbs_level: str | None
    dbs_checked_on: date | None
    safeguarding_training_on: date | None
    safeguarding_training_due_on: date | None
    hcpc_number: str | None
    is_therapist: bool
    home_visits_opt_in: bool
    base_lat: float | None
    base_lon: float | None
    phone: str
    vehicle: str
    totp_enrolled: bool
    suspended_at: datetime | None
    suspended_reason: str | None

    @classmethod
    def of(cls, s: Staff) -> StaffOut:
        return cls(
            id=s.id, name=s.name, email=s.email, roles=sorted(s.role_set), status=s.status, dbs_level=s.dbs_level,
            dbs_checked_on=s.dbs_checked_on, safeguarding_training_on=s.safeguarding_training_on,
            safeguarding_training_due_on=s.safeguarding_training_due_on, hcpc_number=s.hcpc_number,
            is_therapist=s.is_therapist, home_visits_opt_in=s.home_visits_opt_in,
            base_lat=s.base_lat, base_lon=s.base_lon, phone=s.phone, vehicle=s.vehicle,
            totp_enrolled=s.totp_enrolled_at is not None,
            suspended_at=s.suspended_at, suspended_reason=s.suspended_reason,
        )


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


@routes.get("/api/v1/staff")
@staff(Role.ADMIN, Role.MANAGER, Role.SAFEGUARDING)
@documented("All staff with their checks and approval", response=StaffOut, many=True)
async def list_staff(request: web.Request) -> web.Response:
    return ok([StaffOut.of(s) for s in await request.app[SERVICES].staff.everyone(request[DB])])


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
    await request[DB].commit()  # their live sessions end now (server/web/live/guard.py)
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


class AgreementBody(Body):
    signed_on: date | None


class AgreementOut(Out):
    staff_id: int
    recording_agreement_on: date | None


@routes.post("/api/v1/staff/{staff_id}/recording-agreement")
@staff(Role.ADMIN, Role.MANAGER)
@documented("Record the date a staff member signed the recording agreement (null clears it)",
            body=AgreementBody, response=AgreementOut)
async def recording_agreement(request: web.Request) -> web.Response:
    body = await read_body(request, AgreementBody)
    services = request.app[SERVICES]
    member = await services.consent.set_staff_agreement(request[DB], request[STAFF].actor,
                                                        path_id(request, "staff_id"), body.signed_on)
    await request[DB].commit()
    return ok(AgreementOut(staff_id=member.id, recording_agreement_on=member.recording_agreement_on))


class UnavailableBody(Body):
    day: date
    reason: str = Field(min_length=3, max_length=500)


class UnavailableOut(Out):
    staff_id: int
    day: date
    reason: str
    blocked_booking_ids: list[int]  # their bookings that evening now waiting for a manager's agreement


@routes.post("/api/v1/staff/{staff_id}/unavailable")
@staff(Role.ADMIN, Role.MANAGER)
@documented("Mark a practitioner unavailable during a day: evening sessions and visits that day need a manager",
            body=UnavailableBody, response=UnavailableOut)
async def mark_unavailable(request: web.Request) -> web.Response:
    body = await read_body(request, UnavailableBody)
    ctx: StaffContext = request[STAFF]
    row, blocked = await request.app[SERVICES].visits.mark_unavailable(
        request[DB], ctx.actor, ctx.staff.id, path_id(request, "staff_id"), body.day, body.reason)
    await request[DB].commit()
    return ok(UnavailableOut(staff_id=row.staff_id, day=row.day, reason=row.reason,
                             blocked_booking_ids=[b.id for b in blocked]), status=201)
