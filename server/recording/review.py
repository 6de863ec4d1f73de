"""Safeguarding review and export: every view and export audited with its reason; erased means gone.

The data key is unwrapped only here (review and export hold the private key; the media node does not).
A chunk that fails authentication is reported as damaged at that chunk, never served silently.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from server.audit.log import Actor, AuditLog
from server.errors import Gone, InvalidInput, NotFound
from server.recording.keywrap import KeyWrapper, WrappedKey
from server.recording.models import Recording
from server.recording.reader import RecordingReader
from server.recording.sealing import RecordingHeader
from server.recording.stores import RecordingStore

MIN_REASON = 10


class ReviewService:
    def __init__(self, store: RecordingStore, wrapper: KeyWrapper, audit: AuditLog) -> None:
        self.store, self.wrapper, self.audit = store, wrapper, audit

    async def get(self, session: AsyncSession, recording_id: str | uuid.UUID) -> Recording:
        try:
            rid = uuid.UUID(str(recording_id))
        except ValueError:
            raise NotFound(f"There is no recording {recording_id}.") from None
        row = await session.get(Recording, rid)
        if row is None:
            raise NotFound(f"There is no recording {recording_id}.")
        if row.erased_at is not None or row.wrapped_key is None:
            when = row.erased_at.date().isoformat() if row.erased_at else "an earlier date"
            raise Gone(f"Recording {rid} was erased on {when} under the {row.policy_id or 'retention'} policy.")
        return row

    async def audit_access(self, session: AsyncSession, actor: Actor, row: Recording, action: str,
                           reason: str) -> None:
        """Record who looked at or exported what, and why, before any byte is decrypted."""
        if len(reason.strip()) < MIN_REASON:
            raise InvalidInput(f"Give the reason for this {action} in at least {MIN_REASON} characters.",
                               field="reason")
        await self.audit.record(session, actor, f"recording.{action}", f"recording:{row.id}",
                                {"reason": reason.strip(), "booking": row.booking_id})

    async def reader(self, row: Recording) -> RecordingReader:
        assert row.wrapped_key is not None  # noqa: S101  (get() refuses erased recordings)
        key = self.wrapper.unwrap(WrappedKey(row.key_scheme, row.key_id, row.wrapped_key), row.id)
        return await RecordingReader.open(self.store, row.id, key, header=RecordingHeader.from_bytes(row.header))
