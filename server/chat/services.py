"""Session chat: each line is kept with its booking and replayed to whoever joins later."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from server.chat.models import ChatMessage
from server.clock import Clock

HISTORY = 100  # lines replayed to someone joining


class ChatService:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def post(self, session: AsyncSession, booking_id: int, sender: str, sender_name: str,
                   text: str) -> ChatMessage:
        """Keep one line (the caller commits)."""
        row = ChatMessage(booking_id=booking_id, sender=sender, sender_name=sender_name, text=text,
                          sent_at=self._clock.now())
        session.add(row)
        await session.flush()
        return row

    async def history(self, session: AsyncSession, booking_id: int, limit: int = HISTORY) -> list[ChatMessage]:
        """The last ``limit`` lines of a booking's chat, oldest first."""
        rows = (await session.execute(select(ChatMessage).where(ChatMessage.booking_id == booking_id)
                                      .order_by(ChatMessage.id.desc()).limit(limit))).scalars().all()
        return list(reversed(rows))
