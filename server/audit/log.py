"""Append-only, keyed hash chain of audit events (every safeguarding-relevant change is audited).

Each event's hash is an HMAC-SHA256, under a key derived from the app secret (``server.keys``, never in the
database), over the previous hash and a canonical encoding of the event. Someone who can write the database
but not read ``<home>/keys`` cannot change, insert, remove or renumber an event and re-hash what follows:
``verify`` names the first event that does not check. Signed checkpoint files outside the database
(``server.audit.anchors``), written every ``DUET_AUDIT_CHECKPOINT_EVERY`` events and by the daily job, catch
what a valid chain cannot show by itself: a cut tail with the head rewound, or an emptied log.

An event is written in the caller's transaction, so a change and its audit entry commit or roll back
together; a checkpoint is written only after that commit. Appends are serialised by an
``UPDATE audit_head ... RETURNING``: the row lock on PostgreSQL, the write lock on SQLite.

Chains written before the key (plain SHA-256) stay readable: ``audit_head.keyed_from`` (copied into every
checkpoint) is the first keyed event, whose hash seals everything before it; after it, only keyed events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event as orm_event
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from server.audit.anchors import CheckpointFiles, Head
from server.audit.chain import GENESIS, event_hash, keyed_hash
from server.audit.models import AuditEvent, AuditHead
from server.audit.verify import VerifyResult, walk
from server.clock import Clock
from server.keys import AppKeys

CHAIN_PURPOSE = "audit-chain"
_PENDING = "duet.audit.checkpoint"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Actor:
    """Who did something, and from where."""

    ref: str  # "staff:3", "guardian:7", "client:2", "system", "cli"
    source: str = ""

    @classmethod
    def system(cls) -> Actor:
        return cls("system", "duet")


def _write_pending(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    if pending is None:
        return
    anchors, head, at = pending
    try:
        anchors.write(head, at)
    except OSError:  # the events are committed; a missing checkpoint only narrows what verify can prove
        log.exception("could not write the audit checkpoint for event %d to %s", head.seq, anchors.folder)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING, None)


class AuditLog:
    """Writes audit events (the only way events are created), checkpoints the head, and verifies."""

    def __init__(self, clock: Clock, keys: AppKeys, anchors: Path, checkpoint_every: int = 100) -> None:
        self._clock = clock
        self._key = keys.derive(CHAIN_PURPOSE)
        self.anchors = CheckpointFiles(anchors, keys)
        self.checkpoint_every = checkpoint_every

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
                text("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, last_hash, keyed_from")
            )
        ).first()
        if row is None:
            session.add(AuditHead(id=1, seq=1, last_hash=GENESIS, keyed_from=1))
            await session.flush()
            seq, prev, keyed_from = 1, GENESIS, 1
        else:
            seq, prev = int(row[0]), str(row[1])
            keyed_from = int(row[2]) if row[2] is not None else seq  # the first keyed event of an old chain
        at = self._clock.now()
        body = json.dumps(dict(details or {}), sort_keys=True, separators=(",", ":"), default=str)
        digest = keyed_hash(self._key, prev, seq, at, actor.ref, action, target, body, actor.source)
        event = AuditEvent(
            seq=seq, at=at, actor=actor.ref, action=action, target=target, details=body,
            source=actor.source, prev_hash=prev, hash=digest,
        )
        session.add(event)
        await session.execute(text("UPDATE audit_head SET last_hash = :h, keyed_from = :k WHERE id = 1"),
                              {"h": digest, "k": keyed_from})
        await session.flush()
        if seq % self.checkpoint_every == 0 or _PENDING in session.sync_session.info:
            self._checkpoint_after_commit(session.sync_session, Head(seq, digest, keyed_from), at)
        return event

    def _checkpoint_after_commit(self, session: Session, head: Head, at: datetime) -> None:
        """Anchor ``head`` once the transaction commits (a rolled-back seq is reused, so never before)."""
        if not orm_event.contains(session, "after_commit", _write_pending):
            orm_event.listen(session, "after_commit", _write_pending)
            orm_event.listen(session, "after_rollback", _drop_pending)
        session.info[_PENDING] = (self.anchors, head, at)

    async def head(self, session: AsyncSession) -> Head | None:
        row = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one_or_none()
        return None if row is None or row.seq == 0 else Head(row.seq, row.last_hash, row.keyed_from)

    async def checkpoint(self, session: AsyncSession) -> Path | None:
        """Anchor the committed head now (the daily job, start-up); None when it is anchored already."""
        head = await self.head(session)
        await session.rollback()  # read only; end the snapshot
        return None if head is None else self.anchors.write(head, self._clock.now())

    async def verify(self, session: AsyncSession) -> VerifyResult:
        """Check every event with the key and against every checkpoint; name the first that fails."""
        return await walk(session, self._key, self.anchors.load())


__all__ = ["GENESIS", "Actor", "AuditLog", "VerifyResult", "event_hash", "keyed_hash"]
