"""/api/v1/studios: studios for studio visits, added by the office and approved before use (policies/000_*)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from server.accounts.models import Role
from server.web.access import staff
from server.web.http import Body, Out, ReasonBody, documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


class StudioBody(Body):
    name: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=3, max_length=500)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)


class StudioOut(Out):
    id: int
    name: str
    address: str
    approved: bool


@routes.get("/api/v1/studios")
@staff()
@documented("Studios, approved or not", response=StudioOut, many=True)
async def list_studios(request: web.Request) -> web.Response:
    return ok([StudioOut.model_validate(s) for s in await request.app[SERVICES].visits.studios(request[DB])])


@routes.post("/api/v1/studios")
@staff(Role.ADMIN)
@documented("Add a studio (not approved until the safeguarding lead or a manager approves it)", body=StudioBody,
            response=StudioOut)
async def add_studio(request: web.Request) -> web.Response:
    body = await read_body(request, StudioBody)
    studio = await request.app[SERVICES].visits.add_studio(request[DB], request[STAFF].actor, **body.model_dump())
    await request[DB].commit()
    return ok(StudioOut.model_validate(studio), status=201)


@routes.post("/api/v1/studios/{studio_id}/approve")
@staff(Role.MANAGER, Role.SAFEGUARDING)
@documented("Approve a studio for studio visits", body=ReasonBody, response=StudioOut)
async def approve_studio(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    ctx = request[STAFF]
    studio = await request.app[SERVICES].visits.approve_studio(request[DB], ctx.actor, ctx.staff.id,
                                                               path_id(request, "studio_id"), body.reason)
    await request[DB].commit()
    return ok(StudioOut.model_validate(studio))
