"""Suspending and reinstating a client or a family (guardian): the one handler behind
/api/v1/clients/{client_id}/suspend and /api/v1/guardians/{guardian_id}/suspend (and reinstate)."""

from __future__ import annotations

from aiohttp import web

from server.accounts.logins import StaffContext
from server.people.models import Client, Guardian
from server.web.http import Out, ReasonBody, ok, read_body
from server.web.keys import DB, SERVICES, STAFF


class StatusOut(Out):
    subject: str
    status: str
    live_bookings: list[int]


async def suspend_or_reinstate(request: web.Request, person: Client | Guardian, *, suspend: bool) -> web.Response:
    """Suspend (or reinstate) approval with the reason; anyone suspended leaves a live session at once
    (policies/000_*): a guardian is removed from every session, a client's sessions end (the live-session
    guard acts on the suspension once it is committed)."""
    body = await read_body(request, ReasonBody)
    ctx: StaffContext = request[STAFF]
    services = request.app[SERVICES]
    live: list[int] = []
    if suspend:
        live = await services.safeguarding.suspend(request[DB], ctx.actor, ctx.staff, person, body.reason)
    else:
        await services.safeguarding.reinstate(request[DB], ctx.actor, person, body.reason)
    await request[DB].commit()  # live sessions end for them now (server/web/live/guard.py)
    kind = "client" if isinstance(person, Client) else "guardian"
    return ok(StatusOut(subject=f"{kind}:{person.id}", status=person.status, live_bookings=live))
