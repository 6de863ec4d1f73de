"""GET /s/{booking_id}/ws: the session WebSocket. Checks who is asking, then relays signalling.

Every message is parsed against ``messages.py`` (or a registered extension), size-limited by the
WebSocket itself and rate-limited per socket; a bad or unauthorised message gets an ``error`` back and
never reaches the room. Origin must be this site's.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import WSMsgType, web
from pydantic import BaseModel, ValidationError

from server.bookings.models import Booking, BookingStatus
from server.chat.models import ChatMessage
from server.errors import DuetError
from server.links.models import LinkPurpose
from server.links.services import Window
from server.media import BadSessionDescription, NegotiationOutOfOrder, RoomClosed
from server.media.frames import voice_cue
from server.subjects import Subject
from server.web.access import link_holder
from server.web.http import path_id, validation_detail
from server.web.keys import DB, HOLDER, HUB, SERVICES, STAFF
from server.web.live import messages as m
from server.web.live.hub import Member, Role, Session, SessionHub
from server.web.live.limits import RateLimiter
from server.web.middlewares import same_origin

log = logging.getLogger("duet.signalling")
routes = web.RouteTableDef()

BUILT_IN: dict[str, type[m.Message]] = {
    "offer": m.Offer, "answer": m.Answer, "chat": m.Chat, "rejoin": m.Rejoin, "mute": m.Mute,
    "remove": m.Remove, "readmit": m.Readmit, "end": m.End, "music_mode": m.MusicMode, "ping": m.Ping,
}
HOST_ONLY = {"mute", "remove", "readmit", "end", "music_mode"}
FLOOD_LIMIT = 100  # refused messages before the socket is closed


def _subject(request: web.Request) -> Subject:
    holder = request.get(HOLDER)
    return Subject(holder.link.subject) if holder is not None else Subject.staff(request[STAFF].staff.id)


def _member(request: web.Request, booking: Booking, ws: web.WebSocketResponse) -> Member:
    """Who is asking, and through what: a link (its id), or a staff sign-in (its id)."""
    holder = request.get(HOLDER)
    if holder is not None:
        subject = holder.link.subject
        role: Role = "host" if subject == Subject.staff(booking.practitioner_id) else "participant"
        return Member(subject, holder.name, role, ws, link_id=holder.link.id)
    ctx = request[STAFF]
    role = "host" if ctx.staff.id == booking.practitioner_id else "observer"
    return Member(Subject.staff(ctx.staff.id), ctx.staff.name, role, ws, login_id=ctx.login.id)


async def _refuse(ws: web.WebSocketResponse, code: str, detail: str, close: int) -> web.WebSocketResponse:
    await ws.send_json({"type": "error", "code": code, "detail": detail})
    await ws.close(code=close, message=code.encode())
    return ws


@routes.get("/s/{booking_id}/ws")
@link_holder(LinkPurpose.JOIN)
async def session_socket(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    hub = request.app[HUB]
    if request.headers.get("Upgrade", "").lower() != "websocket":
        raise DuetError("This address is the session's WebSocket; open the session page instead.")
    if not same_origin(request, required=True):
        raise web.HTTPForbidden(reason="WebSocket from another origin")
    booking_id = path_id(request, "booking_id")
    booking = await services.bookings.get(request[DB], booking_id)
    is_host = _subject(request) == Subject.staff(booking.practitioner_id)
    # policies/000_*: evening work after a day unavailable waits for a manager; the practitioner is told why.
    blocked = await services.bookings.blocked_reason(request[DB], booking) if is_host else None
    await request[DB].close()  # a socket lives long; it must not hold a database connection
    ws = web.WebSocketResponse(max_msg_size=m.MAX_MESSAGE_BYTES, heartbeat=20)
    await ws.prepare(request)
    window = services.links.window(booking)
    if blocked is not None:
        return await _refuse(ws, "evening_agreement", blocked + ".", 4403)
    if booking.status != BookingStatus.CONFIRMED:
        return await _refuse(ws, "ended", "This session is no longer taking place.", 4410)
    if window != Window.OPEN:
        detail = ("The session has not opened yet; you can join a few minutes before it starts."
                  if window == Window.NOT_YET else "This session has ended.")
        return await _refuse(ws, "window", detail, 4403)
    if booking_id in hub.ended_by_host:
        if not is_host:  # the practitioner ended it: only they can open it again
            return await _refuse(ws, "ended", f"{hub.ended_by_host[booking_id]}.", 4410)
        del hub.ended_by_host[booking_id]
    if _subject(request) in hub.removed.get(booking_id, set()):
        return await _refuse(ws, "removed", "The practitioner removed you from this session. Ask them to let you "
                                            "back in.", 4403)
    session = hub.open(booking)
    member = _member(request, booking, ws)
    await hub.admit(session, member)
    await member.send({
        "type": "welcome", "you": member.pid, "name": member.name, "role": member.role,
        "audio_only": booking.audio_only,
        "music_mode": session.room.music_mode, "ice_servers": services.settings.ice_server_list(),
        "members": session.presence(), "chat": await _chat_history(hub, booking_id),
    })
    try:
        limiter = hub.limits.setdefault((booking_id, member.pid), RateLimiter(hub.media_clock))
        await _serve(hub, session, member, limiter)  # one limit per person: a reconnect does not reset it
    finally:
        await hub.depart(session, member, "left")
    return ws


async def _serve(hub: SessionHub, session: Session, member: Member, limiter: RateLimiter) -> None:
    async for raw in member.ws:
        if raw.type != WSMsgType.TEXT:
            if raw.type == WSMsgType.BINARY:
                await member.send({"type": "error", "code": "bad_message", "detail": "Send JSON text."})
            continue
        if not limiter.allow():
            if limiter.refused >= FLOOD_LIMIT:
                await member.ws.close(code=1008, message=b"too many messages")
                return
            await member.send({"type": "error", "code": "rate_limited",
                               "detail": "Too many messages; slow down."})
            continue
        try:
            await _dispatch(hub, session, member, raw.data)
        except DuetError as exc:
            await member.send({"type": "error", "code": exc.code, "detail": exc.detail})
        except Exception:  # one bad message must never take the session down
            log.exception("session %s: message from %s failed", session.booking_id, member.pid)
            await member.send({"type": "error", "code": "internal", "detail": "That did not work; try again."})
        if session.room.closed or hub.sessions.get(session.booking_id) is not session:
            return


async def _dispatch(hub: SessionHub, session: Session, member: Member, text: str) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        await member.send({"type": "error", "code": "bad_message", "detail": "That message is not valid JSON."})
        return
    kind = data.get("type") if isinstance(data, dict) else None
    model: type[BaseModel] | None = BUILT_IN.get(kind) if isinstance(kind, str) else None
    extension = hub.handlers.get(kind) if isinstance(kind, str) and model is None else None
    if model is None and extension is None:
        await member.send({"type": "error", "code": "unknown_type", "detail": f"Unknown message type {kind!r}."})
        return
    allowed = HOST_ONLY if model is not None else set()
    if (kind in allowed and member.role != "host") or (extension and member.role not in extension.roles):
        await member.send({"type": "error", "code": "forbidden", "detail": "Only the practitioner can do that."})
        return
    try:
        message = (model or extension.model).model_validate(data)  # type: ignore[union-attr]
    except ValidationError as exc:
        await member.send({"type": "error", "code": "bad_message", "detail": validation_detail(exc)[1]})
        return
    if extension is not None:
        await extension.handler(session, member, message)
        return
    await HANDLERS[type(message)](hub, session, member, message)


async def _offer(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    participant = member.participant
    if participant is None or participant.id not in session.room.participants:
        participant = await session.room.join(member.pid, publish=member.role != "observer")
        await hub.attach(session, member, participant)
    try:
        async with participant.hold_events():
            answer = await participant.accept_offer(msg.sdp)
            await member.send({"type": "answer", "sdp": answer})
    except (BadSessionDescription, NegotiationOutOfOrder, RoomClosed) as exc:
        await member.send({"type": "error", "code": exc.code, "detail": exc.detail})
        if member.pid not in session.room.participants:
            member.participant = None  # a first offer that failed: the browser may offer again


async def _answer(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    if member.participant is None:
        await member.send({"type": "error", "code": "bad_message", "detail": "Send an offer first."})
        return
    await member.participant.accept_answer(msg.sdp)


async def _rejoin(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    """A broken network path: drop the old peer connection; the browser's next offer starts a new one."""
    if member.participant is not None and member.pid in session.room.participants:
        participant = await session.room.rejoin(member.pid)
        await hub.attach(session, member, participant)
    await member.send({"type": "rejoin_ready"})


