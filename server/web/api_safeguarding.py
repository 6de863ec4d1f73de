"""Safeguarding API: concerns (staff, and parents through their link), holds on recordings, suspension of
clients and families, approved studios (policies/000_*)."""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web
from pydantic import Field
from sqlalchemy import select

from server.accounts.logins import StaffContext
from server.accounts.models import Role
from server.errors import NotFound
from server.links.models import LinkPurpose
from server.links.services import LinkHolder
from server.people.models import Client, Guardian
from server.recording.models import RecordingHold
from server.safeguarding.models import Concern, ConcernCategory
from server.safeguarding.services import NewConcern
from server.visits.models import Studio
from server.web.access import link_holder, staff
from server.web.api import Body, Out, documented, ok, path_id, read_body
from server.web.keys import DB, HOLDER, HUB, SERVICES, STAFF
from server.web.pages_render import render

routes = web.RouteTableDef()


class ConcernBody(Body):
    category: ConcernCategory
    details: str = Field(min_length=10, max_length=20000)
    booking_id: int | None = Field(default=None, gt=0)
    client_id: int | None = Field(default=None, gt=0)


class LinkConcernBody(Body):
    category: ConcernCategory
    details: str = Field(min_length=10, max_length=20000)


class NoteBody(Body):
    note: str = Field(min_length=3, max_length=20000)


class ReasonBody(Body):
    reason: str = Field(min_length=3, max_length=2000)


class HoldBody(Body):
    reason: str = Field(min_length=3, max_length=2000)
    whole_client: bool = False


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
    refs = {c.raised_by for c in concerns} | {f"staff:{c.discussed_with_id}" for c in concerns
                                               if c.discussed_with_id is not None}
    names = await services.safeguarding.actor_names(request[DB], refs)
    now = services.clock.now()
    return [ConcernOut(
        id=c.id, category=c.category, details=c.details, raised_by=c.raised_by,
        raised_by_name=names.get(c.raised_by, c.raised_by), booking_id=c.booking_id, client_id=c.client_id,
        raised_at=c.raised_at, discuss_by=c.discuss_by, discuss_in_ms=(c.discuss_by - now) // timedelta(milliseconds=1),
        discussed_at=c.discussed_at, discussed_with_id=c.discussed_with_id,
        discussed_with_name=names.get(f"staff:{c.discussed_with_id}") if c.discussed_with_id is not None else None,
        discussion_note=c.discussion_note, escalated_at=c.escalated_at) for c in concerns]


class ReceiptOut(Out):
    """What a parent sees after raising a concern: not the record itself."""

    id: int
    raised_at: datetime
    message: str


class HoldOut(Out):
    id: int
    concern_id: int | None  # None: a legal hold
    booking_id: int | None
    client_id: int | None
    reason: str
    placed_at: datetime
    lifted_at: datetime | None


class StatusOut(Out):
    subject: str
    status: str
    live_bookings: list[int]


@routes.get("/concerns")
@staff()
async def concerns_page(request: web.Request) -> web.Response:
    """Staff page: the concerns the viewer may read (the API decides which), each with its 24-hour clock."""
    return render("concerns.html", organisation=request.app[SERVICES].settings.organisation)


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


class LegalHoldBody(Body):
    reason: str = Field(min_length=10, max_length=2000)  # the claim, inquiry or order, and its reference
    booking_id: int | None = Field(default=None, gt=0)  # one session's recordings; omitted: all the client's


@routes.post("/api/v1/clients/{client_id}/legal-holds")
@staff(Role.SAFEGUARDING)
@documented("Hold a client's recordings (or one session's) against deletion for a claim, inquiry or order",
            body=LegalHoldBody, response=HoldOut)
async def place_legal_hold(request: web.Request) -> web.Response:
    body = await read_body(request, LegalHoldBody)
    ctx: StaffContext = request[STAFF]
    hold = await request.app[SERVICES].safeguarding.place_legal_hold(
        request[DB], ctx.actor, ctx.staff, path_id(request, "client_id"), body.booking_id, body.reason)
    await request[DB].commit()
    return ok(HoldOut.model_validate(hold), status=201)


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


@routes.get("/s/{booking_id}/concern")
@link_holder(LinkPurpose.JOIN, LinkPurpose.CHECK, LinkPurpose.CONSENT)
async def concern_page(request: web.Request) -> web.Response:
    """The page a parent or adult client uses to raise a concern (no sign-in: their session link)."""
    return render("concern.html", organisation=request.app[SERVICES].settings.organisation)


@routes.post("/s/{booking_id}/api/concern")
@link_holder(LinkPurpose.JOIN, LinkPurpose.CHECK, LinkPurpose.CONSENT)
@documented("A parent or client raises a concern through their session link", body=LinkConcernBody,
            response=ReceiptOut)
