"""Signing in and who is signed in: /api/v1/auth (sign in, second factor, sign out here and everywhere)
and /api/v1/me (the signed-in person, TOTP enrolment)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from server.accounts.logins import LoginResult, StaffContext
from server.accounts.models import Role
from server.subjects import Subject
from server.web.access import public, second_factor_step, signed_in, staff
from server.web.api.staff import StaffOut
from server.web.http import Body, Out, documented, ok, read_body
from server.web.keys import DB, SERVICES, SESSION_COOKIE, STAFF

routes = web.RouteTableDef()


class LoginBody(Body):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class CodeBody(Body):
    code: str = Field(min_length=6, max_length=8)


class MeOut(Out):
    staff: StaffOut
    csrf_token: str
    needs_second_factor: bool
    needs_enrolment: bool


class EnrolOut(Out):
    otpauth_uri: str


def _me(ctx: StaffContext) -> MeOut:
    pending = ctx.staff.totp_enrolled_at is not None and not ctx.login.second_factor
    return MeOut(
        staff=StaffOut.of(ctx.staff), csrf_token=ctx.login.csrf_token, needs_second_factor=pending,
        needs_enrolment=ctx.has(Role.SAFEGUARDING) and ctx.staff.totp_enrolled_at is None,
    )


def _set_cookie(request: web.Request, response: web.Response, result: LoginResult) -> None:
    settings = request.app[SERVICES].settings
    response.set_cookie(
        SESSION_COOKIE, result.token, httponly=True, samesite="Lax", secure=settings.is_https, path="/",
        max_age=settings.session_absolute_hours * 3600,
    )


@routes.post("/api/v1/auth/login")
@public
@documented("Sign in with email and password; sets the session cookie", body=LoginBody, response=MeOut)
async def login(request: web.Request) -> web.Response:
    body = await read_body(request, LoginBody)
    services = request.app[SERVICES]
    result = await services.logins.login(request[DB], body.email, body.password, request.remote or "")
    response = ok(_me(StaffContext(result.staff, result.login)))
    _set_cookie(request, response, result)
    return response


@routes.post("/api/v1/auth/second-factor")
@second_factor_step
@documented("Give the current TOTP code to finish signing in", body=CodeBody, response=MeOut)
async def second_factor(request: web.Request) -> web.Response:
    body = await read_body(request, CodeBody)
    ctx: StaffContext = request[STAFF]
    await request.app[SERVICES].logins.verify_second_factor(request[DB], ctx, body.code)
    return ok(_me(ctx))


@routes.get("/api/v1/me")
@signed_in
@documented("Who is signed in, the CSRF token for state changes, and what is still owed", response=MeOut)
async def me(request: web.Request) -> web.Response:
    return ok(_me(request[STAFF]))


@routes.post("/api/v1/me/totp")
@staff(enrolment=True)
@documented("Start enrolling an authenticator app; returns the otpauth URI to scan", response=EnrolOut)
async def begin_totp(request: web.Request) -> web.Response:
    uri = await request.app[SERVICES].staff.begin_totp(request[DB], request[STAFF])
    return ok(EnrolOut(otpauth_uri=uri))


@routes.post("/api/v1/me/totp/confirm")
@staff(enrolment=True)
@documented("Confirm enrolment with a code from the app", body=CodeBody, response=MeOut)
async def confirm_totp(request: web.Request) -> web.Response:
    body = await read_body(request, CodeBody)
    ctx: StaffContext = request[STAFF]
    await request.app[SERVICES].staff.confirm_totp(request[DB], ctx, body.code)
    return ok(_me(ctx))


@routes.post("/api/v1/auth/logout")
@second_factor_step
@documented("Sign out of this browser")
async def logout(request: web.Request) -> web.Response:
    await request.app[SERVICES].logins.logout(request[DB], request[STAFF])
    response = web.json_response({"signed_out": 1})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@routes.post("/api/v1/auth/logout-everywhere")
@signed_in
@documented("Sign out of every browser and device")
async def logout_everywhere(request: web.Request) -> web.Response:
    ctx: StaffContext = request[STAFF]
    services = request.app[SERVICES]
    count = await services.logins.end_all(request[DB], ctx.staff.id)
    await services.audit.record(request[DB], ctx.actor, "staff.logout_everywhere", Subject.staff(ctx.staff.id),
                                {"sessions": count})
    await request[DB].commit()
    response = web.json_response({"signed_out": count})
    response.del_cookie(SESSION_COOKIE, path="/")
    return response
