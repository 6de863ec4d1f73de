"""The media relay: forwards encoded VP8/Opus between participants without decoding.

Public API: ``MediaRouter`` -> ``Room`` -> ``Participant``; events in
``server.media.events``; recording taps yield ``EncodedFrame``. See docs/media.md.
"""

from server.media.errors import (
    BadSessionDescription,
    MediaFull,
    NegotiationOutOfOrder,
    ParticipantNotFound,
    RoomClosed,
)
from server.media.events import (
    ConnectionStateChanged,
    MediaEvent,
    OfferReady,
    ParticipantLeft,
    PublishingChanged,
    RoomClosedEvent,
)
from server.media.forwarding import FrameTap
from server.media.frames import EncodedFrame
from server.media.participant import Participant
from server.media.room import MediaRouter, Room

__all__ = [
    "BadSessionDescription",
    "ConnectionStateChanged",
    "EncodedFrame",
    "FrameTap",
    "MediaFull",
    "MediaEvent",
    "MediaRouter",
    "NegotiationOutOfOrder",
    "OfferReady",
    "Participant",
    "ParticipantLeft",
    "ParticipantNotFound",
    "PublishingChanged",
    "Room",
    "RoomClosed",
    "RoomClosedEvent",
]
