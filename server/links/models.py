"""Signed access links: one booking, one person, one purpose. Only the token's hash is stored."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk
from server.subjects import Subject


class LinkPurpose(enum.StrEnum):
    JOIN = "join"
    CONSENT = "consent"
    CHECK = "check"  # the pre-session device and network check


class AccessLink(Base):
    __tablename__ = "access_links"

    id: Mapped[intpk]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(40), index=True)  # "guardian:3", "client:4", "staff:1"
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_reason: Mapped[str | None] = mapped_column(String(200))
    last_used_at: Mapped[datetime | None]

    @property
    def subject_kind(self) -> str:
        return Subject(self.subject).kind

    @property
    def subject_id(self) -> int:
        return Subject(self.subject).id
