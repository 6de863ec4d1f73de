"""HTML pages and the link exchange. Page bodies live in the top-level web/ folder."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from server.bookings.models import Booking
from server.links.models import LinkPurpose
from server.links.services import LinkHolder
from server.people.models import Client
from server.web.access import link_holder, public, staff
from server.web.api import Out, documented, ok
from server.web.keys import DB, HOLDER, LINK_COOKIE, SERVICES, STAFF
from server.web.pages_render import render
from server.web.pages_window import outside_window

routes = web.RouteTableDef()

# Where each link purpose lands after the exchange. Later pages (consent, device check) add theirs here.
LANDING: dict[LinkPurpose, str] = {purpose: "" for purpose in LinkPurpose}
LANDING[LinkPurpose.CONSENT] = "/consent"  # issue 4: the consent page
LANDING[LinkPurpose.CHECK] = "/check"  # issue 6: the device and network check


@routes.get("/")
@public
async def index(request: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/dashboard")


@routes.get("/healthz")
@public
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


@routes.get("/login")
@public
async def login_page(request: web.Request) -> web.Response:
    return render("login.html", organisation=request.app[SERVICES].settings.organisation)


@routes.get("/dashboard")
@staff()
async def dashboard(request: web.Request) -> web.Response:
    return render("dashboard.html", organisation=request.app[SERVICES].settings.organisation)


@routes.get("/l/{token}")
@public
async def open_link(request: web.Request) -> web.Response:
    """Exchange a link for a cookie scoped to its booking, and move to an address without the token."""
    services = request.app[SERVICES]
    holder = await services.links.open_token(request[DB], request.match_info["token"])
    value, max_age = services.links.cookie_for(holder)
    booking_path = f"/s/{holder.booking.id}"
    response = web.HTTPSeeOther(booking_path + LANDING[LinkPurpose(holder.link.purpose)])
    response.set_cookie(LINK_COOKIE, value, path=booking_path, max_age=max_age, httponly=True, samesite="Lax",
                        secure=services.settings.is_https)
    raise response


@routes.get("/s/{booking_id}")
@link_holder(LinkPurpose.JOIN)
async def session_page(request: web.Request) -> web.Response:
    waiting_or_ended = await outside_window(request)  # issue 5: the lobby only inside the join window
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
        role = "host" if holder.link.subject == f"staff:{booking.practitioner_id}" else "participant"
    else:
        ctx = request[STAFF]
        booking = await services.bookings.get(request[DB], int(request.match_info["booking_id"]))
        you, csrf = ctx.staff.name, ctx.login.csrf_token
        role = "host" if ctx.staff.id == booking.practitioner_id else "observer"
    client = await request[DB].get(Client, booking.client_id)
    return ok(SessionContextOut(
        booking_id=booking.id, kind=booking.kind, starts_at=booking.starts_at, ends_at=booking.ends_at,
        window=services.links.window(booking).value, you=you, role=role,
        client_first_name=client.first_name if client else "", csrf_token=csrf,
    ))
