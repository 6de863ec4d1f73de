"""Events the relay sends the signalling layer, one bounded queue per participant."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class MediaEvent:
    """Base: ``to_json()`` gives a dict with a ``type`` the signalling layer can forward as is."""

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["type"] = TYPES[type(self)]
        return body


@dataclass(frozen=True)
class OfferReady(MediaEvent):
    """Send ``sdp`` (an offer) to ``participant_id``; hand its answer to ``Participant.accept_answer``.

    ``tracks`` maps each m-line's mid to the publisher it carries (None when the
    m-line is idle), so the browser can label the video it shows.
    """

    participant_id: str
    sdp: str
    tracks: dict[str, dict[str, str | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class PublishingChanged(MediaEvent):
    """``publisher_id`` started or stopped publishing ``kind``, or was muted/unmuted."""

    publisher_id: str
    kind: str
    publishing: bool
    muted: bool


@dataclass(frozen=True)
class ParticipantLeft(MediaEvent):
    participant_id: str
    reason: str


@dataclass(frozen=True)
class ConnectionStateChanged(MediaEvent):
    """The peer connection's state: 'connecting', 'connected', 'failed', 'closed'."""

    participant_id: str
    state: str


@dataclass(frozen=True)
class RoomClosedEvent(MediaEvent):
    room_id: str
    reason: str


TYPES: dict[type[MediaEvent], str] = {
    OfferReady: "offer",
    PublishingChanged: "publishing",
    ParticipantLeft: "left",
    ConnectionStateChanged: "connection",
    RoomClosedEvent: "room_closed",
}
