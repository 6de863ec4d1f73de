"""Clients and guardians. Practitioners see only the clients they have bookings with."""

from __future__ import annotations

from datetime import date

from aiohttp import web
from pydantic import EmailStr, Field
from sqlalchemy import select

from server.accounts.logins import StaffContext
from server.accounts.models import OFFICE, Role
from server.bookings.models import Booking
from server.dates import age_on
from server.errors import NotFound
from server.people.models import Client, Guardian
from server.people.services import NewClient, NewGuardian
from server.web.access import staff
from server.web.api import Body, OneLine, Out, TimeZone, documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF

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


class GuardianBody(Body):
    name: OneLine = Field(min_length=1, max_length=200)
    email: EmailStr
    phone: str = Field(default="", max_length=40)
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


class GuardianOut(Out):
    id: int
    name: str
    email: str
    phone: str
    status: str
    client_ids: list[int]


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


def guardian_out(guardian: Guardian) -> GuardianOut:
    return GuardianOut(id=guardian.id, name=guardian.name, email=guardian.email, phone=guardian.phone,
                       status=guardian.status, client_ids=[link.client_id for link in guardian.links])


def _own_only(ctx: StaffContext) -> int | None:
    """A practitioner without an office role sees only their own clients."""
    return None if ctx.staff.role_set & set(OFFICE) else ctx.staff.id


@routes.get("/api/v1/clients")
@staff()  # every role; staff without an office role see only the clients they have bookings with
@documented("Clients (a practitioner sees the clients they have bookings with)", response=ClientOut, many=True)
async def list_clients(request: web.Request) -> web.Response:
    query = select(Client).order_by(Client.last_name, Client.first_name)
    own = _own_only(request[STAFF])
    if own is not None:
        query = query.where(Client.id.in_(select(Booking.client_id).where(Booking.practitioner_id == own)))
    today = request.app[SERVICES].clock.now().date()
    return ok([client_out(c, today) for c in (await request[DB].execute(query)).scalars().all()])


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
    if own is not None:
        mine = (await request[DB].execute(
            select(Booking.id).where(Booking.client_id == client.id, Booking.practitioner_id == own).limit(1)
        )).first()
        if mine is None:
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


@routes.get("/api/v1/guardians")
@staff(*OFFICE)
@documented("Guardians and the clients they are linked to", response=GuardianOut, many=True)
async def list_guardians(request: web.Request) -> web.Response:
    rows = (await request[DB].execute(select(Guardian).order_by(Guardian.name))).scalars().all()
    return ok([guardian_out(g) for g in rows])


@routes.post("/api/v1/guardians")
@staff(Role.ADMIN)
@documented("Add a guardian", body=GuardianBody, response=GuardianOut)
async def create_guardian(request: web.Request) -> web.Response:
    body = await read_body(request, GuardianBody)
    services = request.app[SERVICES]
    guardian = await services.people.add_guardian(request[DB], request[STAFF].actor,
                                                  NewGuardian(**body.model_dump(exclude={"time_zone"}),
                                                              time_zone=body.time_zone or services.settings.time_zone))
    await request[DB].commit()
    await request[DB].refresh(guardian, ["links"])
    return ok(guardian_out(guardian), status=201)
