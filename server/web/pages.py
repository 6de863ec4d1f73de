"""The staff pages and the link exchange (/, /healthz, /login, /dashboard, /recordings, /concerns, /visits,
/l/{token}). Page bodies live in the top-level web/ folder."""

from __future__ import annotations

from aiohttp import web

from server.accounts.models import Role
from server.links.models import LinkPurpose
from server.web.access import public, staff
from server.web.keys import DB, LINK_COOKIE, SERVICES
from server.web.pages_render import render

routes = web.RouteTableDef()


# Where each link purpose lands after the exchange.
LANDING: dict[LinkPurpose, str] = {
    LinkPurpose.JOIN: "",  # the lobby
    LinkPurpose.CONSENT: "/consent",  # the consent page
    LinkPurpose.CHECK: "/check",  # the device and network check
}


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


@routes.get("/recordings")
@staff(Role.SAFEGUARDING)
async def recordings_page(request: web.Request) -> web.Response:
    return render("recordings.html", organisation=request.app[SERVICES].settings.organisation)


@routes.get("/concerns")
@staff()
async def concerns_page(request: web.Request) -> web.Response:
    """Staff page: the concerns the viewer may read (the API decides which), each with its 24-hour clock."""
    return render("concerns.html", organisation=request.app[SERVICES].settings.organisation)


@routes.get("/visits")
@staff()
async def visits_page(request: web.Request) -> web.Response:
    return render("visit.html", organisation=request.app[SERVICES].settings.organisation)
