"""What waits for a manager before it can go ahead: evening work to agree (policies/000_*, 002_*, 003_*) and
visits to authorise with their purpose (policies/001_*, 003_*).

Worked out from the bookings whenever asked, never stored, like the blocks themselves
(server/bookings/evening.py): an agreement or an authorisation takes the booking off the list at once.
Evening agreement comes first: a visit cannot be authorised while it waits for one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.bookings.evening import EveningWork
from server.bookings.models import LIVE, Booking, BookingKind, BookingStatus
from server.people.models import Client

EVENING = "evening agreement"
AUTHORISATION = "authorisation"


@dataclass(frozen=True)
class Waiting:
    booking: Booking
    client: str
    practitioner: str
    needs: str  # EVENING or AUTHORISATION
    reason: str


async def waiting_for_a_manager(session: AsyncSession, evening: EveningWork, now: datetime) -> list[Waiting]:
    """Bookings not yet over that wait for a manager's agreement or authorisation, soonest first."""
    rows = (await session.execute(
        select(Booking, Client.first_name, Client.last_name, Staff.name)
        .join(Client, Client.id == Booking.client_id).join(Staff, Staff.id == Booking.practitioner_id)
        .where(Booking.status.in_(LIVE), Booking.starts_at >= now).order_by(Booking.starts_at))).all()
    found = []
    for booking, first, last, practitioner in rows:
        client = f"{first} {last}"
        if (why := await evening.block(session, booking)) is not None:
            found.append(Waiting(booking, client, practitioner, EVENING, why))
        elif booking.status == BookingStatus.REQUESTED and not BookingKind(booking.kind).is_remote:
            found.append(Waiting(booking, client, practitioner, AUTHORISATION,
                                 "a visit is confirmed only once authorised with its purpose (policies/001_*, 003_*)"))
    return found
