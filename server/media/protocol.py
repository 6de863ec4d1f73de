"""The internal protocol between the web process and its media workers (docs/media.md "Media workers").

One stream socket per worker (a ``socketpair``); each message is

    4 bytes  length L of what follows (big-endian)
    2 bytes  length J of the JSON header
    J bytes  JSON header (UTF-8): {"op": ..., ...}
    L-2-J    binary body (the payload of a recorded packet; empty otherwise)

Web -> worker: ``call`` (id, method, args) answered by ``result`` (id, value) or ``error`` (id, the
``DuetError`` class name, detail, field). Worker -> web, unasked: ``event`` (participant handle, the
event's ``to_json()``), ``room_event`` (for ``on_event``), ``packets`` (recorded packets of one batch,
each a binary ``PACKET`` header and its payload, concatenated in the body; the track id is announced
once by a ``track`` message), ``stats`` (four times a second).
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from server import errors as base_errors
from server.media import errors as media_errors
from server.media.events import TYPES, MediaEvent

_LEN = struct.Struct("!I")
_JSON = struct.Struct("!H")
MAX_MESSAGE = 64 << 20
# track id, sequence number, timestamp, flags (1 marker, 2 frame start), SSRC, VP8 descriptor size, length
PACKET = struct.Struct("!IHIBIBH")
MARKER, START = 1, 2

_EVENT_CLASSES = {name: cls for cls, name in TYPES.items()}
_ERRORS: dict[str, type[base_errors.DuetError]] = {
    cls.__name__: cls
    for module in (media_errors, base_errors)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, base_errors.DuetError)
}


def pack(header: dict[str, Any], body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return _LEN.pack(2 + len(head) + len(body)) + _JSON.pack(len(head)) + head + body


async def read(reader: asyncio.StreamReader) -> tuple[dict[str, Any], bytes]:
    """One message; raises ``asyncio.IncompleteReadError`` when the other end has gone."""
    (length,) = _LEN.unpack(await reader.readexactly(4))
    if length > MAX_MESSAGE:
        raise ValueError(f"media worker message of {length} bytes")
    data = await reader.readexactly(length)
    (json_len,) = _JSON.unpack_from(data, 0)
    header: dict[str, Any] = json.loads(data[2 : 2 + json_len])
    return header, data[2 + json_len :]


def error_json(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, base_errors.DuetError):
        return {"type": type(exc).__name__, "detail": exc.detail, "field": exc.field}
    return {"type": "DuetError", "detail": f"The media server could not do that: {exc!r}", "field": None}


def error_from_json(body: dict[str, Any]) -> base_errors.DuetError:
    cls = _ERRORS.get(str(body.get("type")), base_errors.DuetError)
    return cls(str(body.get("detail", "")), field=body.get("field"))


def event_json(event: MediaEvent) -> dict[str, Any]:
    return event.to_json()


def event_from_json(body: dict[str, Any]) -> MediaEvent:
    fields = dict(body)
    cls = _EVENT_CLASSES[fields.pop("type")]
    return cls(**fields)
