"""/api/v1/holds: lifting a hold on recordings (holds are placed from a concern or on a client)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.accounts.logins import StaffContext
from server.accounts.models import Role
from server.recording.models import RecordingHold
from server.web.access import staff
from server.web.http import Out, ReasonBody, documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


class HoldOut(Out):
    id: int
    concern_id: int | None  # None: a legal hold
    booking_id: int | None
    client_id: int | None
    reason: str
    placed_at: datetime
    lifted_at: datetime | None


@routes.post("/api/v1/holds/{hold_id}/lift")
@staff(Role.SAFEGUARDING)
@documented("Lift a hold on recordings", body=ReasonBody, response=HoldOut)
async def lift_hold(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    ctx: StaffContext = request[STAFF]
    hold: RecordingHold = await request.app[SERVICES].holds.lift(
        request[DB], ctx.actor, ctx.staff.id, path_id(request, "hold_id"), body.reason)
    await request[DB].commit()
    return ok(HoldOut.model_validate(hold))
