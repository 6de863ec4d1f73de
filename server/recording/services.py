"""Start and stop a session's recording: one recorder per session, only through an open consent gate.

``start`` checks the gate over the people present (refused with the reasons in words), writes the row with
the wrapped key and header before any media, then runs a ``Recorder`` on the room's tap. ``recheck`` is
called on every join, leave, unmute and consent change: when the gate has closed, the segment is ended at
once (nothing after that moment is stored) and the practitioner may start a new one when it opens again.
``recover`` runs at start-up: recordings left active by a crash become "interrupted" and the spool uploads.
A per-session lock and a partial unique index make start/stop/start races leave at most one recorder.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.audit.log import Actor, AuditLog
from server.clock import Clock
from server.consent.services import ConsentService
from server.errors import Conflict, DuetError, PolicyViolation, Unavailable
from server.media.room import Room
from server.recording.gate import GateDecision, Presence, decide
from server.recording.holds import EraseDateRefresh
from server.recording.keywrap import KeyWrapper
from server.recording.models import Recording, RecordingStatus
from server.recording.muxer import Track
from server.recording.recorder import Recorder
from server.recording.spool import Spool
from server.recording.writer import SealedWriter, begin_recording

LIVE = (RecordingStatus.ACTIVE.value, RecordingStatus.PAUSED.value)


@dataclass
class _Live:
    recording_id: uuid.UUID
    recorder: Recorder


class RecordingService:
    def __init__(self, clock: Clock, audit: AuditLog, consent: ConsentService, wrapper: KeyWrapper,
                 spool: Spool, erase_dates: EraseDateRefresh) -> None:
        self._clock = clock
        self._erase_dates = erase_dates
        self._audit = audit
        self._consent = consent
        self._wrapper = wrapper
        self._spool = spool
        self._live: dict[int, _Live] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def _lock(self, booking_id: int) -> asyncio.Lock:
        return self._locks.setdefault(booking_id, asyncio.Lock())

    def trouble(self, booking_id: int) -> str | None:
        """Why the live recording of this booking must pause now (disk nearly full, a write failed), or None."""
        live = self._live.get(booking_id)
        if live is None:
            return None
        if not self._spool.has_room():
            return "the server's recording disk is nearly full"
        failure = live.recorder.failure
        if failure is None:
            return None
        return failure.detail if isinstance(failure, DuetError) else "the recording could not be written"

    def recorded(self, booking_id: int) -> frozenset[str]:
        """Whose tracks the live recording of this booking takes (fixed when its segment started)."""
        live = self._live.get(booking_id)
        return frozenset(t.participant_id for t in live.recorder.muxer.tracks) if live else frozenset()

    def frames_written(self, booking_id: int) -> int:
        """How far the live recording of this booking has got (0 when none is running)."""
        live = self._live.get(booking_id)
        return live.recorder.frames_written if live else 0

    def recording(self, booking_id: int) -> uuid.UUID | None:
        live = self._live.get(booking_id)
        return live.recording_id if live else None

    async def start(self, sessionmaker: async_sessionmaker[AsyncSession], actor: Actor, booking_id: int,
                    day: date, present: Sequence[Presence], room: Room) -> uuid.UUID:
        """Begin a recording, or raise: Conflict (already on), Unavailable (disk), PolicyViolation (gate)."""
        async with self._lock(booking_id):
            if booking_id in self._live:
                raise Conflict("This session is already being recorded.")
            if not self._spool.has_room():
                raise Unavailable("Recording is paused: the server's recording disk is nearly full.")
            async with sessionmaker() as session:
                decision = await decide(self._consent, session, present, day)
                if not decision.open:
                    await self._audit.record(session, actor, "recording.refused", f"booking:{booking_id}",
                                             {"reasons": list(decision.reasons)})
                    await session.commit()
                    raise PolicyViolation(f"Recording refused: {decision.reason}.")
                rid = uuid.uuid4()
                new = begin_recording(rid, self._wrapper)
                key = new.wrapped_key
                session.add(Recording(
                    id=rid, booking_id=booking_id, status=RecordingStatus.ACTIVE.value, key_scheme=key.scheme,
                    key_id=key.key_id, wrapped_key=key.blob, header=new.header.to_bytes(), store_key=str(rid),
                    started_by=actor.ref, started_at=self._clock.now()))
                await self._audit.record(session, actor, "recording.started", f"booking:{booking_id}", {
                    "recording_id": str(rid), "people": sorted(p.subject for p in present if p.publishing)})
                await session.flush()
                # Its erase date from the start; this session also moves the client's other therapy dates.
                await self._erase_dates.refresh_booking(session, booking_id)
                await session.commit()
            # people counted by the gate but without tracks of their own (a child on the family's camera)
            publishers = sorted({p.subject for p in present if p.publishing and p.subject in room.participants})
            kinds = ("audio",) if room.audio_only else ("video", "audio")
            tap = room.tap(set(publishers))
            recorder = Recorder(tap, SealedWriter(rid, new.sealer, self._spool, self._clock),
                                [Track(p, k) for p in publishers for k in kinds], close_source=tap.close)
            recorder.start()
            self._live[booking_id] = _Live(rid, recorder)
            return rid

    async def stop(self, sessionmaker: async_sessionmaker[AsyncSession], actor: Actor, booking_id: int,
                   reason: str = "") -> uuid.UUID | None:
        """End the recording now: the final chunk is sealed; nothing later is stored."""
        async with self._lock(booking_id):
            live = self._live.pop(booking_id, None)
            if live is None:
                return None
            await live.recorder.stop()
            async with sessionmaker() as session:
                await session.execute(update(Recording).where(Recording.id == live.recording_id).values(
                    status=RecordingStatus.STOPPED.value, ended_at=self._clock.now(), status_reason=reason or None))
                await self._audit.record(session, actor, "recording.stopped", f"booking:{booking_id}", {
                    "recording_id": str(live.recording_id), "reason": reason,
                    "frames": live.recorder.muxer.frames_written})
                await session.commit()
            return live.recording_id

    async def recheck(self, sessionmaker: async_sessionmaker[AsyncSession], booking_id: int, day: date,
                      present: Sequence[Presence]) -> GateDecision:
        """Re-evaluate the gate; if it closed while recording, end the segment with the reason."""
        async with sessionmaker() as session:
            decision = await decide(self._consent, session, present, day)
        if not decision.open and booking_id in self._live:
            await self.stop(sessionmaker, Actor.system(), booking_id, f"Paused: {decision.reason}")
        return decision

    async def recover(self, sessionmaker: async_sessionmaker[AsyncSession]) -> list[uuid.UUID]:
        """At start-up: no recording stays "active" after a crash; the spool's chunks are uploaded."""
        self._spool.recover()
        async with sessionmaker() as session:
            orphans = list((await session.scalars(select(Recording).where(Recording.status.in_(LIVE)))).all())
            for row in orphans:
                row.status = RecordingStatus.INTERRUPTED.value
                row.ended_at = self._clock.now()
                row.status_reason = "The server stopped during the recording."
                await self._audit.record(session, Actor.system(), "recording.interrupted",
                                         f"booking:{row.booking_id}", {"recording_id": str(row.id)})
            await session.commit()
        return [row.id for row in orphans]

    async def close(self) -> None:
        """Process shutdown: end every recorder without a final chunk; rows stay live for ``recover``."""
        for booking_id in list(self._live):
            live = self._live.pop(booking_id)
            await live.recorder.abort()
