"""Recording in a live session: the practitioner's toggle, the consent gate on every change, the state.

Wires ``RecordingService`` to the session hub (docs/signalling.md): a ``record`` message from the host
starts or stops it; every join, leave, publishing or mute change and every consent change re-checks the
gate, which pauses the recording at once when it closes; everyone sees ``Recording``, ``Paused: <reason>``
or ``Not recording`` at all times, newcomers included.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor
from server.clock import Clock
from server.config import Settings
from server.errors import DuetError
from server.events import ConsentChanged, Event, Events
from server.recording.gate import Presence, presence_of
from server.recording.services import RecordingService
from server.subjects import Subject
from server.web.live.hub import Change, Member, Session, SessionHub

log = logging.getLogger("duet.recording")


class RecordToggle(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["record"]
    on: bool


def state_message(state: str, reason: str = "") -> dict[str, Any]:
    labels = {"recording": "Recording", "paused": f"Paused: {reason}", "off": "Not recording"}
    return {"type": "recording", "state": state, "label": labels[state], "reason": reason}


WATCH_SECONDS = 1.0


class LiveRecording:
    def __init__(self, hub: SessionHub, service: RecordingService, events: Events,
                 sessionmaker: async_sessionmaker[AsyncSession], clock: Clock, settings: Settings) -> None:
        self.hub, self.service, self.sessionmaker = hub, service, sessionmaker
        self.clock, self.settings = clock, settings
        self.states: dict[int, dict[str, Any]] = {}
        self._clients: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._watching: dict[int, asyncio.Task[None]] = {}
        hub.on_message("record", RecordToggle, self._toggle, roles=frozenset({"host"}))
        hub.on_change(self._changed)
        events.subscribe(self._heard)

    def _day(self) -> date:
        return self.clock.now().astimezone(self.settings.zone).date()

    async def _present(self, booking_id: int) -> list[Presence]:
        """Everyone seen or heard. A family's camera shows the client too, so the client counts whenever
        anyone joining by a family link publishes (policies/000_*: consent for the client's image)."""
        present = [presence_of(m.pid, m.publishing, m.muted) for m in self.hub.present(booking_id)]
        family = [p for p in present if p.publishing and Subject(p.subject).is_family]
        if family:
            if booking_id not in self._clients:
                async with self.sessionmaker() as db:
                    self._clients[booking_id] = (await self.hub.bookings.get(db, booking_id)).client_id
            present.append(Presence(Subject.client(self._clients[booking_id]), True))
        return present

    async def _announce(self, booking_id: int, message: dict[str, Any]) -> None:
        self.states[booking_id] = message
        await self.hub.broadcast(booking_id, message)

    async def _toggle(self, session: Session, member: Member, msg: RecordToggle) -> None:
        booking_id = session.booking_id
        if msg.on:
            await self.service.start(self.sessionmaker, member.actor, booking_id, self._day(),
                                     await self._present(booking_id), session.room)  # refusals reach the host
            await self._announce(booking_id, state_message("recording"))
            self._watch(booking_id)
        else:
            await self.service.stop(self.sessionmaker, member.actor, booking_id, "stopped by the practitioner")
            await self._announce(booking_id, state_message("off"))

    async def _changed(self, session: Session, change: Change) -> None:
        booking_id = session.booking_id
        if change.kind == "joined":
            await change.member.send(self.states.get(booking_id, state_message("off")))
        if self.service.recording(booking_id) is None:
            return
        if not session.members:  # everyone has left, or the session ended: seal the last chunk
            await self.service.stop(self.sessionmaker, Actor.system(), booking_id, "the session ended")
            self.states.pop(booking_id, None)
            return
        await self.recheck(booking_id)
        if change.kind == "publishing":
            await self._include_new_publishers(session)

    async def _include_new_publishers(self, session: Session) -> None:
        """Someone seen or heard now (allowed by the gate) whose tracks this segment does not take: end the
        segment and start the next one with everyone, so nobody present is left out of the recording."""
        booking_id = session.booking_id
        if self.service.recording(booking_id) is None:
            return
        present = await self._present(booking_id)
        recorded = self.service.recorded(booking_id)
        new = sorted(p.subject for p in present
                     if p.publishing and p.subject in session.room.participants and p.subject not in recorded)
        if not new:
            return
        await self.service.stop(self.sessionmaker, Actor.system(), booking_id,
                                f"segment ended to add {', '.join(new)}")
        try:
            await self.service.start(self.sessionmaker, Actor.system(), booking_id, self._day(), present,
                                     session.room)
            self._watch(booking_id)
        except DuetError as exc:  # the gate closed meanwhile, or the disk is full: say so to everyone
            await self._announce(booking_id, state_message("paused", exc.detail))

    def _watch(self, booking_id: int) -> None:
        """While this booking records, look every second for a reason to pause (disk, a failed write)."""
        if booking_id not in self._watching:
            task = asyncio.get_running_loop().create_task(self._watch_loop(booking_id))
            self._watching[booking_id] = task
            task.add_done_callback(lambda _: self._watching.pop(booking_id, None))

    async def _watch_loop(self, booking_id: int) -> None:
        while self.service.recording(booking_id) is not None:
            await self.hub.media_clock.sleep(WATCH_SECONDS)  # media time is real time
            reason = self.service.trouble(booking_id)
            if reason is not None:
                await self.service.stop(self.sessionmaker, Actor.system(), booking_id, f"Paused: {reason}")
                await self._announce(booking_id, state_message("paused", reason))

    async def close(self) -> None:
        for task in [*self._watching.values(), *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._watching.values(), *self._tasks, return_exceptions=True)

    async def recheck(self, booking_id: int) -> None:
        """Pause at once when the gate has closed; nothing after this moment is stored."""
        present = await self._present(booking_id)
        decision = await self.service.recheck(self.sessionmaker, booking_id, self._day(), present)
        if not decision.open:
            await self._announce(booking_id, state_message("paused", decision.reason))

    def _heard(self, event: Event) -> None:
        """A consent changed somewhere: every session that records re-checks its gate at once."""
        if not isinstance(event, ConsentChanged):
            return
        for booking_id in list(self.hub.sessions):
            if self.service.recording(booking_id) is not None:
                task = asyncio.get_running_loop().create_task(self.recheck(booking_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

