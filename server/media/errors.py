"""Errors the relay raises to the signalling layer (DuetError subclasses, docs/architecture.md, Conventions)."""

from __future__ import annotations

from server.errors import Conflict, Gone, InvalidInput, NotFound, Unavailable


class BadSessionDescription(InvalidInput):
    """The browser's SDP could not be parsed or applied; the room is unaffected."""

    code = "bad_sdp"
    title = "The session description was not accepted"


class NegotiationOutOfOrder(Conflict):
    """An offer or answer arrived in a signalling state where it makes no sense (RFC 8829 3.2)."""

    code = "negotiation_state"
    title = "Offer/answer out of order"


class ParticipantNotFound(NotFound):
    code = "participant_not_found"
    title = "Not in this room"


class RoomClosed(Gone):
    code = "room_closed"
    title = "The session has ended"


class MediaFull(Unavailable):
    """Admission control: this media server (or every media worker) is at capacity; running sessions keep
    their quality rather than all getting worse."""

    code = "media_full"
    title = "The media server is full"
