"""Append-only, hash-chained audit log (every safeguarding-relevant change is audited).

Each event's hash is SHA-256 over the previous hash and a canonical encoding of the event. An event is
written in the caller's transaction, so a change and its audit entry commit or roll back together.
Appends are serialised by an ``UPDATE audit_head ... RETURNING``: the row lock on PostgreSQL, the write
lock on SQLite. ``verify`` walks the chain and names the first event that was changed, removed or inserted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.models import AuditEvent, AuditHead
from server.clock import Clock

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    """Who did something, and from where."""

    ref: str  # "staff:3", "guardian:7", "client:2", "system", "cli"
    source: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls("system", "duet")


def _canonical(seq: int, at: datetime, actor: str, action: str, target: str, details: str, source: str) -> bytes:
    return json.dumps(
        [seq, at.astimezone(UTC).isoformat(timespec="microseconds"), actor, action, target, details, source],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def event_hash(
    prev: str, seq: int, at: datetime, actor: str, action: str, target: str, details: str, source: str
) -> str:
    return hashlib.sha256(prev.encode() + _canonical(seq, at, actor, action, target, details, source)).hexdigest()


class AuditLog:
    """Writes audit events; the only way events are created."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def record(
        self,
        session: AsyncSession,
        actor: Actor,
        action: str,
        target: str,
        details: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """Append one event inside ``session``'s transaction (the caller commits)."""
        row = (
            await session.execute(
                text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, last_hash")
            )
        ).first()
        if row is None:
            session.add(AuditHead(id=1, seq=1, last_hash=GENESIS))
            await session.flush()
            seq, prev = 1, GENESIS
        else:
            seq, prev = int(row[0]), str(row[1])
        at = self._clock.now()
        body = json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), default=str)
        digest = event_hash(prev, seq, at, actor.ref, action, target, body, actor.source)
        event = AuditEvent(
            seq=seq, at=at, actor=actor.ref, action=action, target=target, details=body,
            source=actor.source, prev_hash=prev, hash=digest,
        )
        session.add(event)
        await session.execute(text("UPDATE audit_head SET last_hash = :h WHERE id = 1"), {"h": digest})
        await session.flush()
        return event


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    problem: str = ""
    event_seq: int | None = None


async def verify(session: AsyncSession) -> VerifyResult:
    """Check the whole chain; the first broken link is named by its sequence number."""
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one_or_none()
    prev, expected_seq, count = GENESIS, 1, 0
    result = await session.stream_scalars(select(AuditEvent).order_by(AuditEvent.seq))
    async for ev in result:
        count += 1
        if ev.seq != expected_seq:
            if ev.seq > expected_seq:
                return VerifyResult(False, count, f"event {expected_seq} was removed (next is {ev.seq})", expected_seq)
            return VerifyResult(False, count, f"event {ev.seq} is out of order", ev.seq)
        if ev.prev_hash != prev:
            return VerifyResult(
                False, count, f"event {ev.seq} does not follow event {ev.seq - 1}: inserted or re-chained", ev.seq
            )
        if event_hash(prev, ev.seq, ev.at, ev.actor, ev.action, ev.target, ev.details, ev.source) != ev.hash:
            return VerifyResult(False, count, f"event {ev.seq} was changed after it was written", ev.seq)
        prev = ev.hash
        expected_seq += 1
    if head is not None and (head.seq != expected_seq - 1 or head.last_hash != prev):
        return VerifyResult(False, count, f"events after {expected_seq - 1} were removed (the log ended at {head.seq})",
                            expected_seq)
    if head is None and count:
        return VerifyResult(False, count, "the audit head is missing", None)
    return VerifyResult(True, count)
