"""Storing check runs, the limits that keep the check endpoint safe, and the latest result per person."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.log import Actor, AuditLog
from server.checks.models import CheckRun
from server.checks.verdict import Measurements, Verdict, verdict
from server.clock import Clock
from server.errors import RateLimited

RUNS_PER_HOUR_PER_PERSON = 6
RUNS_PER_HOUR_PER_ADDRESS = 20


class CheckService:
    def __init__(self, clock: Clock, audit: AuditLog) -> None:
        self.clock, self.audit = clock, audit

    async def allow_run(self, session: AsyncSession, booking_id: int, subject: str, source: str) -> None:
        """Raises RateLimited when this person or this address has run the check too often this hour."""
        since = self.clock.now() - timedelta(hours=1)
        by_person = await session.scalar(select(func.count()).select_from(CheckRun).where(
            CheckRun.booking_id == booking_id, CheckRun.subject == subject, CheckRun.created_at >= since))
        by_address = await session.scalar(select(func.count()).select_from(CheckRun).where(
            CheckRun.source == source, CheckRun.created_at >= since))
        if (by_person or 0) >= RUNS_PER_HOUR_PER_PERSON or (by_address or 0) >= RUNS_PER_HOUR_PER_ADDRESS:
            raise RateLimited("You have run the check many times this hour. Try again later.", retry_after=3600)

    async def record(self, session: AsyncSession, actor: Actor, booking_id: int, subject: str, source: str,
                     measured: Measurements, device: str, shared_with: str, measures: str) -> tuple[CheckRun, Verdict]:
        result = verdict(measured)
        run = CheckRun(booking_id=booking_id, subject=subject, source=source[:100], created_at=self.clock.now(),
                       measurements=json.dumps(asdict(measured)), verdict=result.overall,
                       reasons=json.dumps(result.reasons), music_advisable=result.music_advisable,
                       music_reasons=json.dumps(result.music_reasons), device=device, shared_with=shared_with,
                       safeguarding_measures=measures)
        session.add(run)
        await session.flush()
        await self.audit.record(session, actor, "check.completed", f"booking:{booking_id}",
                                {"verdict": result.overall, "run": run.id})
        return run, result


    @staticmethod
    async def runs(session: AsyncSession, booking_id: int) -> list[CheckRun]:
        """Every check run for a booking, newest first (for its practitioner and the office)."""
        return list((await session.execute(select(CheckRun).where(CheckRun.booking_id == booking_id)
                                           .order_by(CheckRun.created_at.desc(), CheckRun.id.desc()))).scalars())


async def latest_check(session: AsyncSession, booking_id: int, subject: str) -> CheckRun | None:
    """The newest check this person ran for this booking (the 1-hour reminder nags when there is none)."""
    return (await session.execute(
        select(CheckRun).where(CheckRun.booking_id == booking_id, CheckRun.subject == subject)
        .order_by(CheckRun.created_at.desc(), CheckRun.id.desc()).limit(1)
    )).scalar_one_or_none()

