"""The retention job: every recording gets its erase date from storage_policies/, and is erased on time.

Each run (daily inside ``duet serve``, or ``duet retention run``) first recomputes every erase date from
the facts as they are now (a corrected date of birth, a later session, a safeguarding hold), then acts on
those that are due and not on hold. Erasure destroys the wrapped data key first (crypto-shredding: the
media is unreadable from that commit on, backups included) and audits it, then deletes the chunks from the
store and the spool. A crash between the two is finished by the next run, which also deletes the chunks
of recordings erased earlier.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Literal

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.accounts.models import Staff
from server.audit.log import Actor, AuditLog
from server.bookings.models import Booking, BookingStatus
from server.clock import Clock
from server.people.models import Client
from server.recording.models import Recording
from server.recording.stores import RecordingStore
from server.retention.policies import AtEnd, PolicySet, ProvisionType, RecordingKind
from server.retention.rules import RecordingFacts, choose_policy, erase_date
from server.safeguarding.models import RecordingHold

Action = Literal["erase", "review", "held", "finish_erasure"]
ACTOR = Actor("system", "retention")


@dataclass(frozen=True)
class Due:
    recording_id: str
    booking_id: int
    policy: str
    erase_on: str
    action: Action


class RetentionJob:
    def __init__(self, policies: PolicySet, clock: Clock, audit: AuditLog, store: RecordingStore,
                 spool_root: Path, zone_name: str = "Europe/London") -> None:
        self.policies, self.clock, self.audit, self.store = policies, clock, audit, store
        self.spool_root = spool_root
        from zoneinfo import ZoneInfo

        self.zone = ZoneInfo(zone_name)

    def today(self) -> date:
        return self.clock.now().astimezone(self.zone).date()

    # ---- facts and dates ------------------------------------------------------------------
    async def _active_hold(self, session: AsyncSession, booking: Booking) -> bool:
        found = await session.scalar(select(func.count()).select_from(RecordingHold).where(
            RecordingHold.lifted_at.is_(None),
            or_(RecordingHold.booking_id == booking.id, RecordingHold.client_id == booking.client_id)))
        return bool(found)

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
        held = await self._active_hold(session, booking)
        return RecordingFacts(
            kind=RecordingKind.THERAPY if practitioner.is_therapist else RecordingKind.TUITION,
            provision=ProvisionType.BLENDED,  # live video and audio are the remote part of blended provision
            session_date=session_day, client_birth_date=client.date_of_birth, last_session_date=last_day,
            flagged_for_safeguarding=held,
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

    # ---- the run ------------------------------------------------------------------------------
    async def run(self, sessionmaker: async_sessionmaker[AsyncSession], *, dry_run: bool = False) -> list[Due]:
        """Refresh every date, then erase (or list for review) what is due. Idempotent."""
        today = self.today()
        due: list[Due] = []
        async with sessionmaker() as session:
            rows = list((await session.scalars(select(Recording).where(Recording.erased_at.is_(None))
                                               .order_by(Recording.started_at))).all())
            for rec in rows:
                day, held = await self.refresh(session, rec)
                if day is None or day > today:
                    continue
                policy = next(p for p in self.policies if p.id == rec.policy_id)
                action: Action = "held" if held else (
                    "review" if policy.retention.at_end == AtEnd.REVIEW else "erase")
                due.append(Due(str(rec.id), rec.booking_id, policy.id, day.isoformat(), action))
            erased = list((await session.scalars(select(Recording).where(Recording.erased_at.is_not(None)))).all())
            for rec in erased:
                if await self.store.exists(rec.id) or (self.spool_root / str(rec.id)).exists():
                    due.append(Due(str(rec.id), rec.booking_id, rec.policy_id or "", "", "finish_erasure"))
            if dry_run:
                await session.rollback()
                return due
            await session.commit()
        for item in due:
            if item.action in ("erase", "finish_erasure"):
                await self.erase(sessionmaker, uuid.UUID(item.recording_id))
            elif item.action == "review":
                await self._list_for_review(sessionmaker, item)
        return due

    async def erase(self, sessionmaker: async_sessionmaker[AsyncSession], recording_id: uuid.UUID, *,
                    reason: str = "erase date reached") -> None:
        """Destroy the wrapped key (audited), then delete every chunk from the store and the spool."""
        async with sessionmaker() as session:
            rec = await session.get(Recording, recording_id)
            if rec is not None and rec.erased_at is None:
                rec.wrapped_key = None
                rec.erased_at = self.clock.now()
                await self.audit.record(session, ACTOR, "recording.erased", f"recording:{rec.id}", {
                    "booking": rec.booking_id, "policy": rec.policy_id, "reason": reason,
                    "erase_on": rec.erase_at.date().isoformat() if rec.erase_at else None})
                await session.commit()
        await self.store.delete_recording(recording_id)
        await asyncio.to_thread(shutil.rmtree, self.spool_root / str(recording_id), True)

    async def _list_for_review(self, sessionmaker: async_sessionmaker[AsyncSession], item: Due) -> None:
        async with sessionmaker() as session:
            seen = await session.scalar(select(func.count()).select_from(Recording).where(
                Recording.id == uuid.UUID(item.recording_id)))
            if seen:
                await self.audit.record(session, ACTOR, "recording.review_due", f"recording:{item.recording_id}",
                                        asdict(item))
                await session.commit()

    async def run_daily(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Inside ``duet serve``: a run at start-up, then one a day."""
        while True:
            await self.run(sessionmaker)
            await self.clock.sleep(24 * 3600)
