"""A recording's database row (its wrapped data key and header live here before any chunk exists), and the
holds that keep recordings from erasure.

``RecordingHold`` is the contract with retention: while a row for a booking (or for every booking of a
client) has ``lifted_at`` NULL, recordings it covers must not be deleted, whatever their policy says.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, LargeBinary, String, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class RecordingStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"  # the server stopped mid-recording; playable to its last sealed chunk


class Recording(Base):
    __tablename__ = "recordings"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'paused', 'stopped', 'interrupted')", name="status"),
        # one live recorder per session, enforced by the database as well as the service's lock
        Index("uq_recordings_one_live", "booking_id", unique=True,
              sqlite_where=text("status IN ('active', 'paused')"),
              postgresql_where=text("status IN ('active', 'paused')")),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    status_reason: Mapped[str | None] = mapped_column(String(500))
    key_scheme: Mapped[str] = mapped_column(String(40))
    key_id: Mapped[str] = mapped_column(String(200))
    wrapped_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # None once erased (crypto-shredded)
    header: Mapped[bytes] = mapped_column(LargeBinary)
    store_key: Mapped[str] = mapped_column(String(200))
    started_by: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    erase_at: Mapped[datetime | None]  # set by retention (storage_policies/)
    policy_id: Mapped[str | None] = mapped_column(String(64))  # the storage policy that set erase_at
    erased_at: Mapped[datetime | None]  # the wrapped key was destroyed then (crypto-shredding)


class RecordingHold(Base):
    """Recordings of a booking, or of all a client's bookings, kept while a concern or a legal matter needs
    them. A legal hold (a claim, an inquiry, a court order) has no concern."""

    __tablename__ = "recording_holds"
    __table_args__ = (
        CheckConstraint("booking_id IS NOT NULL OR client_id IS NOT NULL", name="has_scope"),
    )

    id: Mapped[intpk]
    concern_id: Mapped[int | None] = mapped_column(ForeignKey("concerns.id"), index=True)  # None: a legal hold
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    reason: Mapped[str] = mapped_column(String(2000))
    placed_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    placed_at: Mapped[datetime]
    lifted_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    lifted_at: Mapped[datetime | None]
