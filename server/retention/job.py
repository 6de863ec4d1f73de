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
import logging
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.recording.models import Recording
from server.recording.stores import RecordingStore
from server.retention.dates import ACTOR, EraseDates
from server.storage_policies.models import AtEnd, PolicySet

log = logging.getLogger("duet.retention")
Action = Literal["erase", "review", "held", "finish_erasure"]


@dataclass(frozen=True)
class Due:
    recording_id: str
    booking_id: int
    policy: str
    erase_on: str
    action: Action


DAY = 24 * 3600.0


class RetentionJob:
    def __init__(self, dates: EraseDates, store: RecordingStore, spool_root: Path) -> None:
        self.dates = dates
        self.clock, self.audit, self.store = dates.clock, dates.audit, store
        self.spool_root = spool_root
        self._last_run: float | None = None  # monotonic time of the last run that finished

    @property
    def policies(self) -> PolicySet:
        return self.dates.policies

    def today(self) -> date:
        return self.dates.today()

    async def refresh(self, session: AsyncSession, recording: Recording) -> tuple[date | None, bool]:
        return await self.dates.refresh(session, recording)

    # ---- the run ------------------------------------------------------------------------------
    async def run(self, sessionmaker: async_sessionmaker[AsyncSession], *, dry_run: bool = False) -> list[Due]:
        """Refresh every date, then erase (or list for review) what is due. Idempotent."""
        today = self.today()
        for policy in self.policies.reviews_due(today):
            log.warning("storage policy %s (%s) was due for review on %s", policy.id, policy.source_file,
                        policy.next_review)
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

    @property
    def last_run_ago(self) -> timedelta | None:
        """How long since the last run finished in this process (None: not yet)."""
        return None if self._last_run is None else timedelta(seconds=self.clock.monotonic() - self._last_run)

    async def run_if_due(self, sessionmaker: async_sessionmaker[AsyncSession]) -> bool:
        """Inside ``duet serve`` (called every hour): a run at start-up, then one a day.

        A failed run (the store or the database away) raises, and the hourly call tries again: the job
        never stops for good, and erasure is idempotent, so a retry finishes what the failure left.
        Returns whether it ran.
        """
        now = self.clock.monotonic()
        if self._last_run is not None and now - self._last_run < DAY:
            return False
        await self.run(sessionmaker)
        self._last_run = now
        return True