async def _chat(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    async with hub.sessionmaker() as db:
        row = await hub.chat.post(db, session.booking_id, member.pid, member.name, msg.text)
        await db.commit()
    session.room.chat(member.pid, voice_cue(member.name, msg.text))  # into a running recording
    await hub.broadcast(session.booking_id, _chat_json(row))


def _chat_json(row: ChatMessage) -> dict[str, Any]:
    return {"type": "chat", "from": row.sender, "name": row.sender_name, "text": row.text,
            "at": row.sent_at.isoformat()}


async def _chat_history(hub: SessionHub, booking_id: int) -> list[dict[str, Any]]:
    async with hub.sessionmaker() as db:
        return [_chat_json(r) for r in await hub.chat.history(db, booking_id)]


def _target(session: Session, pid: str) -> Member:
    target = session.members.get(pid)
    if target is None:
        raise DuetError(f"{pid} is not in this session.")
    return target


async def _mute(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    target = _target(session, msg.participant)
    session.room.mute(target.pid, kind=msg.kind, muted=msg.muted)
    await target.send({"type": "muted_by_host", "kind": msg.kind, "muted": msg.muted})
    await hub.audit_event(member.actor, "session.muted", session.booking_id,
                     {"participant": target.pid, "kind": msg.kind, "muted": msg.muted})


async def _remove(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    target = _target(session, msg.participant)
    if target is member:
        raise DuetError("Use leave to leave the session yourself.")
    if target.role == "observer":  # a spot check is the safeguarding lead's, not the practitioner's, to end
        raise DuetError("The safeguarding observer cannot be removed from the session.")
    hub.removed.setdefault(session.booking_id, set()).add(target.pid)
    await hub.audit_event(member.actor, "session.removed", session.booking_id, {"participant": target.pid})
    await hub.remove_subject(session.booking_id, target.pid, "The practitioner removed you from the session.")
    await member.send({"type": "removed_list", "participants": sorted(hub.removed[session.booking_id])})


async def _readmit(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    removed = hub.removed.get(session.booking_id, set())
    if msg.participant not in removed:
        raise DuetError(f"{msg.participant} was not removed from this session.")
    removed.discard(msg.participant)
    await hub.audit_event(member.actor, "session.readmitted", session.booking_id, {"participant": msg.participant})
    await member.send({"type": "removed_list", "participants": sorted(removed)})


async def _end(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    reason = f"{member.name} ended the session"
    hub.ended_by_host[session.booking_id] = reason  # rejoining does not undo it
    await hub.end(session.booking_id, reason)


async def _music_mode(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    """Music mode: every browser re-opens its microphone without voice processing and rejoins."""
    session.room.music_mode = msg.on
    async with hub.sessionmaker() as db:
        await hub.bookings.set_music_mode(db, member.actor, session.booking_id, msg.on)
        await db.commit()
    await hub.broadcast(session.booking_id, {"type": "music_mode", "on": msg.on})


async def _ping(hub: SessionHub, session: Session, member: Member, msg: Any) -> None:
    await member.send({"type": "pong"})


HANDLERS: dict[type[BaseModel], Any] = {
    m.Offer: _offer, m.Answer: _answer, m.Rejoin: _rejoin, m.Chat: _chat, m.Mute: _mute, m.Remove: _remove,
    m.Readmit: _readmit,
    m.End: _end, m.MusicMode: _music_mode, m.Ping: _ping,
}
