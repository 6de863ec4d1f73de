"""The safeguarding lead's recordings list: who, when, how long, what the consents allow now, and holds.

Consent scopes are worked out for today, not for the day of the recording: a family that has since withdrawn
feedback use, or a child who has turned 18 without consenting themselves, limits what the recording may be
used for from now on (policies/000_*: "subject to the consent's parameters"). Whose consent counts is read
from the ``recording.started`` audit event, which names everyone seen or heard when the segment began.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import Staff
from server.audit.models import AuditEvent
from server.bookings.models import Booking
from server.consent.rules import holds
from server.consent.services import SCOPES, ConsentService
from server.people.models import Client
from server.recording.holds import covers, open_holds
from server.recording.models import Recording, RecordingStatus


@dataclass(frozen=True)
class HoldSummary:
    kind: str  # "safeguarding" (placed with a concern) or "legal"
    reason: str
    placed_at: datetime


@dataclass(frozen=True)
class Listed:
    id: str
    booking_id: int
    client: str
    practitioner: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int | None  # None while live, or when interrupted (its true end is not known here)
    status: str
    policy: str | None
    erase_at: datetime | None
    erased_at: datetime | None
    people: list[str] = field(default_factory=list)
    consent_scopes: list[str] = field(default_factory=list)  # uses every recorded person's consent allows today
    holds: list[HoldSummary] = field(default_factory=list)


async def _people(session: AsyncSession, recording_ids: set[str]) -> dict[str, list[str]]:
    events = (await session.scalars(select(AuditEvent).where(AuditEvent.action == "recording.started"))).all()
    found: dict[str, list[str]] = {}
    for event in events:
        details = json.loads(event.details or "{}")
        if details.get("recording_id") in recording_ids:
            found[details["recording_id"]] = list(details.get("people", []))
    return found


async def list_recordings(session: AsyncSession, consent: ConsentService, today: date) -> list[Listed]:
    rows = (await session.execute(
        select(Recording, Booking, Client, Staff)
        .join(Booking, Booking.id == Recording.booking_id)
        .join(Client, Client.id == Booking.client_id)
        .join(Staff, Staff.id == Booking.practitioner_id)
        .order_by(Recording.started_at.desc())
    )).all()
    people = await _people(session, {str(r.id) for r, *_ in rows})
    facts = await consent.facts(session, {p for group in people.values() for p in group})
    held = await open_holds(session, booking_ids=[b.id for _, b, _, _ in rows],
                            client_ids=[b.client_id for _, b, _, _ in rows])
    listed = []
    for recording, booking, client, practitioner in rows:
        recorded = people.get(str(recording.id), [])
        scopes = [scope for scope in SCOPES if recorded and recording.erased_at is None
                  and all(holds(facts, person, today, scope) is None for person in recorded)]
        duration = None
        if recording.status == RecordingStatus.STOPPED.value and recording.ended_at is not None:
            duration = round((recording.ended_at - recording.started_at).total_seconds())
        kept = [HoldSummary("safeguarding" if h.concern_id is not None else "legal", h.reason, h.placed_at)
                for h in held if covers(h, booking.id, booking.client_id)]
        listed.append(Listed(
            str(recording.id), booking.id, client.name, practitioner.name, recording.started_at,
            recording.ended_at, duration, recording.status, recording.policy_id, recording.erase_at,
            recording.erased_at, recorded, scopes, kept))
    return listed