async def link_concern(request: web.Request) -> web.Response:
    body = await read_body(request, LinkConcernBody)
    services = request.app[SERVICES]
    holder: LinkHolder | None = request.get(HOLDER)
    if holder is not None:
        actor, booking_id = holder.actor, holder.booking.id
    else:
        actor, booking_id = request[STAFF].actor, path_id(request, "booking_id")
    concern = await services.safeguarding.raise_concern(request[DB], actor,
                                                        NewConcern(body.category, body.details, booking_id))
    await request[DB].commit()
    return ok(ReceiptOut(id=concern.id, raised_at=concern.raised_at,
                         message="Thank you. Your concern has been passed to our safeguarding lead, who will "
                                 "contact you. If anyone is in immediate danger, call 999. Children and young people "
                                 "can also talk to Childline (0800 1111) or report online abuse to CEOP "
                                 "(www.ceop.police.uk)."), status=201)


@routes.get("/api/v1/studios")
@staff()
@documented("Studios, approved or not", response=StudioOut, many=True)
async def list_studios(request: web.Request) -> web.Response:
    rows = (await request[DB].execute(select(Studio).order_by(Studio.name))).scalars()
    return ok([StudioOut.model_validate(s) for s in rows])


@routes.post("/api/v1/studios")
@staff(Role.ADMIN)
@documented("Add a studio (not approved until the safeguarding lead or a manager approves it)", body=StudioBody,
            response=StudioOut)
async def add_studio(request: web.Request) -> web.Response:
    body = await read_body(request, StudioBody)
    studio = Studio(**body.model_dump(), approved=False, created_at=request.app[SERVICES].clock.now())
    request[DB].add(studio)
    await request[DB].flush()
    await request.app[SERVICES].audit.record(request[DB], request[STAFF].actor, "studio.added",
                                             f"studio:{studio.id}", {"name": studio.name})
    await request[DB].commit()
    return ok(StudioOut.model_validate(studio), status=201)


@routes.post("/api/v1/studios/{studio_id}/approve")
@staff(Role.MANAGER, Role.SAFEGUARDING)
@documented("Approve a studio for studio visits", body=ReasonBody, response=StudioOut)
async def approve_studio(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    studio = await request[DB].get(Studio, path_id(request, "studio_id"))
    if studio is None:
        raise NotFound("There is no such studio.")
    services = request.app[SERVICES]
    studio.approved, studio.approved_by_id, studio.approved_at = True, request[STAFF].staff.id, services.clock.now()
    await services.audit.record(request[DB], request[STAFF].actor, "studio.approved", f"studio:{studio.id}",
                                {"reason": body.reason})
    await request[DB].commit()
    return ok(StudioOut.model_validate(studio))


def _suspension(kind: str, model: type[Client] | type[Guardian], suspend: bool) -> None:
    """Register POST /api/v1/{clients|guardians}/{id}/{suspend|reinstate} for the safeguarding lead."""
    param = f"{kind}_id"
    verb = "suspend" if suspend else "reinstate"

    @routes.post(f"/api/v1/{kind}s/{{{param}}}/{verb}")
    @staff(Role.SAFEGUARDING)
    @documented(f"{verb.title()} a {kind}'s approval" + (": new bookings refused, links stop working"
                                                         if suspend else ""), body=ReasonBody, response=StatusOut)
    async def handler(request: web.Request) -> web.Response:
        body = await read_body(request, ReasonBody)
        ctx: StaffContext = request[STAFF]
        services = request.app[SERVICES]
        person: Client | Guardian | None = await request[DB].get(model, path_id(request, param))
        if person is None:
            raise NotFound(f"There is no {kind} with id {request.match_info[param]}.")
        live: list[int] = []
        if suspend:
            live = await services.safeguarding.suspend(request[DB], ctx.actor, ctx.staff, person, body.reason)
        else:
            await services.safeguarding.reinstate(request[DB], ctx.actor, person, body.reason)
        await request[DB].commit()
        hub = request.app.get(HUB)
        if suspend and hub is not None:  # anyone suspended leaves a live session at once (policies/000_*)
            if kind == "guardian":
                await hub.remove_subject(None, f"guardian:{person.id}",
                                         "This session cannot go ahead for you at the moment. Please contact us.")
            else:
                for booking_id in live:
                    await hub.end(booking_id, "This session cannot go ahead at the moment.")
        return ok(StatusOut(subject=f"{kind}:{person.id}", status=person.status, live_bookings=live))

    handler.__name__ = f"{verb}_{kind}"


for _kind, _model in (("client", Client), ("guardian", Guardian)):
    _suspension(_kind, _model, True)
    _suspension(_kind, _model, False)
