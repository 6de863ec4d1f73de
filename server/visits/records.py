"""The after-visit record (policies/002_* "After the visit": evidence the visit and share information; any
safeguarding concerns are discussed with the safeguarding lead on return).

Once checked out, the visit's own practitioner writes what happened and says whether there are safeguarding
concerns; one record per visit, not edited afterwards (something new is a concern, or a word with the
manager). Need-to-know (policies/002_*, 004_*): the practitioner, managers and the safeguarding lead read
it; other practitioners are told it does not exist, and the administration team's role cannot open it.
A "yes" does not raise a concern by itself: it points the practitioner to raising one, which starts the
24-hour discussion clock (server/safeguarding/services.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Role, Staff
from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.errors import Conflict, NotFound
from server.safeguarding.models import Concern
from server.subjects import Subject
from server.visits.models import VisitRecord
from server.visits.services import VisitService

READERS = frozenset({Role.MANAGER, Role.SAFEGUARDING})


@dataclass(frozen=True)
class AfterVisit:
    """A record with what the practitioner is asked to do next."""

    booking_id: int
    record: VisitRecord
    concern_ids: list[int]  # concerns its practitioner raised about this visit (not others': need-to-know)
    next_step: str | None


class VisitRecords:
    def __init__(self, clock: Clock, audit: AuditLog, visits: VisitService) -> None:
        self._clock = clock
        self._audit = audit
        self._visits = visits

    async def record(self, session: AsyncSession, actor: Actor, staff: Staff, booking_id: int, notes: str,
                     safeguarding_concerns: bool) -> AfterVisit:
        """The practitioner's record of a visit they have checked out of, audited (its text is not copied
        into the audit chain: like a concern, it stays in its own row).

        Raises:
            NotFound: no such visit among this practitioner's visits.
            Conflict: not checked out yet, or already recorded.
        """
        booking, visit = await self._visits.get(session, booking_id)
        if booking.practitioner_id != staff.id:
            raise NotFound(f"There is no visit with booking id {booking_id} among your visits.")
        if visit.checked_out_at is None:
            raise Conflict("Check out of the visit first: the after-visit record is made once you have left.")
        existing = await self._row(session, visit.id)
        if existing is not None:
            raise Conflict(f"The after-visit record of this visit was made at {existing.recorded_at:%Y-%m-%d %H:%M} "
                           "UTC and is not changed afterwards. Raise a concern, or tell your manager, about "
                           "anything new.")
        row = VisitRecord(visit_id=visit.id, notes=notes, safeguarding_concerns=safeguarding_concerns,
                          recorded_by_id=staff.id, recorded_at=self._clock.now())
        session.add(row)
        await session.flush()
        await self._audit.record(session, actor, "visit.after_record", f"booking:{booking.id}",
                                 {"record_id": row.id, "safeguarding_concerns": safeguarding_concerns})
        return await self._after(session, booking.id, row)

    async def get(self, session: AsyncSession, staff: Staff, booking_id: int) -> AfterVisit:
        """The record, for its practitioner, a manager or the safeguarding lead; NotFound for anyone else."""
        booking, visit = await self._visits.get(session, booking_id)
        if not staff.role_set & READERS and booking.practitioner_id != staff.id:
            raise NotFound(f"There is no visit with booking id {booking_id}.")
        row = await self._row(session, visit.id)
        if row is None:
            raise NotFound(f"No after-visit record has been made for visit {booking_id} yet.")
        return await self._after(session, booking.id, row)

    @staticmethod
    async def _row(session: AsyncSession, visit_id: int) -> VisitRecord | None:
        return (await session.execute(select(VisitRecord).where(VisitRecord.visit_id == visit_id))
                ).scalar_one_or_none()

    @staticmethod
    async def _after(session: AsyncSession, booking_id: int, row: VisitRecord) -> AfterVisit:
        concerns = list((await session.execute(select(Concern.id).where(
            Concern.booking_id == booking_id, Concern.raised_by == Subject.staff(row.recorded_by_id))
            .order_by(Concern.id))).scalars())
        step = None
        if row.safeguarding_concerns and not concerns:
            step = (f"You recorded safeguarding concerns: raise a concern now (POST /api/v1/concerns with booking_id "
                    f"{booking_id}) so that the safeguarding lead has it and a manager discusses it within 24 hours. "
                    "If a child is in immediate danger, call 999 first.")
        elif row.safeguarding_concerns:
            step = ("You recorded safeguarding concerns; concern " + ", ".join(str(c) for c in concerns)
                    + " is raised for this visit. Discuss it with the safeguarding lead on your return.")
        return AfterVisit(booking_id, row, concerns, step)
