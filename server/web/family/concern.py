"""/s/{booking_id}/concern: a parent or adult client raises a concern through their session link."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from server.links.models import LinkPurpose
from server.links.services import LinkHolder
from server.safeguarding.models import ConcernCategory
from server.safeguarding.services import NewConcern
from server.web.access import link_holder
from server.web.http import Body, Out, documented, ok, path_id, read_body
from server.web.keys import DB, HOLDER, SERVICES, STAFF
from server.web.pages_render import render

routes = web.RouteTableDef()


class LinkConcernBody(Body):
    category: ConcernCategory
    details: str = Field(min_length=10, max_length=20000)


class ReceiptOut(Out):
    """What a parent sees after raising a concern: not the record itself."""

    id: int
    raised_at: datetime
    message: str


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
        concern = await services.safeguarding.raise_from_link(
            request[DB], holder.actor, NewConcern(body.category, body.details, holder.booking.id))
    else:
        concern = await services.safeguarding.raise_concern(
            request[DB], request[STAFF].actor, NewConcern(body.category, body.details, path_id(request, "booking_id")))
    await request[DB].commit()
    return ok(ReceiptOut(id=concern.id, raised_at=concern.raised_at,
                         message="Thank you. Your concern has been passed to our safeguarding lead, who will "
                                 "contact you. If anyone is in immediate danger, call 999. Children and young people "
                                 "can also talk to Childline (0800 1111) or report online abuse to CEOP "
                                 "(www.ceop.police.uk)."), status=201)
