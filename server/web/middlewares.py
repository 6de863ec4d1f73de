"""Errors as problem+json, security headers, one database session per request, and access checks."""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from server.accounts.logins import require_staff
from server.accounts.models import Role
from server.bookings.models import Booking
from server.errors import DuetError, Forbidden, NotFound, Unauthenticated
from server.keys import constant_time_equal
from server.links.models import LinkPurpose
from server.web.access import Handler, route_rule
from server.web.inputs import check_ids, path_id
from server.web.keys import (
    CSRF_HEADER,
    DB,
    HOLDER,
    LINK_COOKIE,
    SERVICES,
    SESSION_COOKIE,
    SESSIONMAKER,
    STAFF,
)
from server.web.pages_render import message_page

log = logging.getLogger("duet.web")

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'; object-src 'none'"
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def problem_response(error: DuetError) -> web.Response:
    response = web.json_response(error.problem(), status=error.status, content_type="application/problem+json")
    if error.status in (429, 503) and "retry_after" in error.extra:
        response.headers["Retry-After"] = str(error.extra["retry_after"])
    return response


_API_PATH = re.compile(r"^/(api/|s/[^/]+/api/)")


def _is_page(request: web.Request) -> bool:
    """A GET for a page a person looks at (errors become a readable page, not JSON)."""
    return request.method == "GET" and not _API_PATH.match(request.path) and not request.path.startswith("/static/")


PURPOSE_WORDS = {LinkPurpose.JOIN: "session", LinkPurpose.CONSENT: "consent form",
                 LinkPurpose.CHECK: "device check"}
_TOKEN_IN_PATH = re.compile(r"^/l/[^/?]+")


_UNPRINTABLE = re.compile(r"[^\x21-\x7e\u00a0-\u2027\u202a-\ud7ff\ue000-\ufffd]|%")


def loggable_path(path: str) -> str:
    """The path with any link token cut out (a token in a log is a key left on the table), and every byte that
    could end or fake a log line (CR, LF, other controls, spaces, line separators) percent-encoded."""
    cut = _TOKEN_IN_PATH.sub("/l/<token>", path)
    return _UNPRINTABLE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode("utf-8", "surrogateescape")),
                            cut)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every error into RFC 9457 problem+json (or a sign-in redirect for pages); never a traceback."""
    try:
        return await handler(request)
    except DuetError as exc:
        if _is_page(request):
            if isinstance(exc, Unauthenticated) and not request.path.startswith(("/s/", "/l/")):
                raise web.HTTPSeeOther("/login") from None
            return message_page(exc.title, exc.detail, status=exc.status)
        return problem_response(exc)
    except web.HTTPRedirection:
        raise
    except web.HTTPException as exc:
        messages = {
            404: "There is nothing at this address.",
            405: f"{request.method} is not allowed here.",
            413: "The request is too large.",
        }
        error = DuetError(messages.get(exc.status, exc.reason))
        body = error.problem() | {"status": exc.status, "title": exc.reason,
                                  "type": f"https://duet.example/problems/http-{exc.status}"}
        return web.json_response(body, status=exc.status, content_type="application/problem+json",
                                 headers={k: v for k, v in exc.headers.items() if k == "Allow"})
    except Exception:
        reference = secrets.token_hex(6)
        log.exception("unhandled error, reference %s, on %s %s", reference, request.method,
                      loggable_path(request.rel_url.path))
        body = {"type": "https://duet.example/problems/internal", "title": "Something went wrong", "status": 500,
                "detail": f"Something went wrong on our side. It has been logged with reference {reference}."}
        return web.json_response(body, status=500, content_type="application/problem+json")


@web.middleware
async def security_headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _apply_headers(request, exc)
        raise
    _apply_headers(request, response)
    return response


def _apply_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    headers["Permissions-Policy"] = "camera=(self), microphone=(self), geolocation=(), payment=()"
    headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        headers["Cache-Control"] = "no-store"
    if request.app[SERVICES].settings.is_https:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"


@web.middleware
async def database(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One session per request; whatever a failed request wrote is rolled back."""
    async with request.app[SESSIONMAKER]() as session:
        request[DB] = session
        try:
            return await handler(request)
        finally:
            await session.rollback()


def same_origin(request: web.Request, *, required: bool = False) -> bool:
    """The request comes from this site's pages (browsers always send Origin on WebSockets and POSTs).

    Compared with DUET_PUBLIC_URL only: the Host header is the client's to choose (DNS rebinding), so
    "Origin matches Host" says nothing about who made the page.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return not required  # a non-browser client; cookies are SameSite and CSRF tokens still apply
    public = urlsplit(request.app[SERVICES].settings.public_url)
    return origin == f"{public.scheme}://{public.netloc}".lower()


@web.middleware
async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the route's rule; anything without a rule is refused (deny by default)."""
    route = request.match_info.route
    rule = route_rule(route)
    if route.resource is None:  # 404/405 from the router: let the error middleware answer
        return await handler(request)
    check_ids(request.match_info, request.query)  # every ..._id is a well-formed id before a handler reads it
    if rule is None:
        raise Forbidden("This address has no access rule and is closed.")
    if request.method not in SAFE_METHODS and not same_origin(request):
        raise Forbidden("This request came from another site and was refused.")
    if rule.kind == "public":
        return await handler(request)
    services = request.app[SERVICES]
    session = request[DB]
    ctx = await services.logins.resolve(session, request.cookies.get(SESSION_COOKIE))
    if rule.kind == "link":
        booking_id = path_id(request.match_info, "booking_id")
        holder = await services.links.from_cookie(session, request.cookies.get(LINK_COOKIE), booking_id)
        if holder is not None and LinkPurpose(holder.link.purpose) not in rule.purposes and ctx is None:
            raise Forbidden(f"This link is for the {PURPOSE_WORDS[LinkPurpose(holder.link.purpose)]}. To join the "
                            "session, open the join link in your email.")
        if holder is not None and LinkPurpose(holder.link.purpose) in rule.purposes:
            if request.method not in SAFE_METHODS and not constant_time_equal(
                services.links.csrf_token(holder), request.headers.get(CSRF_HEADER, "")
            ):
                raise Forbidden("The page is out of date. Reload it and try again.")
            request[HOLDER] = holder
            return await handler(request)
        if ctx is None:
            raise Unauthenticated("Open the session from the link in your email, or sign in.")
        request[STAFF] = require_staff(ctx, frozenset({Role.PRACTITIONER, Role.SAFEGUARDING}))
        booking = await session.get(Booking, booking_id)
        if booking is None:
            raise NotFound("There is no such session.")
        if booking.practitioner_id != ctx.staff.id and not ctx.has(Role.SAFEGUARDING):
            raise Forbidden("Only the session's own practitioner, or a safeguarding lead, may open it.")
    elif rule.kind == "signed_in":
        if ctx is None:
            raise Unauthenticated("Sign in to continue.")
        if not rule.second_factor_pending and ctx.staff.totp_enrolled_at is not None and not ctx.login.second_factor:
            raise Unauthenticated("Enter the code from your authenticator app to finish signing in.",
                                  next="second_factor")
        request[STAFF] = ctx
    else:
        request[STAFF] = require_staff(ctx, rule.roles, enrolment=rule.enrolment)
    if request.method not in SAFE_METHODS and not constant_time_equal(
        request[STAFF].login.csrf_token, request.headers.get(CSRF_HEADER, "")
    ):
        raise Forbidden("The page is out of date. Reload it and try again.")
    return await handler(request)
