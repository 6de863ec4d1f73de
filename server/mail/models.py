"""The transactional outbox table: one row per email to send.

A row is written in the same transaction as the change that causes the email
(docs/consent-and-recording.md), so an email exists exactly when its booking change committed;
``outbox.Sender`` delivers rows later, with retries, from any node.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, BigIntId, intpk


class OutboxStatus(StrEnum):
    PENDING = "pending"  # waiting for next_attempt_at
    SENDING = "sending"  # leased by a sender until leased_until
    SENT = "sent"
    FAILED = "failed"  # permanent refusal or too many attempts; a person must act


class OutboxMessage(Base):
    """One email, stored as the full serialised RFC 5322 message so a retry sends the same bytes."""

    __tablename__ = "mail_outbox"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sending', 'sent', 'failed')", name="status"),
        Index("ix_mail_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[intpk]
    message_key: Mapped[str] = mapped_column(String(200), unique=True)  # Message-ID left-hand side
    kind: Mapped[str] = mapped_column(String(40))  # "invitation", "reminder_24h", "staff_alert"...
    recipient: Mapped[str] = mapped_column(String(1000))  # the To addresses, for people reading the table
    subject: Mapped[str] = mapped_column(String(250))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    booking_id: Mapped[int | None] = mapped_column(BigIntId, index=True)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    lease_token: Mapped[str | None] = mapped_column(String(32))  # who holds the lease; checked on update
    leased_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
