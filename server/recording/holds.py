"""Holds on recordings: the one place they are placed, lifted and looked up.

A hold keeps the recordings of one booking, or of every booking of a client, from erasure while a concern
or a legal matter (a claim, an inquiry, a court order) needs them. A hold placed with a concern also moves
the recordings under the safeguarding storage policy; lifting it moves them back. Erase dates are worked
out above this layer (server/retention), so they are refreshed through an ``EraseDateRefresh`` given at
construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.errors import Conflict, InvalidInput, NotFound
from server.recording.models import RecordingHold


class EraseDateRefresh(Protocol):
    """Recompute the erase dates a fact change affects (server.retention.dates.EraseDates)."""

    async def refresh_booking(self, session: AsyncSession, booking_id: int) -> int: ...

    async def refresh_client(self, session: AsyncSession, client_id: int) -> int: ...


async def open_holds(session: AsyncSession, *, booking_ids: Iterable[int] = (),
                     client_ids: Iterable[int] = ()) -> list[RecordingHold]:
    """Holds not lifted that cover any of these bookings or clients (a client-wide hold covers them all)."""
    bookings, clients = sorted(set(booking_ids)), sorted(set(client_ids))
    if not bookings and not clients:
        return []
    return list((await session.scalars(select(RecordingHold).where(
        RecordingHold.lifted_at.is_(None),
        or_(RecordingHold.booking_id.in_(bookings), RecordingHold.client_id.in_(clients))))).all())


def covers(hold: RecordingHold, booking_id: int, client_id: int) -> bool:
    """Whether ``hold`` keeps the recordings of this booking (of this client)."""
    return hold.booking_id == booking_id or (hold.booking_id is None and hold.client_id == client_id)


class Holds:
    def __init__(self, clock: Clock, audit: AuditLog, erase_dates: EraseDateRefresh) -> None:
        self._clock = clock
        self._audit = audit
        self._erase_dates = erase_dates

    async def place(self, session: AsyncSession, actor: Actor, staff_id: int, reason: str, *,
                    booking_id: int | None, client_id: int | None, concern_id: int | None = None,
                    target: str) -> RecordingHold:
        """Keep one booking's recordings (``booking_id``) or all a client's (``client_id`` alone); audited on
        ``target`` (the concern, or the client for a legal hold)."""
        if booking_id is None and client_id is None:
            raise InvalidInput("Name the booking or the client whose recordings are to be kept.")
        if not reason.strip():
            raise InvalidInput("Say why the recordings are held.", field="reason")
        hold = RecordingHold(concern_id=concern_id, booking_id=booking_id,
                             client_id=None if booking_id is not None else client_id, reason=reason,
                             placed_by_id=staff_id, placed_at=self._clock.now())
        session.add(hold)
        await session.flush()
        details: dict[str, object] = {"hold_id": hold.id, "booking_id": booking_id, "reason": reason}
        if concern_id is None:
            details["kind"] = "legal"
        else:
            details["client_id"] = hold.client_id
        await self._audit.record(session, actor, "recording.hold_placed", target, details)
        await self._refresh(session, hold)
        return hold

    async def lift(self, session: AsyncSession, actor: Actor, staff_id: int, hold_id: int,
                   reason: str) -> RecordingHold:
        hold = await session.get(RecordingHold, hold_id)
        if hold is None:
            raise NotFound(f"There is no recording hold with id {hold_id}.")
        if hold.lifted_at is not None:
            raise Conflict("This hold has already been lifted.")
        hold.lifted_by_id, hold.lifted_at = staff_id, self._clock.now()
        target = f"concern:{hold.concern_id}" if hold.concern_id is not None else f"hold:{hold.id}"
        await self._audit.record(session, actor, "recording.hold_lifted", target,
                                 {"hold_id": hold.id, "reason": reason})
        await session.flush()
        await self._refresh(session, hold)
        return hold

    async def _refresh(self, session: AsyncSession, hold: RecordingHold) -> None:
        if hold.client_id is not None:
            await self._erase_dates.refresh_client(session, hold.client_id)
        elif hold.booking_id is not None:
            await self._erase_dates.refresh_booking(session, hold.booking_id)

    @staticmethod
    async def held(session: AsyncSession, booking_id: int, client_id: int) -> bool:
        """True while any hold covers the recordings of ``booking_id``: retention must keep them."""
        return bool(await open_holds(session, booking_ids=[booking_id], client_ids=[client_id]))
