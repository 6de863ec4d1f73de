"""Erase dates: set when a recording is made, recomputed whenever a fact they depend on changes.

The facts: the practitioner's kind of work (tuition or therapy), the client's date of birth, their last
session, and whether the recording is flagged for safeguarding. A concern raised about its session flags
it for good; a safeguarding hold flags it while the hold lasts (a client-wide hold flags all the client's
recordings); a legal hold keeps it from erasure without changing its policy.
The recording service calls ``refresh_booking`` when a recording starts (a new session moves every
therapy date of that client); the safeguarding service when a concern is raised about a session and when
a hold is placed or lifted; the daily retention run refreshes everything, which also catches a session
held without a recording. Each change of date is audited.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import Booking, BookingStatus
from server.clock import Clock
from server.people.models import Client
from server.recording.holds import open_holds
from server.recording.models import Recording
from server.safeguarding.models import Concern
from server.storage_policies.loader import load_policies
from server.storage_policies.models import PolicySet, ProvisionType, RecordingKind
from server.storage_policies.rules import RecordingFacts, choose_policy, erase_date

ACTOR = Actor("system", "retention")


class EraseDates:
    def __init__(self, policies: PolicySet | Path, clock: Clock, audit: AuditLog,
                 zone_name: str = "Europe/London") -> None:
        """``policies`` may be the folder: loaded on first use, so a command that never needs it does not."""
        self._policies, self.clock, self.audit = policies, clock, audit
        self.zone = ZoneInfo(zone_name)

    @property
    def policies(self) -> PolicySet:
        if isinstance(self._policies, Path):
            self._policies = load_policies(self._policies)
        return self._policies

    def today(self) -> date:
        return self.clock.now().astimezone(self.zone).date()

    async def _active_holds(self, session: AsyncSession, booking: Booking) -> tuple[bool, bool]:
        """(held at all, held for a safeguarding concern): a legal hold keeps but does not flag."""
        holds = await open_holds(session, booking_ids=[booking.id], client_ids=[booking.client_id])
        return bool(holds), any(h.concern_id is not None for h in holds)

    @staticmethod
    async def _concern_about(session: AsyncSession, booking: Booking) -> bool:
        """A concern raised about this session flags its recordings for good (safeguarding_concern.toml)."""
        return bool(await session.scalar(select(func.count()).select_from(Concern).where(
            Concern.booking_id == booking.id)))

    async def facts(self, session: AsyncSession, recording: Recording) -> tuple[RecordingFacts, bool]:
        """The facts retention depends on, and whether a hold keeps the recording now."""
        booking = await session.get(Booking, recording.booking_id)
        assert booking is not None  # noqa: S101  (a foreign key)
        client = await session.get(Client, booking.client_id)
        practitioner = await session.get(Staff, booking.practitioner_id)
        assert client is not None and practitioner is not None  # noqa: S101  (foreign keys)
        session_day = booking.starts_at.astimezone(self.zone).date()
        last = await session.scalar(select(func.max(Booking.starts_at)).where(
            Booking.client_id == client.id, Booking.status != BookingStatus.CANCELLED,
            Booking.starts_at <= self.clock.now()))
        last_day = max(session_day, last.astimezone(self.zone).date() if last else session_day)
        held, safeguarding_hold = await self._active_holds(session, booking)
        return RecordingFacts(
            kind=RecordingKind.THERAPY if practitioner.is_therapist else RecordingKind.TUITION,
            provision=ProvisionType.BLENDED,  # live video and audio are the remote part of blended provision
            session_date=session_day, client_birth_date=client.date_of_birth, last_session_date=last_day,
            flagged_for_safeguarding=safeguarding_hold or await self._concern_about(session, booking),
        ), held

    async def refresh(self, session: AsyncSession, recording: Recording) -> tuple[date | None, bool]:
        """Recompute one recording's policy and erase date; audit a change. Returns (date, held)."""
        facts, held = await self.facts(session, recording)
        policy = choose_policy(self.policies, facts)
        day = erase_date(policy, facts)
        when = datetime.combine(day, time(0), self.zone).astimezone(UTC) if day else None
        if (recording.policy_id, recording.erase_at) != (policy.id, when):
            await self.audit.record(session, ACTOR, "recording.erase_date_set", f"recording:{recording.id}", {
                "policy": policy.id, "erase_on": day.isoformat() if day else None,
                "previous": recording.erase_at.isoformat() if recording.erase_at else None})
            recording.policy_id, recording.erase_at = policy.id, when
        return day, held

    async def refresh_client(self, session: AsyncSession, client_id: int) -> int:
        """Recompute every kept recording of a client (a fact about them changed); returns how many."""
        rows = (await session.scalars(select(Recording).join(Booking, Booking.id == Recording.booking_id).where(
            Booking.client_id == client_id, Recording.erased_at.is_(None)))).all()
        for rec in rows:
            await self.refresh(session, rec)
        return len(rows)

    async def refresh_booking(self, session: AsyncSession, booking_id: int) -> int:
        client_id = await session.scalar(select(Booking.client_id).where(Booking.id == booking_id))
        return await self.refresh_client(session, client_id) if client_id is not None else 0
