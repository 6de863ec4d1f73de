"""Adding and changing clients and guardians; every change audited in the caller's transaction."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.errors import Conflict, InvalidInput, NotFound
from server.people.models import Client, Guardian, GuardianLink
from server.subjects import Subject


@dataclass(frozen=True)
class NewClient:
    first_name: str
    last_name: str
    date_of_birth: date
    email: str | None = None
    address: str = ""
    lat: float | None = None
    lon: float | None = None
    time_zone: str = "Europe/London"
    needs_one_to_one_support: bool = False


@dataclass(frozen=True)
class NewGuardian:
    name: str
    email: str
    phone: str = ""
    time_zone: str = "Europe/London"


class PeopleService:
    def __init__(self, clock: Clock, audit: AuditLog) -> None:
        self._clock = clock
        self._audit = audit

    async def add_client(self, session: AsyncSession, actor: Actor, new: NewClient) -> Client:
        """Raises InvalidInput for a date of birth in the future or a blank name."""
        today = self._clock.now().date()
        if new.date_of_birth > today:
            raise InvalidInput("The date of birth is in the future.", field="date_of_birth")
        if new.date_of_birth.year < today.year - 120:
            raise InvalidInput("The date of birth is more than 120 years ago.", field="date_of_birth")
        if not new.first_name.strip() or not new.last_name.strip():
            raise InvalidInput("Give the client's first and last name.", field="first_name")
        client = Client(
            first_name=new.first_name.strip(), last_name=new.last_name.strip(), date_of_birth=new.date_of_birth,
            email=new.email.strip().lower() if new.email else None, address=new.address, lat=new.lat,
            lon=new.lon, time_zone=new.time_zone, needs_one_to_one_support=new.needs_one_to_one_support,
            created_at=self._clock.now(),
        )
        session.add(client)
        await session.flush()
        await self._audit.record(session, actor, "client.created", Subject.client(client.id))
        return client

    async def add_guardian(self, session: AsyncSession, actor: Actor, new: NewGuardian) -> Guardian:
        """Raises Conflict when the email already belongs to a guardian."""
        email = new.email.strip().lower()
        if not new.name.strip():
            raise InvalidInput("Give the guardian's name.", field="name")
        existing = (
            await session.execute(select(Guardian.id).where(func.lower(Guardian.email) == email))
        ).scalar_one_or_none()
        if existing is not None:
            raise Conflict(f"A guardian with the email {email} already exists (id {existing}).", field="email")
        guardian = Guardian(name=new.name.strip(), email=email, phone=new.phone, time_zone=new.time_zone,
                            created_at=self._clock.now())
        session.add(guardian)
        await session.flush()
        await self._audit.record(session, actor, "guardian.created", Subject.guardian(guardian.id))
        return guardian

    async def link(
        self, session: AsyncSession, actor: Actor, client: Client, guardian: Guardian, *,
        parental_responsibility: bool, account_holder: bool, relationship_label: str = "parent",
    ) -> GuardianLink:
        """Record that ``guardian`` cares for ``client``; parental responsibility decides who may consent."""
        existing = await session.execute(
            select(GuardianLink.id).where(GuardianLink.client_id == client.id, GuardianLink.guardian_id == guardian.id)
        )
        if existing.first() is not None:
            raise Conflict(f"{guardian.name} is already linked to {client.name}.")
        link = GuardianLink(client_id=client.id, guardian_id=guardian.id, relationship_label=relationship_label,
                            parental_responsibility=parental_responsibility, account_holder=account_holder)
        session.add(link)
        await session.flush()
        await session.refresh(client, ["guardians"])
        await self._audit.record(session, actor, "guardian.linked", Subject.client(client.id), {
            "guardian": guardian.id, "parental_responsibility": parental_responsibility,
            "account_holder": account_holder,
        })
        return link

    @staticmethod
    async def clients(session: AsyncSession, ids: Collection[int] | None = None) -> list[Client]:
        """Every client by name, or only those with these ids."""
        query = select(Client).order_by(Client.last_name, Client.first_name)
        if ids is not None:
            query = query.where(Client.id.in_(list(ids)))
        return list((await session.execute(query)).scalars().all())

    @staticmethod
    async def guardians(session: AsyncSession) -> list[Guardian]:
        return list((await session.execute(select(Guardian).order_by(Guardian.name))).scalars().all())

    async def client(self, session: AsyncSession, client_id: int) -> Client:
        client = await session.get(Client, client_id)
        if client is None:
            raise NotFound(f"There is no client with id {client_id}.")
        return client

    async def guardian(self, session: AsyncSession, guardian_id: int) -> Guardian:
        guardian = await session.get(Guardian, guardian_id)
        if guardian is None:
            raise NotFound(f"There is no guardian with id {guardian_id}.")
        return guardian
