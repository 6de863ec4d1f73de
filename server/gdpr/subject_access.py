"""The subject access bundle (UK GDPR Art. 15): one ZIP file with everything held about a client.

It holds personal data, bookings (and visit details), consents, device-check results, chat, the audit
entries about the client, their guardians, bookings and recordings, and each recording decrypted to
WebM. Records kept for a safeguarding concern or under a hold are withheld and listed, so that the
safeguarding lead decides on them before anything is sent. The export is audited before any byte is
decrypted, and the file is written whole (temporary file, then rename) with mode 0600: it is as sensitive
as the recordings themselves.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.audit.log import Actor, AuditLog
from server.audit.models import AuditEvent
from server.bookings.models import SessionAttendance
from server.chat.models import ChatMessage
from server.checks.models import CheckRun
from server.clock import Clock
from server.consent.models import ConsentRecord
from server.errors import InvalidInput
from server.gdpr.subject import Subject, load_subject, safeguarding_policies
from server.plans.models import BlendedPlan, PlanBooking, PlanResource
from server.recording.models import Recording
from server.recording.reader import RecordingMissing
from server.recording.review import ReviewService
from server.recording.sealing import DamagedChunk, SealingError
from server.storage_policies.models import PolicySet
from server.visits.models import Visit, VisitRecord

README = """\
Subject access bundle for {name} (client {client_id}), made on {made} by {organisation}.

person.json      the client and the guardians linked to them, as held
bookings.json    every booking (sessions and visits), who was invited, and visit details
consents.json    every consent given or withdrawn for them or by them (records are never changed)
checks.json      device and connection check results
chat.json        chat messages in their sessions
attendance.json  who joined their live sessions, and when
plans.json       blended plans: goals, dates, which bookings belong to them, and their resources
audit.json       audit log entries about them, their bookings and their recordings
recordings.json  every recording: exported here, erased (with date and policy), or withheld
recordings/      the recordings, decrypted, as WebM video or audio

Withheld: {withheld}
Withheld records are held for a safeguarding concern or under a hold. The safeguarding lead must review
them before disclosure (Data Protection Act 2018, Schedule 3: serious harm, and child abuse data).
"""


@dataclass
class AccessBundle:
    path: Path
    recordings: int = 0  # decrypted into the bundle
    withheld: list[str] = field(default_factory=list)  # "recording:<id>" and audit entries, for the lead
    unreadable: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _after_visit(record: VisitRecord | None) -> dict[str, Any] | str | None:
    """The practitioner's record after the visit; one that notes safeguarding concerns is withheld for the
    safeguarding lead's review (DPA 2018 Sch. 3), and said so."""
    if record is None:
        return None
    if record.safeguarding_concerns:
        return "withheld for the safeguarding lead's review"
    return row_dict(record)


def _check_out(out: Path) -> None:
    """Refuse before anything is audited or decrypted: never overwrite, never write into nowhere."""
    if out.exists():
        raise InvalidInput(f"{out} already exists: choose a new file name, an old bundle is never overwritten.",
                           field="out")
    if not out.parent.is_dir():
        raise InvalidInput(f"The folder {out.parent} does not exist.", field="out")


