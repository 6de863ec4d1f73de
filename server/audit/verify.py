"""Walk the audit chain with the key and against the checkpoints; name the first event that fails.

Used by ``duet audit verify``, the daily job and (later) an audit page, through ``AuditLog.verify``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.anchors import Checkpoint, Loaded
from server.audit.chain import GENESIS, event_hash, keyed_hash
from server.audit.models import AuditEvent, AuditHead
from server.keys import constant_time_equal


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    problem: str = ""
    event_seq: int | None = None  # the first event that is wrong or missing
    checkpoints: int = 0
    anchored_seq: int = 0  # the newest event a checkpoint vouches for
    legacy_events: int = 0  # from before the chain was keyed, sealed by the first keyed event

    def lines(self) -> list[str]:
        """What ``duet audit verify`` prints."""
        if not self.ok:
            where = f" at event {self.event_seq}" if self.event_seq is not None else ""
            return [f"audit log BROKEN{where}: {self.problem}"]
        out = [f"audit log OK: {self.events} events, chain intact"]
        if self.checkpoints:
            out.append(f"checked against {self.checkpoints} checkpoint(s); the newest covers event {self.anchored_seq}"
                       f" ({max(0, self.events - self.anchored_seq)} written since)")
        else:
            out.append("no checkpoint files yet: a removed tail or an emptied log could not be told from a short one")
        if self.legacy_events:
            out.append(f"{self.legacy_events} event(s) from before the chain was keyed (sealed by the first keyed one)")
        return out


def _broken(problem: str, count: int, seq: int | None, checkpoints: list[Checkpoint]) -> VerifyResult:
    return VerifyResult(False, count, problem, seq, len(checkpoints))


async def walk(session: AsyncSession, key: bytes, loaded: Loaded) -> VerifyResult:
    """Check every event's link and keyed hash, every checkpoint's event, and that none was cut off."""
    checkpoints = loaded.checkpoints
    if loaded.problem:
        return _broken(loaded.problem, 0, None, checkpoints)
    head = (await session.execute(select(AuditHead).where(AuditHead.id == 1))).scalar_one_or_none()
    anchored_from = {c.head.keyed_from for c in checkpoints if c.head.keyed_from is not None}
    if len(anchored_from) > 1:
        return _broken("the checkpoints disagree on where the keyed chain starts", 0, None, checkpoints)
    keyed_from = min(anchored_from) if anchored_from else (head.keyed_from if head is not None else None)
    pending = deque(checkpoints)
    prev, expected, count, legacy, seen_keyed = GENESIS, 1, 0, 0, False
    result = await session.stream_scalars(select(AuditEvent).order_by(AuditEvent.seq))
    async for ev in result:
        count += 1
        if ev.seq != expected:
            if ev.seq > expected:
                return _broken(f"event {expected} was removed (next is {ev.seq})", count, expected, checkpoints)
            return _broken(f"event {ev.seq} is out of order", count, ev.seq, checkpoints)
        if ev.prev_hash != prev:
            return _broken(f"event {ev.seq} does not follow event {ev.seq - 1}: inserted or re-chained", count,
                           ev.seq, checkpoints)
        fields = (prev, ev.seq, ev.at, ev.actor, ev.action, ev.target, ev.details, ev.source)
        if constant_time_equal(keyed_hash(key, *fields), ev.hash):
            seen_keyed = True
        elif not seen_keyed and (keyed_from is None or ev.seq < keyed_from) and event_hash(*fields) == ev.hash:
            legacy += 1
        else:
            return _broken(f"event {ev.seq} was changed after it was written, or forged: its keyed hash does not "
                           "check", count, ev.seq, checkpoints)
        while pending and pending[0].head.seq <= ev.seq:
            anchor = pending.popleft()
            if anchor.head.hash != ev.hash:
                return _broken(f"event {ev.seq} is not the one checkpoint {anchor.file} recorded: the log was "
                               "rewritten up to here", count, ev.seq, checkpoints)
        prev = ev.hash
        expected += 1
    last = expected - 1
    if pending:
        newest = pending[-1]
        if last == 0:
            return _broken(f"the audit log is empty, but checkpoint {newest.file} (written {newest.written_at}) "
                           f"records {newest.head.seq} events: the log was wiped", 0, 1, checkpoints)
        return _broken(f"events {last + 1} to {newest.head.seq} were removed: checkpoint {newest.file} (written "
                       f"{newest.written_at}) records event {newest.head.seq}", count, last + 1, checkpoints)
    if head is not None and (head.seq != last or head.last_hash != prev):
        return _broken(f"events after {last} were removed (the log ended at {head.seq})", count, last + 1,
                       checkpoints)
    if head is None and count:
        return _broken("the audit head is missing", count, None, checkpoints)
    if head is not None and head.keyed_from not in (None, keyed_from):
        return _broken(f"the audit head was changed: it says keyed events start at {head.keyed_from}, the "
                       f"checkpoints say {keyed_from}", count, None, checkpoints)
    anchored = checkpoints[-1].head.seq if checkpoints else 0
    return VerifyResult(True, count, checkpoints=len(checkpoints), anchored_seq=anchored, legacy_events=legacy)
