"""Erasure on request (UK GDPR Art. 17): erase what may be erased, say what must be kept and until when.

Each recording's fate comes from its storage policy's ``[erasure_request]`` and from holds: a held
recording is kept until the hold is lifted; a policy that names an Art. 17(3) exemption keeps it until its
erase date. Recordings are erased the way the retention job erases them (crypto-shredding, then the
chunks), so a crash half-way is finished by the next retention run. The client's name and contact details
go only when nothing kept still needs to say whose it is; consent records and the audit log stay, as the
evidence that what was done was lawful, and they hold references ("client:4"), not names.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor, AuditLog
from server.bookings.models import BookingStatus
from server.chat.models import ChatMessage
from server.checks.models import CheckRun
from server.clock import Clock
from server.errors import Conflict
from server.gdpr.subject import Subject, load_subject
from server.links.services import LinkService
from server.mail.models import OutboxMessage
from server.plans.models import BlendedPlan, PlanResource
from server.recording.models import RecordingStatus
from server.retention.job import RetentionJob
from server.storage_policies.models import AtEnd
from server.visits.models import Visit, VisitRecord

KEPT_RECORDS = (
    "Consent records and the audit log are kept: they are the evidence that recording and erasure were "
    "lawful (Art. 7(1), Art. 17(3)(e)), and they name people only by reference (client:ID)."
)


@dataclass(frozen=True)
class Kept:
    what: str
    until: date | None  # None: until the hold is lifted
    why: str
    then_reviewed: bool = False  # at the date the safeguarding lead reviews it rather than it going

    def describe(self) -> str:
        when = f"until {self.until.isoformat()}" if self.until else "until the hold is lifted"
        then = " (then reviewed by the safeguarding lead)" if self.then_reviewed else ""
        return f"kept {self.what} {when}{then}: {self.why}"


@dataclass
class ErasureReport:
    client_id: int
    dry_run: bool
    erased_recordings: list[str] = field(default_factory=list)
    kept: list[Kept] = field(default_factory=list)
    personal_details: str = ""
    removed: dict[str, int] = field(default_factory=dict)
    note: str = KEPT_RECORDS

    def lines(self) -> list[str]:
        """The report as a person reads it."""
        verb = "would erase" if self.dry_run else "erased"
        out = [f"client {self.client_id}: {verb} {len(self.erased_recordings)} recording(s)"]
        out += [f"  {verb} recording {rid}" for rid in self.erased_recordings]
        out += [f"  {k.describe()}" for k in self.kept]
        out.append(f"personal details: {self.personal_details}")
        out += [f"  {'would remove' if self.dry_run else 'removed'} {n} {what}"
                for what, n in self.removed.items() if n]
        out.append(self.note)
        return out


class ClientErasure:
    def __init__(self, job: RetentionJob, links: LinkService, audit: AuditLog, clock: Clock) -> None:
        self.job, self.links, self.audit, self.clock = job, links, audit, clock

    async def _refuse_if_active(self, session: AsyncSession, s: Subject) -> None:
        now = self.clock.now()
        ahead = [b for b in s.bookings if b.ends_at > now
                 and b.status in (BookingStatus.CONFIRMED, BookingStatus.REQUESTED)]
        if ahead:
            listed = ", ".join(f"{b.id} on {b.starts_at.date().isoformat()}" for b in ahead)
            raise Conflict(f"Client {s.client.id} still has bookings that have not ended ({listed}). Cancel them "
                           "first; nothing was erased.")
        if any(r.status in (RecordingStatus.ACTIVE, RecordingStatus.PAUSED) and r.erased_at is None
               for r in s.recordings):
            raise Conflict(f"A recording of client {s.client.id} is still in progress; nothing was erased.")

    async def _decide(self, session: AsyncSession, s: Subject, report: ErasureReport) -> list[uuid.UUID]:
        """Refresh each recording's policy and date, then sort it into erase or keep."""
        to_erase: list[uuid.UUID] = []
        for rec in s.recordings:
            if rec.erased_at is not None:
                continue
            day, held = await self.job.refresh(session, rec)
            policy = self.job.policies.by_id(rec.policy_id or "")
            what = f"recording {rec.id} (booking {rec.booking_id}, {rec.started_at.date().isoformat()})"
            if held:
                report.kept.append(Kept(what, None, "a safeguarding or legal hold is in place (Art. 17(3)(e))"))
            elif not policy.erasure_request.erase:
                report.kept.append(Kept(what, day, f"{policy.name}: {policy.erasure_request.reason}",
                                        then_reviewed=policy.retention.at_end is AtEnd.REVIEW))
            else:
                to_erase.append(rec.id)
        return to_erase

    async def erase(self, sessionmaker: async_sessionmaker[AsyncSession], actor: Actor, client_id: int, *,
                    dry_run: bool = False) -> ErasureReport:
        report = ErasureReport(client_id, dry_run)
        async with sessionmaker() as session:
            s = await load_subject(session, client_id)
            await self._refuse_if_active(session, s)
            to_erase = await self._decide(session, s, report)
            report.erased_recordings = [str(r) for r in to_erase]
            kept_bookings = {r.booking_id for r in s.recordings if r.erased_at is None and r.id not in to_erase}
            report.removed = await self._remove_session_data(session, s, kept_bookings)
            if report.kept:
                last = max((k.until for k in report.kept if k.until), default=None)
                report.personal_details = "kept, because the records above must still say whose they are" + (
                    f"; ask again after {last.isoformat()}" if last else "")
            else:
                report.personal_details = "erased (name, contact details, address; date of birth cut to the year)"
                report.removed["login links revoked"] = await self._forget_person(session, actor, s)
            if dry_run:
                await session.rollback()
                return report
            await self.audit.record(session, actor, "gdpr.erasure_request", f"client:{client_id}", {
                "erased": report.erased_recordings, "kept": [k.what for k in report.kept],
                "personal_details": "kept" if report.kept else "erased", "removed": report.removed})
            await session.commit()
        for rid in to_erase:
            await self.job.erase(sessionmaker, rid, reason=f"erasure request for client {client_id}")
        return report

    async def _remove_session_data(self, session: AsyncSession, s: Subject, kept_bookings: set[int]
                                   ) -> dict[str, int]:
        """Device checks and sent emails always go; chat goes unless a kept recording's session needs it."""
        ids = s.booking_ids
        if not ids:
            return {}
        checks = await session.execute(delete(CheckRun).where(CheckRun.booking_id.in_(ids)))
        mails = await session.execute(delete(OutboxMessage).where(OutboxMessage.booking_id.in_(ids)))
        chat_ids = [i for i in ids if i not in kept_bookings]
        chat = await session.execute(delete(ChatMessage).where(ChatMessage.booking_id.in_(chat_ids))) \
            if chat_ids else None
        return {"device check results": _count(checks), "emails": _count(mails),
                "chat messages": _count(chat) if chat is not None else 0}

    async def _forget_person(self, session: AsyncSession, actor: Actor, s: Subject) -> int:
        """Pseudonymise the client and their sole guardians, blank visit addresses, revoke every link."""
        c = s.client
        c.first_name, c.last_name, c.email, c.address, c.lat, c.lon = "Erased", f"client {c.id}", None, "", None, None
        c.date_of_birth, c.status = date(c.date_of_birth.year, 1, 1), "erased"
        for g in s.sole_guardians:
            g.name, g.email, g.phone, g.status = f"Erased guardian {g.id}", f"erased-{g.id}@invalid", "", "erased"
        visits = (await session.scalars(select(Visit).where(Visit.booking_id.in_(s.booking_ids)))).all() \
            if s.booking_ids else []
        for v in visits:
            v.address, v.lat, v.lon, v.itinerary_address = "", None, None, None
            v.responsible_adult, v.home_reason, v.conditions_evidence = None, None, None
        records = (await session.scalars(select(VisitRecord).where(
            VisitRecord.visit_id.in_([v.id for v in visits])))).all() if visits else []
        for record in records:  # one that notes safeguarding concerns is a safeguarding record: kept
            if not record.safeguarding_concerns:
                record.notes = "Erased on request."
        plans = (await session.scalars(select(BlendedPlan).where(BlendedPlan.client_id == c.id))).all()
        for plan in plans:  # what a plan says about the client; that it existed stays, as bookings do
            plan.title, plan.goals, plan.ended_reason = f"Erased plan {plan.id}", "", None
        if plans:
            await session.execute(delete(PlanResource).where(PlanResource.plan_id.in_([p.id for p in plans])))
        revoked = 0
        for booking_id in s.booking_ids:
            revoked += await self.links.revoke_for_booking(session, actor, booking_id,
                                                           "personal data erased on request")
        return revoked


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)

