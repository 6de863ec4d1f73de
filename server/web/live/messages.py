"""The declared schema of what a browser may send over the session WebSocket.

Each message is a JSON object with a ``type``; the model for that type checks the rest and refuses unknown
fields. Features register more types with ``SessionHub.on_message``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGE_BYTES = 64 * 1024
MAX_SDP = 60_000


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Offer(Message):
    type: Literal["offer"]
    sdp: str = Field(min_length=10, max_length=MAX_SDP)


class Answer(Message):
    type: Literal["answer"]
    sdp: str = Field(min_length=10, max_length=MAX_SDP)


class Chat(Message):
    type: Literal["chat"]
    text: str = Field(min_length=1, max_length=2000)


class Rejoin(Message):
    """The browser's network path broke: a new peer connection follows with a fresh offer."""

    type: Literal["rejoin"]


class Mute(Message):
    type: Literal["mute"]
    participant: str = Field(max_length=64)
    kind: Literal["audio", "video"] = "audio"
    muted: bool = True


class Remove(Message):
    type: Literal["remove"]
    participant: str = Field(max_length=64)


class Readmit(Message):
    """The practitioner lets someone they removed back in."""

    type: Literal["readmit"]
    participant: str = Field(max_length=64)


class End(Message):
    type: Literal["end"]


class MusicMode(Message):
    type: Literal["music_mode"]
    on: bool


class Ping(Message):
    type: Literal["ping"]
