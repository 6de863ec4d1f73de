"""Stored device and network checks: one row per run, per booking and person; history is kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class CheckRun(Base):
    __tablename__ = "check_runs"

    id: Mapped[intpk]
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(String(40), index=True)  # "guardian:3"
    source: Mapped[str] = mapped_column(String(100), default="")  # the client address (rate limits)
    created_at: Mapped[datetime]
    measurements: Mapped[str] = mapped_column(Text)  # JSON, as the browser measured them
    verdict: Mapped[str] = mapped_column(String(20))  # video ready | audio only | not ready
    reasons: Mapped[str] = mapped_column(Text)  # JSON list of plain-words reasons and what to try
    music_advisable: Mapped[bool]
    music_reasons: Mapped[str] = mapped_column(Text)  # JSON list
    device: Mapped[str] = mapped_column(String(200))
    shared_with: Mapped[str] = mapped_column(String(500))
    safeguarding_measures: Mapped[str] = mapped_column(String(500))
