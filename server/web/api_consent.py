"""Consent over the web: the family's consent page (through a signed link), paper consent entered by staff,
consent history, and the staff recording agreement (policies/000_*: consent to record, GDPR)."""

from __future__ import annotations

from datetime import date, datetime

from aiohttp import web
from pydantic import Field

from server.accounts.models import OFFICE, Role
from server.consent.models import Capacity, ConsentRecord, Method
from server.consent.rules import capacity_for
from server.consent.services import Grant
from server.errors import Forbidden, InvalidInput
from server.links.models import LinkPurpose
from server.links.services import LinkHolder
from server.web.access import link_holder, staff
from server.web.api import Body, Out, documented, ok, path_id, read_body
from server.web.keys import DB, HOLDER, SERVICES, STAFF
from server.web.pages_render import render

routes = web.RouteTableDef()


class NoticeSectionOut(Out):
    heading: str
    text: str


class ConsentSubjectOut(Out):
    covers: str  # "client:4" or "guardian:3"
    label: str  # "Kit (your child)" / "You, when you are on camera"
    may_consent: bool
    why_not: str | None
    scopes: list[str]  # what is agreed now


class ConsentPageOut(Out):
    notice_version: str
    notice: list[NoticeSectionOut]
    session_day: date
    subjects: list[ConsentSubjectOut]


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


class AgreementBody(Body):
    signed_on: date | None


class AgreementOut(Out):
    staff_id: int
    recording_agreement_on: date | None


def _holder(request: web.Request) -> LinkHolder:
    holder = request.get(HOLDER)
    if holder is None:
        raise Forbidden("Consent is given by the family through their own link; staff enter paper forms "
                        "through the staff API.")
    return holder


async def _subjects(request: web.Request, holder: LinkHolder) -> list[ConsentSubjectOut]:
    """The people this link holder may consent for: themselves, and the booking's client."""
    services, session = request.app[SERVICES], request[DB]
    day = holder.booking.starts_at.date()
    giver = await services.consent.person(session, holder.link.subject)
    client = await services.consent.person(session, f"client:{holder.booking.client_id}")
    candidates = [(client, f"{client.first_name}" + (" (your child)" if giver.subject != client.subject else ""))]
    if giver.subject.startswith("guardian:"):
        candidates.append((giver, "You, when you can be seen or heard in the session"))
    in_force = {(c.covers, c.given_by): c for c in await services.consent.in_force(
        session, [p.subject for p, _ in candidates])}
    out = []
    for person, label in candidates:
        capacity = capacity_for(giver, person, day)
        current = in_force.get((person.subject, giver.subject))
        out.append(ConsentSubjectOut(
            covers=person.subject, label=label, may_consent=isinstance(capacity, Capacity),
            why_not=None if isinstance(capacity, Capacity) else capacity,
            scopes=sorted(current.scopes) if current else []))
    return out


@routes.get("/s/{booking_id}/consent")
@link_holder(LinkPurpose.CONSENT, LinkPurpose.JOIN)
async def consent_page(request: web.Request) -> web.Response:
    return render("consent.html", organisation=request.app[SERVICES].settings.organisation)


@routes.get("/s/{booking_id}/api/consent")
@link_holder(LinkPurpose.CONSENT, LinkPurpose.JOIN)
@documented("The privacy notice and what this link holder may consent to", response=ConsentPageOut)
async def consent_state(request: web.Request) -> web.Response:
    holder = _holder(request)
    notice = request.app[SERVICES].consent.notice
    return ok(ConsentPageOut(
        notice_version=notice.version,
        notice=[NoticeSectionOut(heading=s.heading, text=s.text) for s in notice.sections],
        session_day=holder.booking.starts_at.date(), subjects=await _subjects(request, holder)))


@routes.post("/s/{booking_id}/api/consent")
@link_holder(LinkPurpose.CONSENT, LinkPurpose.JOIN)
@documented("Give or change consent through the link", body=ConsentBody, response=ConsentOut)
async def give_consent(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, ConsentBody)
    services = request.app[SERVICES]
    row = await services.consent.give(
        request[DB], holder.actor, holder.link.subject, body.covers,
        Grant(body.record, body.safeguarding, body.feedback, Method.ONLINE, link_id=holder.link.id),
        holder.booking.starts_at.date())
    await request[DB].commit()
    services.consent.changed(body.covers)
    return ok(ConsentOut.model_validate(row), status=201)


@routes.post("/s/{booking_id}/api/consent/withdraw")
@link_holder(LinkPurpose.CONSENT, LinkPurpose.JOIN)
@documented("Withdraw consent at once (live sessions included)", body=WithdrawBody, response=ConsentOut)
async def withdraw_consent(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, WithdrawBody)
    services = request.app[SERVICES]
    row = await services.consent.withdraw(request[DB], holder.actor, holder.link.subject, body.covers)
    await request[DB].commit()
    services.consent.changed(body.covers)
    return ok(ConsentOut.model_validate(row))


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
    services.consent.changed(body.covers)
    return ok(ConsentOut.model_validate(row), status=201)


@routes.get("/api/v1/consents")
@staff()
@documented("The full consent history for one person, oldest first", response=ConsentOut, many=True,
            query=(("covers", "whose consent: client:4 or guardian:3"),))
async def consent_history(request: web.Request) -> web.Response:
    covers = request.query.get("covers", "")
    kind, _, raw = covers.partition(":")
    if kind not in ("client", "guardian") or not raw.isdigit():
        raise InvalidInput("covers must name a person, like client:4 or guardian:3.", field="covers")
    rows: list[ConsentRecord] = await request.app[SERVICES].consent.history(request[DB], covers)
    return ok([ConsentOut.model_validate(r) for r in rows])


@routes.post("/api/v1/staff/{staff_id}/recording-agreement")
@staff(Role.ADMIN, Role.MANAGER)
@documented("Record the date a staff member signed the recording agreement (null clears it)",
            body=AgreementBody, response=AgreementOut)
async def recording_agreement(request: web.Request) -> web.Response:
    body = await read_body(request, AgreementBody)
    services = request.app[SERVICES]
    member = await services.consent.set_staff_agreement(request[DB], request[STAFF].actor,
                                                        path_id(request, "staff_id"), body.signed_on)
    await request[DB].commit()
    return ok(AgreementOut(staff_id=member.id, recording_agreement_on=member.recording_agreement_on))