def row_dict(row: object, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A mapped row's columns as JSON values (bytes, such as wrapped keys, are never exported)."""
    out: dict[str, Any] = {}
    for attr in inspect(row).mapper.column_attrs:
        value = getattr(row, attr.key)
        if attr.key not in skip and not isinstance(value, bytes):
            out[attr.key] = _plain(value)
    return out


class SubjectAccess:
    def __init__(self, review: ReviewService, policies: Callable[[], PolicySet], audit: AuditLog, clock: Clock,
                 organisation: str) -> None:
        self.review, self.audit, self.clock = review, audit, clock
        self.organisation = organisation
        self._safeguarding_of = policies  # read on first use: a process that never exports needs no policies

    @property
    def _safeguarding(self) -> set[str]:
        return safeguarding_policies(self._safeguarding_of())

    def _withhold(self, subject: Subject, rec: Recording) -> bool:
        return subject.is_held(rec) or rec.policy_id in self._safeguarding

    async def _tables(self, session: AsyncSession, s: Subject) -> dict[str, Any]:
        ids = s.booking_ids
        people = s.people
        names = {st.id: st.name for st in (await session.scalars(select(Staff))).all()}
        visits = {v.booking_id: v for v in (await session.scalars(
            select(Visit).where(Visit.booking_id.in_(ids)))).all()} if ids else {}
        records = await self._visit_records(session, s)
        bookings = [{
            **row_dict(b), "practitioner": names.get(b.practitioner_id),
            "invited": [i.subject for i in b.invitees],
            "visit": row_dict(visits[b.id]) | {"after_visit_record": _after_visit(records.get(visits[b.id].id))}
            if b.id in visits else None,
        } for b in s.bookings]
        attendance = (await session.scalars(select(SessionAttendance).where(SessionAttendance.booking_id.in_(ids))
                                            .order_by(SessionAttendance.first_joined_at))).all() if ids else []
        consents = (await session.scalars(select(ConsentRecord).where(
            or_(ConsentRecord.covers.in_(people), ConsentRecord.given_by.in_(people)))
            .order_by(ConsentRecord.given_at))).all()
        checks = (await session.scalars(select(CheckRun).where(CheckRun.booking_id.in_(ids))
                                        .order_by(CheckRun.created_at))).all() if ids else []
        chat = (await session.scalars(select(ChatMessage).where(ChatMessage.booking_id.in_(ids))
                                      .order_by(ChatMessage.sent_at))).all() if ids else []
        plans = (await session.scalars(select(BlendedPlan).where(BlendedPlan.client_id == s.client.id)
                                       .order_by(BlendedPlan.id))).all()
        plan_ids = [p.id for p in plans]
        resources = (await session.scalars(select(PlanResource).where(PlanResource.plan_id.in_(plan_ids))
                                           .order_by(PlanResource.id))).all() if plan_ids else []
        in_plans = (await session.scalars(select(PlanBooking).where(PlanBooking.plan_id.in_(plan_ids))
                                          )).all() if plan_ids else []
        targets = (people | {f"booking:{i}" for i in ids} | {f"recording:{r.id}" for r in s.recordings}
                   | {f"plan:{i}" for i in plan_ids})
        events = (await session.scalars(select(AuditEvent).where(
            or_(AuditEvent.target.in_(targets), AuditEvent.actor.in_(people))).order_by(AuditEvent.seq))).all()
        return {
            "person.json": {"client": row_dict(s.client), "guardians": [
                {**row_dict(g), "relationship": link.relationship_label,
                 "parental_responsibility": link.parental_responsibility}
                for link in s.client.guardians for g in [link.guardian]]},
            "bookings.json": bookings,
            "consents.json": [row_dict(c) for c in consents],
            "checks.json": [row_dict(c, skip=("source",)) | {"measurements": json.loads(c.measurements)}
                            for c in checks],
            "chat.json": [row_dict(m) for m in chat],
            "attendance.json": [row_dict(a) for a in attendance],
            "plans.json": [{**row_dict(p), "lead_practitioner": names.get(p.lead_practitioner_id),
                            "bookings": sorted(b.booking_id for b in in_plans if b.plan_id == p.id),
                            "resources": [row_dict(r) for r in resources if r.plan_id == p.id]} for p in plans],
            "audit.json": [row_dict(e, skip=("prev_hash", "hash")) for e in events],
        }

    @staticmethod
    async def _visit_records(session: AsyncSession, s: Subject) -> dict[int, VisitRecord]:
        """After-visit records of the client's visits, by visit id."""
        if not s.booking_ids:
            return {}
        return {r.visit_id: r for r in (await session.scalars(
            select(VisitRecord).join(Visit, Visit.id == VisitRecord.visit_id)
            .where(Visit.booking_id.in_(s.booking_ids)))).all()}

    def _withheld_event(self, event: dict[str, Any], withheld_recordings: set[str]) -> bool:
        action, details = str(event["action"]), str(event["details"])
        return (action.startswith(("concern.", "recording.hold")) or event["target"] in withheld_recordings
                or any(pid in details for pid in self._safeguarding))

    async def export(self, session: AsyncSession, actor: Actor, client_id: int, out: Path) -> AccessBundle:
        """Write the bundle to ``out`` (which must not exist yet); audited before decryption."""
        _check_out(out)
        s = await load_subject(session, client_id)
        tables = await self._tables(session, s)
        bundle = AccessBundle(out)
        listing: list[dict[str, Any]] = []
        to_export: list[Recording] = []
        for rec in s.recordings:
            entry: dict[str, Any] = {"id": str(rec.id), "booking_id": rec.booking_id,
                                     "started_at": _plain(rec.started_at), "ended_at": _plain(rec.ended_at)}
            if rec.erased_at is not None or rec.wrapped_key is None:
                erased = rec.erased_at.date().isoformat() if rec.erased_at else "an earlier date"
                entry["state"] = f"erased on {erased} under the {rec.policy_id or 'retention'} policy"
            elif self._withhold(s, rec):
                entry["state"] = "withheld for the safeguarding lead's review"
                bundle.withheld.append(f"recording:{rec.id}")
            else:
                entry |= {"state": "exported", "file": f"recordings/{rec.id}.webm",
                          "erase_on": rec.erase_at.date().isoformat() if rec.erase_at else None,
                          "policy": rec.policy_id}
                to_export.append(rec)
            listing.append(entry)
        concerned = [r for r in (await self._visit_records(session, s)).values() if r.safeguarding_concerns]
        bundle.withheld += [f"after-visit record {r.id} (safeguarding concerns)" for r in concerned]
        hidden = set(bundle.withheld)
        kept_events = [e for e in tables["audit.json"] if not self._withheld_event(e, hidden)]
        if len(kept_events) < len(tables["audit.json"]):
            bundle.withheld.append(f"{len(tables['audit.json']) - len(kept_events)} audit entries")
        tables["audit.json"] = kept_events

        reason = f"subject access request for client {client_id}"
        await self.audit.record(session, actor, "gdpr.access_exported", f"client:{client_id}", {
            "recordings": [str(r.id) for r in to_export], "withheld": bundle.withheld})
        for rec in to_export:
            await self.review.audit_access(session, actor, rec, "exported", reason)
        await session.commit()

        partial = out.with_name(f".{out.name}.partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as zf:
                made = self.clock.now().date().isoformat()
                zf.writestr("README.txt", README.format(
                    name=s.client.name, client_id=client_id, made=made, organisation=self.organisation,
                    withheld=", ".join(bundle.withheld) or "nothing"))
                for name, data in tables.items():
                    zf.writestr(name, json.dumps(data, indent=2, ensure_ascii=False, default=str))
                for rec in to_export:
                    if await self._write_recording(zf, rec, listing):
                        bundle.recordings += 1
                    else:
                        bundle.unreadable.append(str(rec.id))
                # Last: reading may have found damaged or missing recordings, and the listing says so.
                zf.writestr("recordings.json", json.dumps(listing, indent=2, ensure_ascii=False))
            os.replace(partial, out)
        finally:
            partial.unlink(missing_ok=True)
        return bundle

    async def _write_recording(self, zf: zipfile.ZipFile, rec: Recording, listing: list[dict[str, Any]]) -> bool:
        """Stream one recording's chunks into the ZIP; a damaged chunk is skipped and said so."""
        entry = next(e for e in listing if e["id"] == str(rec.id))
        try:
            reader = await self.review.reader(rec)
        except (RecordingMissing, SealingError) as exc:
            entry |= {"state": f"could not be read: {exc}", "file": None}
            return False
        damaged: list[int] = []
        with zf.open(f"recordings/{rec.id}.webm", "w", force_zip64=True) as media:
            async for chunk in reader.iter_chunks():
                if isinstance(chunk, DamagedChunk):
                    damaged.append(chunk.index)
                else:
                    media.write(chunk.plaintext)
        entry["completeness"] = reader.state.completeness.value
        if damaged:
            entry["damaged_chunks"] = damaged
        return True

