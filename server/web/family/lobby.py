"""/s/{booking_id}: the lobby and live session page of a booking, for a link holder or the booking's staff,
and the context it loads."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.bookings.models import Booking
from server.links.models import LinkPurpose
from server.links.services import LinkHolder
from server.subjects import Subject
from server.web.access import link_holder
from server.web.http import Out, documented, ok, path_id
from server.web.keys import DB, HOLDER, SERVICES, STAFF
from server.web.pages_render import render
from server.web.pages_window import outside_window

routes = web.RouteTableDef()


@routes.get("/s/{booking_id}")
@link_holder(LinkPurpose.JOIN)
async def session_page(request: web.Request) -> web.Response:
    waiting_or_ended = await outside_window(request)  # the lobby only inside the join window
    if waiting_or_ended is not None:
        return waiting_or_ended
    return render("session.html", organisation=request.app[SERVICES].settings.organisation)


class SessionContextOut(Out):
    booking_id: int
    kind: str
    starts_at: datetime
    ends_at: datetime
    window: str
    you: str
    role: str  # host (the practitioner), participant (guardian or client) or observer (safeguarding)
    client_first_name: str
    csrf_token: str


@routes.get("/s/{booking_id}/api/context")
@link_holder(LinkPurpose.JOIN, LinkPurpose.CHECK, LinkPurpose.CONSENT)  # every page reads it
@documented("The session as its holder sees it: time window, who they are", response=SessionContextOut)
async def session_context(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    holder: LinkHolder | None = request.get(HOLDER)
    booking: Booking
    if holder is not None:
        booking, you, csrf = holder.booking, holder.name, services.links.csrf_token(holder)
        role = "host" if holder.link.subject == Subject.staff(booking.practitioner_id) else "participant"
    else:
        ctx = request[STAFF]
        booking = await services.bookings.get(request[DB], path_id(request, "booking_id"))
        you, csrf = ctx.staff.name, ctx.login.csrf_token
        role = "host" if ctx.staff.id == booking.practitioner_id else "observer"
    client = await services.people.client(request[DB], booking.client_id)
    return ok(SessionContextOut(
        booking_id=booking.id, kind=booking.kind, starts_at=booking.starts_at, ends_at=booking.ends_at,
        window=services.links.window(booking).value, you=you, role=role,
        client_first_name=client.first_name, csrf_token=csrf,
    ))
