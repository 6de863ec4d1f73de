"""The recording service over a live relay room: refused with reasons until everyone seen or heard has
consent, one recorder per session, the segment ends when the gate closes (the stored media ends there),
and a crash leaves an "interrupted" recording, never an orphan "active" one (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.consent.services import Grant
from server.errors import Conflict, PolicyViolation
from server.media import MediaRouter
from server.recording.gate import Presence
from server.recording.keywrap import WrappedKey, X25519KeyFiles
from server.recording.models import Recording, RecordingStatus
from server.recording.reader import Completeness, RecordingReader
from server.recording.services import RecordingService
from server.recording.spool import Spool
from server.recording.stores import FolderStore
from server.services import Services
from tests.media.peers import Peer, until
from tests.support.org import SETUP, Org


@pytest.fixture
async def relay() -> AsyncIterator[MediaRouter]:
    router = MediaRouter()
    yield router
    await router.close()


async def test_gate_one_recorder_pause_on_a_new_publisher_and_crash_recovery(
        relay: MediaRouter, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
        clock: FakeClock, tmp_path: Path) -> None:
    day = clock.now().date()
    tutor, child, adult = f"staff:{org.tutor_id}", f"client:{org.child_id}", f"client:{org.adult_id}"
    store, keys = FolderStore(tmp_path / "rec"), X25519KeyFiles(tmp_path / "keys")
    keys.ensure()
    spool = Spool(tmp_path / "spool", store, clock)
    spool.start()
    recordings = RecordingService(clock, services.audit, services.consent, keys.public_wrapper(), spool,
                                  services.erase_dates)
    room = relay.room(f"booking-{org.booking_id}")
    a, b = Peer(tutor, tag=1, tone=440), Peer(child, tag=2, tone=880)
    present = [Presence(tutor, True), Presence(child, True), Presence(f"staff:{org.safeguarding_id}", False)]
    try:
        await a.connect(await room.join(tutor))
        await b.connect(await room.join(child))
        await until(lambda: len(b.video_from(1)) >= 3 and len(a.video_from(2)) >= 3)
        with pytest.raises(PolicyViolation) as refused:
            await recordings.start(sessionmaker, SETUP, org.booking_id, day, present, room)
        assert refused.value.detail == ("Recording refused: no staff recording agreement for Tutor Person; "
                                        "no recording consent for Kit's guardian.")
        async with sessionmaker() as s:
            await services.consent.set_staff_agreement(s, SETUP, org.tutor_id, day)
            await services.consent.give(s, SETUP, f"guardian:{org.guardian_id}", child, Grant(True, True, True), day)
            await s.commit()

        first = await recordings.start(sessionmaker, SETUP, org.booking_id, day, present, room)
        async with sessionmaker() as s:  # the erase date is set as the recording is made, not a day later
            made = await s.get(Recording, first)
            assert made is not None and made.policy_id == "tuition-monitoring"
            assert made.erase_at is not None and (made.erase_at.date() - day).days == 28
        with pytest.raises(Conflict):
            await recordings.start(sessionmaker, SETUP, org.booking_id, day, present, room)
        await asyncio.sleep(2.0)
        began = time.monotonic()
        decision = await recordings.recheck(sessionmaker, org.booking_id, day, present + [Presence(adult, True)])
        paused_in = time.monotonic() - began
        assert decision.reasons == ("no recording consent from Ada",) and recordings.recording(org.booking_id) is None
        assert paused_in < 1.0

        # Ada leaves; two quick starts at once leave exactly one recorder
        results = await asyncio.gather(
            recordings.start(sessionmaker, SETUP, org.booking_id, day, present, room),
            recordings.start(sessionmaker, SETUP, org.booking_id, day, present, room), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "UUID"]
        second = recordings.recording(org.booking_id)
        await asyncio.sleep(1.6)  # WebM clusters close every second
        clock.advance(2.1)  # the 2 s sealing tick (on the injected clock) seals what was muxed so far
        await asyncio.sleep(0.3)
        await recordings.close()  # the process dies: no final chunk
        after_crash = RecordingService(clock, services.audit, services.consent, keys.public_wrapper(), spool,
                                  services.erase_dates)
        assert await after_crash.recover(sessionmaker) == [second]
        await asyncio.wait_for(spool.wait_idle(), 10)
    finally:
        await a.close()
        await b.close()
        await spool.close()

    async with sessionmaker() as s:
        rows = {r.id: r for r in (await s.scalars(select(Recording))).all()}
    assert rows[first].status == RecordingStatus.STOPPED and rows[first].status_reason == (
        "Paused: no recording consent from Ada")
    assert second is not None and rows[second].status == RecordingStatus.INTERRUPTED

    reader = await RecordingReader.open(store, first, _unwrap(keys, rows[first]))
    assert reader.state.completeness is Completeness.COMPLETE
    webm = await reader.read_all()
    for index in range(4):
        container = av.open(io.BytesIO(webm))
        decoded = list(container.decode(container.streams[index]))
        assert decoded[0].time is not None and decoded[-1].time is not None
        assert 1.0 < decoded[-1].time - decoded[0].time < 2.6  # ends at the pause, not later
    crashed = await RecordingReader.open(store, second, _unwrap(keys, rows[second]))
    assert crashed.interrupted and crashed.state.playable_chunks >= 1
    partial = await crashed.read_all()  # plays up to its last sealed chunk
    assert next(av.open(io.BytesIO(partial)).decode(video=0)).width > 0


def _unwrap(keys: X25519KeyFiles, row: Recording) -> bytes:
    assert row.wrapped_key is not None
    return keys.wrapper().unwrap(WrappedKey(row.key_scheme, row.key_id, row.wrapped_key), row.id)
