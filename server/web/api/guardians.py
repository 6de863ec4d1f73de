"""/api/v1/guardians: parents and carers, and their suspension."""

from __future__ import annotations

from aiohttp import web
from pydantic import EmailStr, Field

from server.accounts.models import OFFICE, Role
from server.people.models import Guardian
from server.people.services import NewGuardian
from server.web.access import staff
from server.web.api.suspensions import StatusOut, suspend_or_reinstate
from server.web.http import Body, OneLine, Out, ReasonBody, TimeZone, documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


class GuardianBody(Body):
    name: OneLine = Field(min_length=1, max_length=200)
    email: EmailStr
    phone: str = Field(default="", max_length=40)
    time_zone: TimeZone | None = None


class GuardianOut(Out):
    id: int
    name: str
    email: str
    phone: str
    status: str
    client_ids: list[int]


def guardian_out(guardian: Guardian) -> GuardianOut:
    return GuardianOut(id=guardian.id, name=guardian.name, email=guardian.email, phone=guardian.phone,
                       status=guardian.status, client_ids=[link.client_id for link in guardian.links])


@routes.get("/api/v1/guardians")
@staff(*OFFICE)
@documented("Guardians and the clients they are linked to", response=GuardianOut, many=True)
async def list_guardians(request: web.Request) -> web.Response:
    return ok([guardian_out(g) for g in await request.app[SERVICES].people.guardians(request[DB])])


@routes.post("/api/v1/guardians")
@staff(Role.ADMIN)
@documented("Add a guardian", body=GuardianBody, response=GuardianOut)
async def create_guardian(request: web.Request) -> web.Response:
    body = await read_body(request, GuardianBody)
    services = request.app[SERVICES]
    guardian = await services.people.add_guardian(request[DB], request[STAFF].actor,
                                                  NewGuardian(**body.model_dump(exclude={"time_zone"}),
                                                              time_zone=body.time_zone or services.settings.time_zone))
    await request[DB].commit()
    await request[DB].refresh(guardian, ["links"])
    return ok(guardian_out(guardian), status=201)


@routes.post("/api/v1/guardians/{guardian_id}/suspend")
@staff(Role.SAFEGUARDING)
@documented("Suspend a guardian's approval: new bookings refused, links stop working", body=ReasonBody,
            response=StatusOut)
async def suspend_guardian(request: web.Request) -> web.Response:
    guardian = await request.app[SERVICES].people.guardian(request[DB], path_id(request, "guardian_id"))
    return await suspend_or_reinstate(request, guardian, suspend=True)


@routes.post("/api/v1/guardians/{guardian_id}/reinstate")
@staff(Role.SAFEGUARDING)
@documented("Reinstate a guardian's approval", body=ReasonBody, response=StatusOut)
async def reinstate_guardian(request: web.Request) -> web.Response:
    guardian = await request.app[SERVICES].people.guardian(request[DB], path_id(request, "guardian_id"))
    return await suspend_or_reinstate(request, guardian, suspend=False)
