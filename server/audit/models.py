"""Audit tables: the append-only event chain and its head pointer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class AuditEvent(Base):
    """One thing that happened. ``hash`` is an HMAC (``server.audit.chain``) over every column and the previous
    event's hash."""

    __tablename__ = "audit_events"

    id: Mapped[intpk]
    seq: Mapped[int] = mapped_column(unique=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))  # "staff:3", "guardian:7", "system", "cli:root"
    action: Mapped[str] = mapped_column(String(80), index=True)
    target: Mapped[str] = mapped_column(String(200), index=True)  # "booking:12"
    details: Mapped[str] = mapped_column(Text, default="{}")  # canonical JSON
    source: Mapped[str] = mapped_column(String(100), default="")  # client address or "cli"
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """A single row that serialises appends: its UPDATE is the lock (works on SQLite and PostgreSQL)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int]
    last_hash: Mapped[str] = mapped_column(String(64))
    # The first event hashed with the key; events before it are from an older, unkeyed chain.
    keyed_from: Mapped[int | None]
