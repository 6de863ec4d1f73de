"""Everything Duet holds about one client, gathered once for both rights.

A guardian linked to this client only is part of the request; a guardian who also cares for another
client is listed but never erased here (their data belongs to that other client's record too).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.bookings.models import Booking
from server.errors import NotFound
from server.people.models import Client, Guardian, GuardianLink
from server.recording.holds import open_holds
from server.recording.models import Recording
from server.storage_policies.models import PolicySet


@dataclass
class Subject:
    client: Client
    guardians: list[Guardian]  # every guardian linked to the client
    sole_guardians: list[Guardian]  # those linked to no other client
    bookings: list[Booking]
    recordings: list[Recording]
    held: set[int]  # booking ids with an active safeguarding or legal hold (a client-wide hold: all)

    @property
    def people(self) -> set[str]:
        """Actor and subject references of the client and their guardians ("client:4", "guardian:2")."""
        return {f"client:{self.client.id}"} | {f"guardian:{g.id}" for g in self.guardians}

    @property
    def booking_ids(self) -> list[int]:
        return [b.id for b in self.bookings]

    def is_held(self, recording: Recording) -> bool:
        return recording.booking_id in self.held


async def load_subject(session: AsyncSession, client_id: int) -> Subject:
    client = await session.get(Client, client_id)
    if client is None:
        raise NotFound(f"There is no client with id {client_id}.")
    guardians = [link.guardian for link in client.guardians]
    sole: list[Guardian] = []
    for guardian in guardians:
        others = await session.scalar(select(func.count()).select_from(GuardianLink).where(
            GuardianLink.guardian_id == guardian.id, GuardianLink.client_id != client.id))
        if not others:
            sole.append(guardian)
    bookings = list((await session.scalars(
        select(Booking).where(Booking.client_id == client.id).order_by(Booking.starts_at))).all())
    ids = [b.id for b in bookings]
    recordings = list((await session.scalars(
        select(Recording).where(Recording.booking_id.in_(ids)).order_by(Recording.started_at))).all()) if ids else []
    holds = await open_holds(session, booking_ids=ids, client_ids=[client.id])
    held = set(ids) if any(h.client_id == client.id for h in holds) else {
        h.booking_id for h in holds if h.booking_id is not None}
    return Subject(client, guardians, sole, bookings, recordings, held)


def safeguarding_policies(policies: PolicySet) -> set[str]:
    """Purposes that exist only because of a safeguarding flag.

    Their records are withheld from access bundles until the safeguarding lead has reviewed them: DPA 2018
    Schedule 3 restricts disclosure that would cause serious harm, and child abuse data.
    """
    return {p.id for p in policies if p.applies_to.flagged_for_safeguarding == frozenset({True})}
