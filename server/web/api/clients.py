"""/api/v1/clients: clients (practitioners see only those they have bookings with), their guardians, legal
holds on their recordings, suspension, and reported changes to their home workspace."""

from __future__ import annotations

from datetime import date

from aiohttp import web
from pydantic import EmailStr, Field

from server.accounts.logins import StaffContext
from server.accounts.models import OFFICE, Role
from server.dates import age_on
from server.errors import NotFound
from server.people.models import Client
from server.people.services import NewClient
from server.web.access import staff
from server.web.api.holds import HoldOut
from server.web.api.suspensions import StatusOut, suspend_or_reinstate
from server.web.http import Body, OneLine, Out, ReasonBody, TimeZone, documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF
from server.web.schemas.visits import (
    CheckOut,
)

routes = web.RouteTableDef()


class ClientBody(Body):
    first_name: OneLine = Field(min_length=1, max_length=100)
    last_name: OneLine = Field(min_length=1, max_length=100)
    date_of_birth: date
    email: EmailStr | None = None
    address: str = Field(default="", max_length=500)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    needs_one_to_one_support: bool = False
    time_zone: TimeZone | None = None


class LinkBody(Body):
    guardian_id: int = Field(gt=0)
    parental_responsibility: bool
    account_holder: bool = False
    relationship: str = Field(default="parent", max_length=60)


class GuardianLinkOut(Out):
    guardian_id: int
    name: str
    relationship: str
    parental_responsibility: bool
    account_holder: bool


class ClientOut(Out):
    id: int
    name: str
    first_name: str
    last_name: str
    date_of_birth: date
    age_today: int
    adult_today: bool
    email: str | None
    address: str
    lat: float | None
    lon: float | None
    status: str
    guardians: list[GuardianLinkOut]


def client_out(client: Client, today: date) -> ClientOut:
    return ClientOut(
        id=client.id, name=client.name, first_name=client.first_name, last_name=client.last_name,
        date_of_birth=client.date_of_birth, age_today=age_on(client.date_of_birth, today),
        adult_today=client.is_adult_on(today), email=client.email, address=client.address, lat=client.lat,
        lon=client.lon, status=client.status,
        guardians=[GuardianLinkOut(guardian_id=g.guardian_id, name=g.guardian.name, relationship=g.relationship_label,
                                   parental_responsibility=g.parental_responsibility, account_holder=g.account_holder)
                   for g in client.guardians],
    )


def _own_only(ctx: StaffContext) -> int | None:
    """A practitioner without an office role sees only their own clients."""
    return None if ctx.staff.role_set & set(OFFICE) else ctx.staff.id


@routes.get("/api/v1/clients")
@staff()  # every role; staff without an office role see only the clients they have bookings with
@documented("Clients (a practitioner sees the clients they have bookings with)", response=ClientOut, many=True)
async def list_clients(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    own = _own_only(request[STAFF])
    ids = None if own is None else await services.bookings.client_ids_of(request[DB], own)
    today = services.clock.now().date()
    return ok([client_out(c, today) for c in await services.people.clients(request[DB], ids)])


@routes.post("/api/v1/clients")
@staff(Role.ADMIN)
@documented("Add a client", body=ClientBody, response=ClientOut)
async def create_client(request: web.Request) -> web.Response:
    body = await read_body(request, ClientBody)
    services = request.app[SERVICES]
    client = await services.people.add_client(request[DB], request[STAFF].actor, NewClient(
        **body.model_dump(exclude={"time_zone"}), time_zone=body.time_zone or services.settings.time_zone))
    await request[DB].commit()
    await request[DB].refresh(client, ["guardians"])
    return ok(client_out(client, services.clock.now().date()), status=201)


@routes.get("/api/v1/clients/{client_id}")
@staff()  # as the list: others see only the clients they have bookings with
@documented("One client with their guardians", response=ClientOut)
async def get_client(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    client = await services.people.client(request[DB], path_id(request, "client_id"))
    own = _own_only(request[STAFF])
    if own is not None and not await services.bookings.works_with(request[DB], own, client.id):
        raise NotFound(f"There is no client with id {client.id}.")
    return ok(client_out(client, services.clock.now().date()))


@routes.post("/api/v1/clients/{client_id}/guardians")
@staff(Role.ADMIN)
@documented("Link a guardian to a client, with or without parental responsibility", body=LinkBody,
            response=ClientOut)
async def link_guardian(request: web.Request) -> web.Response:
    body = await read_body(request, LinkBody)
    services = request.app[SERVICES]
    client = await services.people.client(request[DB], path_id(request, "client_id"))
    guardian = await services.people.guardian(request[DB], body.guardian_id)
    await services.people.link(request[DB], request[STAFF].actor, client, guardian,
                               parental_responsibility=body.parental_responsibility,
                               account_holder=body.account_holder, relationship_label=body.relationship)
    await request[DB].commit()
    return ok(client_out(client, services.clock.now().date()), status=201)


class LegalHoldBody(Body):
    reason: str = Field(min_length=10, max_length=2000)  # the claim, inquiry or order, and its reference
    booking_id: int | None = Field(default=None, gt=0)  # one session's recordings; omitted: all the client's


@routes.post("/api/v1/clients/{client_id}/legal-holds")
@staff(Role.SAFEGUARDING)
@documented("Hold a client's recordings (or one session's) against deletion for a claim, inquiry or order",
            body=LegalHoldBody, response=HoldOut)
async def place_legal_hold(request: web.Request) -> web.Response:
    body = await read_body(request, LegalHoldBody)
    ctx: StaffContext = request[STAFF]
    hold = await request.app[SERVICES].safeguarding.place_legal_hold(
        request[DB], ctx.actor, ctx.staff, path_id(request, "client_id"), body.booking_id, body.reason)
    await request[DB].commit()
    return ok(HoldOut.model_validate(hold), status=201)


@routes.post("/api/v1/clients/{client_id}/workspace-change")
@staff()
@documented("Report an observable change to a client's home: a new checklist is needed", body=ReasonBody,
            response=CheckOut)
async def workspace_change(request: web.Request) -> web.Response:
    body = await read_body(request, ReasonBody)
    ctx: StaffContext = request[STAFF]
    change = await request.app[SERVICES].visits.report_change(request[DB], ctx.actor, ctx.staff,
                                                              path_id(request, "client_id"), body.reason)
    await request[DB].commit()
    return ok(CheckOut.model_validate(change), status=201)


@routes.post("/api/v1/clients/{client_id}/suspend")
@staff(Role.SAFEGUARDING)
@documented("Suspend a client's approval: new bookings refused, links stop working", body=ReasonBody,
            response=StatusOut)
async def suspend_client(request: web.Request) -> web.Response:
    client = await request.app[SERVICES].people.client(request[DB], path_id(request, "client_id"))
    return await suspend_or_reinstate(request, client, suspend=True)


@routes.post("/api/v1/clients/{client_id}/reinstate")
@staff(Role.SAFEGUARDING)
@documented("Reinstate a client's approval", body=ReasonBody, response=StatusOut)
async def reinstate_client(request: web.Request) -> web.Response:
    client = await request.app[SERVICES].people.client(request[DB], path_id(request, "client_id"))
    return await suspend_or_reinstate(request, client, suspend=False)
