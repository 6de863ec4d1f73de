"""/api/v1/concerns: safeguarding concerns with their 24-hour discussion clock, and the holds a concern
places on recordings."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web
from pydantic import Field

from server.accounts.logins import StaffContext
from server.accounts.models import Role
from server.safeguarding.models import Concern, ConcernCategory
from server.safeguarding.services import NewConcern
from server.subjects import Subject
from server.web.access import staff
from server.web.api.holds import HoldOut
from server.web.http import Body, Out, documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


class ConcernBody(Body):
    category: ConcernCategory
    details: str = Field(min_length=10, max_length=20000)
    booking_id: int | None = Field(default=None, gt=0)
    client_id: int | None = Field(default=None, gt=0)


class NoteBody(Body):
    note: str = Field(min_length=3, max_length=20000)


class HoldBody(Body):
    reason: str = Field(min_length=3, max_length=2000)
    whole_client: bool = False


class ConcernOut(Out):
    id: int
    category: str
    details: str
    raised_by: str
    raised_by_name: str  # "Gail Guardian (parent or carer)"; the ref itself when it names nobody we know
    booking_id: int | None
    client_id: int | None
    raised_at: datetime
    discuss_by: datetime
    # Until discuss_by by the server's clock, negative once overdue: pages count down from this, never from
    # the device's clock, which may be wrong.
    discuss_in_ms: int
    discussed_at: datetime | None
    discussed_with_id: int | None
    discussed_with_name: str | None
    discussion_note: str | None
    escalated_at: datetime | None


async def _concerns_out(request: web.Request, concerns: list[Concern]) -> list[ConcernOut]:
    """The concerns as the API shows them, with names and the time left by the server's clock."""
    services = request.app[SERVICES]
    refs = {c.raised_by for c in concerns} | {Subject.staff(c.discussed_with_id) for c in concerns
                                               if c.discussed_with_id is not None}
    names = await services.safeguarding.actor_names(request[DB], refs)
    now = services.clock.now()
    return [ConcernOut(
        id=c.id, category=c.category, details=c.details, raised_by=c.raised_by,
        raised_by_name=names.get(c.raised_by, c.raised_by), booking_id=c.booking_id, client_id=c.client_id,
        raised_at=c.raised_at, discuss_by=c.discuss_by, discuss_in_ms=(c.discuss_by - now) // timedelta(milliseconds=1),
        discussed_at=c.discussed_at, discussed_with_id=c.discussed_with_id,
        discussed_with_name=names.get(Subject.staff(c.discussed_with_id)) if c.discussed_with_id is not None else None,
        discussion_note=c.discussion_note, escalated_at=c.escalated_at) for c in concerns]


@routes.post("/api/v1/concerns")
@staff()
@documented("Raise a safeguarding concern; a manager must discuss it within 24 hours", body=ConcernBody,
            response=ConcernOut)
async def raise_concern(request: web.Request) -> web.Response:
    body = await read_body(request, ConcernBody)
    concern = await request.app[SERVICES].safeguarding.raise_concern(
        request[DB], request[STAFF].actor, NewConcern(body.category, body.details, body.booking_id, body.client_id))
    await request[DB].commit()
    return ok((await _concerns_out(request, [concern]))[0], status=201)


@routes.get("/api/v1/concerns")
@staff()
@documented("Concerns I may read: all for the safeguarding lead and managers, my own for others",
            response=ConcernOut, many=True)
async def list_concerns(request: web.Request) -> web.Response:
    rows = await request.app[SERVICES].safeguarding.visible(request[DB], request[STAFF].staff)
    return ok(await _concerns_out(request, rows))


@routes.get("/api/v1/concerns/{concern_id}")
@staff()
@documented("One concern (confidential: the safeguarding lead, managers and its raiser)", response=ConcernOut)
async def get_concern(request: web.Request) -> web.Response:
    concern = await request.app[SERVICES].safeguarding.get(request[DB], request[STAFF].staff,
                                                          path_id(request, "concern_id"))
    return ok((await _concerns_out(request, [concern]))[0])


@routes.post("/api/v1/concerns/{concern_id}/discussed")
@staff(Role.MANAGER, Role.SAFEGUARDING)
@documented("Record the discussion of a concern with a manager; stops its 24-hour clock", body=NoteBody,
            response=ConcernOut)
async def discussed(request: web.Request) -> web.Response:
    body = await read_body(request, NoteBody)
    ctx: StaffContext = request[STAFF]
    services = request.app[SERVICES]
    concern = await services.safeguarding.get(request[DB], ctx.staff, path_id(request, "concern_id"))
    await services.safeguarding.discussed(request[DB], ctx.actor, ctx.staff, concern, body.note)
    await request[DB].commit()
    return ok((await _concerns_out(request, [concern]))[0])


@routes.post("/api/v1/concerns/{concern_id}/holds")
@staff(Role.SAFEGUARDING)
@documented("Hold the recordings of the concern's booking (or all the client's) against deletion",
            body=HoldBody, response=HoldOut)
async def place_hold(request: web.Request) -> web.Response:
    body = await read_body(request, HoldBody)
    ctx: StaffContext = request[STAFF]
    services = request.app[SERVICES]
    concern: Concern = await services.safeguarding.get(request[DB], ctx.staff, path_id(request, "concern_id"))
    hold = await services.safeguarding.place_hold(request[DB], ctx.actor, ctx.staff, concern, body.reason,
                                                  body.whole_client)
    await request[DB].commit()
    return ok(HoldOut.model_validate(hold), status=201)
