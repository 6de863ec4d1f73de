"""A recording row for tests of what happens around recordings (retention, holds), not of their media."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from server.recording.models import Recording


async def add_fake_recording(session: AsyncSession, booking_id: int, at: datetime) -> uuid.UUID:
    """A stopped recording with a stand-in wrapped key and header (never opened), flushed; returns its id."""
    rid = uuid.uuid4()
    session.add(Recording(id=rid, booking_id=booking_id, status="stopped", key_scheme="x25519", key_id="k",
                          wrapped_key=b"wrapped", header=b"header", store_key=str(rid), started_by="staff:1",
                          started_at=at, ended_at=at))
    await session.flush()
    return rid
