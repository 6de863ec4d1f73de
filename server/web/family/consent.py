"""/s/{booking_id}/consent: the family's consent page through their signed link: the privacy notice, and
giving, changing or withdrawing consent (policies/000_*: consent to record, GDPR)."""

from __future__ import annotations

from datetime import date

from aiohttp import web

from server.consent.models import Capacity, Method
from server.consent.rules import capacity_for
from server.consent.services import Grant
from server.errors import Forbidden
from server.links.models import LinkPurpose
from server.links.services import LinkHolder
from server.subjects import Subject
from server.web.access import link_holder
from server.web.api.consents import ConsentBody, ConsentOut, WithdrawBody
from server.web.http import Out, documented, ok, read_body
from server.web.keys import DB, HOLDER, SERVICES
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
    client = await services.consent.person(session, Subject.client(holder.booking.client_id))
    candidates = [(client, f"{client.first_name}" + (" (your child)" if giver.subject != client.subject else ""))]
    if Subject(giver.subject).kind == "guardian":
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
    return ok(ConsentOut.model_validate(row))
