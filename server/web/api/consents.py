"""/api/v1/consents: paper consent forms entered by staff and the consent history of a person."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import Field

from server.accounts.models import OFFICE
from server.consent.models import ConsentRecord, Method
from server.consent.services import Grant
from server.errors import InvalidInput
from server.subjects import Subject
from server.web.access import staff
from server.web.http import Body, Out, documented, ok, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


class ConsentBody(Body):
    covers: str = Field(pattern=r"^(client|guardian):[0-9]{1,12}$")
    record: bool
    safeguarding: bool
    feedback: bool


class WithdrawBody(Body):
    covers: str = Field(pattern=r"^(client|guardian):[0-9]{1,12}$")


class PaperConsentBody(ConsentBody):
    given_by: str = Field(pattern=r"^(client|guardian):[0-9]{1,12}$")
    reference: str = Field(min_length=1, max_length=100)


class ConsentOut(Out):
    id: int
    covers: str
    given_by: str
    capacity: str
    scope_record: bool
    scope_safeguarding: bool
    scope_feedback: bool
    notice_version: str
    method: str
    paper_reference: str | None
    given_at: datetime
    withdrawn_at: datetime | None


@routes.post("/api/v1/consents")
@staff(*OFFICE)
@documented("Enter a paper consent form (with its reference)", body=PaperConsentBody, response=ConsentOut)
async def paper_consent(request: web.Request) -> web.Response:
    body = await read_body(request, PaperConsentBody)
    services, ctx = request.app[SERVICES], request[STAFF]
    row = await services.consent.give(
        request[DB], ctx.actor, body.given_by, body.covers,
        Grant(body.record, body.safeguarding, body.feedback, Method.PAPER, entered_by_id=ctx.staff.id,
              paper_reference=body.reference), services.clock.now().date())
    await request[DB].commit()
    return ok(ConsentOut.model_validate(row), status=201)


@routes.get("/api/v1/consents")
@staff()
@documented("The full consent history for one person, oldest first", response=ConsentOut, many=True,
            query=(("covers", "whose consent: client:4 or guardian:3"),))
async def consent_history(request: web.Request) -> web.Response:
    covers = Subject.parse(request.query.get("covers", ""))
    if covers is None or covers.kind not in ("client", "guardian"):
        raise InvalidInput("covers must name a person, like client:4 or guardian:3.", field="covers")
    rows: list[ConsentRecord] = await request.app[SERVICES].consent.history(request[DB], covers)
    return ok([ConsentOut.model_validate(r) for r in rows])
