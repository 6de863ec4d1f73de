"""Session chat, kept with the booking (and recorded by the recorder while recording runs)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class ChatMessage(Base):
    __tablename__ = "chat_messages"

    id: Mapped[intpk]
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    sender: Mapped[str] = mapped_column(String(40))  # "guardian:3", "staff:1"
    sender_name: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime]
