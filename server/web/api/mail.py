"""Emails that could not be delivered, for the office to act on."""

from __future__ import annotations

import re
from datetime import datetime

from aiohttp import web

from server.accounts.models import Role
from server.mail.failures import failed_mail
from server.web.access import staff
from server.web.http import Out, documented, ok
from server.web.keys import DB

routes = web.RouteTableDef()


INVITEE = re.compile(r"\.(guardian|client|staff)-([0-9]+)\.")


class FailedMailOut(Out):
    id: int
    kind: str
    recipient: str
    subject: str
    booking_id: int | None
    attempts: int
    error: str
    created_at: datetime
    invitee: str | None  # "guardian:3": whom POST /api/v1/bookings/{id}/resend would send a new link to


@routes.get("/api/v1/mail/failed")
@staff(Role.ADMIN, Role.MANAGER)
@documented("Emails that will not be delivered until someone fixes the address and resends",
            response=FailedMailOut, many=True)
async def list_failed(request: web.Request) -> web.Response:
    rows = await failed_mail(request[DB])
    return ok([FailedMailOut(id=r.id, kind=r.kind, recipient=r.recipient, subject=r.subject,
                             booking_id=r.booking_id, attempts=r.attempts, error=r.last_error or "",
                             created_at=r.created_at, invitee=_invitee(r.message_key)) for r in rows])


def _invitee(key: str) -> str | None:
    """The person a booking email was for, from its key ("booking-4.invite.guardian-3.v0.ab12...")."""
    found = INVITEE.search(key)
    return f"{found[1]}:{found[2]}" if found else None
