"""The consent matrix over a live relay room, checked in the stored media: who is in the recording when
consent allows it, and that nothing at all is stored when it does not.

Cases: a child with their guardian's consent; a child without; an adult with their own consent; a guardian's
consent that lapsed on the client's 18th birthday (and the adult's own consent that then counts). The second
adult joining and leaving, and a withdrawal in mid-session, are in tests/recording/test_service.py and
tests/signalling/test_recording_live.py.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import av
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.consent.services import Grant
from server.errors import PolicyViolation
from server.media import MediaRouter
from server.people.models import Guardian
from server.people.services import NewClient
from server.recording.gate import Presence
from server.recording.keywrap import WrappedKey, X25519KeyFiles
from server.recording.models import Recording
from server.recording.reader import RecordingReader
from server.recording.services import RecordingService
from server.recording.spool import Spool
from server.recording.stores import FolderStore
from server.services import Services
from tests.media.peers import Peer, until
from tests.support.org import SETUP, Org

pytestmark = pytest.mark.parametrize("backend", ["postgres"])  # media under test; both backends elsewhere
ALL = Grant(record=True, safeguarding=True, feedback=True)


@dataclass
class Rig:
    services: Services
    sessionmaker: async_sessionmaker[AsyncSession]
    recordings: RecordingService
    spool: Spool
    store: FolderStore
    spool_dir: Path
    keys: X25519KeyFiles
    room_of: MediaRouter


@pytest.fixture
async def rig(org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock,
              tmp_path: Path) -> AsyncIterator[Rig]:
    store, keys = FolderStore(tmp_path / "rec"), X25519KeyFiles(tmp_path / "keys")
    keys.ensure()
    spool = Spool(tmp_path / "spool", store, clock)
    spool.start()
    router = MediaRouter()
    async with sessionmaker() as s:
        await services.consent.set_staff_agreement(s, SETUP, org.tutor_id, clock.now().date())
        await s.commit()
    yield Rig(services, sessionmaker,
              RecordingService(clock, services.audit, services.consent, keys.public_wrapper(), spool,
                               services.erase_dates), spool, store, tmp_path / "spool", keys, router)
    await router.close()
    await spool.close()


async def _record(rig: Rig, org: Org, family: str, shown: list[str], day: date) -> dict[str, float] | str:
    """Tutor and ``family`` on camera (``shown``: everyone the family's camera shows) for about 2 s.
    Returns each stored track's decoded length by title, or the refusal."""
    tutor = f"staff:{org.tutor_id}"
    room = rig.room_of.room(f"booking-{org.booking_id}")
    a, b = Peer(tutor, tag=1, tone=440), Peer(family, tag=2, tone=880)
    try:
        await a.connect(await room.join(tutor))
        await b.connect(await room.join(family))
        await until(lambda: len(b.video_from(1)) >= 3 and len(a.video_from(2)) >= 3)
        present = [Presence(tutor, True), Presence(family, True)] + [Presence(p, True) for p in shown]
        try:
            rid = await rig.recordings.start(rig.sessionmaker, SETUP, org.booking_id, day, present, room)
        except PolicyViolation as refused:
            return refused.detail
        await asyncio.sleep(2.0)
        await rig.recordings.stop(rig.sessionmaker, SETUP, org.booking_id, "stopped by the practitioner")
        await asyncio.wait_for(rig.spool.wait_idle(), 10)
    finally:
        for peer, pid in ((a, tutor), (b, family)):
            await peer.close()
            if pid in room.participants:
                await room.leave(pid)
    async with rig.sessionmaker() as s:
        row = await s.get_one(Recording, rid)
    assert row.wrapped_key is not None
    key = rig.keys.wrapper().unwrap(WrappedKey(row.key_scheme, row.key_id, row.wrapped_key), row.id)
    webm = await (await RecordingReader.open(rig.store, rid, key)).read_all()
    lengths = {}
    for stream in av.open(io.BytesIO(webm)).streams:
        if stream.type in ("audio", "video"):
            with av.open(io.BytesIO(webm)) as container:
                times = [f.time for f in container.decode(container.streams[stream.index]) if f.time is not None]
            lengths[stream.metadata["title"]] = round(times[-1] - times[0], 1)
    return lengths


async def _nothing_stored(rig: Rig) -> None:
    async with rig.sessionmaker() as s:
        assert (await s.scalars(select(Recording))).all() == []
    stored = [p for p in (rig.store.root.rglob("*") if rig.store.root.exists() else []) if p.is_file()]
    spooled = [p for p in rig.spool_dir.rglob("*") if p.is_file()]
    assert stored == [] and spooled == []


def _recorded_both(lengths: dict[str, float] | str, tutor: str, family: str) -> None:
    assert isinstance(lengths, dict), lengths
    assert sorted(lengths) == sorted(f"{p} {k}" for p in (tutor, family) for k in ("audio", "video"))
    assert all(1.2 <= length <= 3.0 for length in lengths.values()), lengths


async def test_a_child_with_their_guardians_consent_is_recorded(rig: Rig, org: Org, clock: FakeClock) -> None:
    gail, kit = f"guardian:{org.guardian_id}", f"client:{org.child_id}"
    async with rig.sessionmaker() as s:
        for covers in (gail, kit):
            await rig.services.consent.give(s, SETUP, gail, covers, ALL, clock.now().date())
        await s.commit()
    lengths = await _record(rig, org, gail, [kit], clock.now().date())
    _recorded_both(lengths, f"staff:{org.tutor_id}", gail)


async def test_a_child_without_consent_is_not_recorded_and_nothing_is_stored(
        rig: Rig, org: Org, clock: FakeClock) -> None:
    gail, kit = f"guardian:{org.guardian_id}", f"client:{org.child_id}"
    async with rig.sessionmaker() as s:  # Gail agrees for herself only
        await rig.services.consent.give(s, SETUP, gail, gail, ALL, clock.now().date())
        await s.commit()
    refused = await _record(rig, org, gail, [kit], clock.now().date())
    assert refused == "Recording refused: no recording consent for Kit's guardian."
    await _nothing_stored(rig)


async def test_an_adult_with_their_own_consent_is_recorded(rig: Rig, org: Org, clock: FakeClock) -> None:
    ada = f"client:{org.adult_id}"
    async with rig.sessionmaker() as s:
        await rig.services.consent.give(s, SETUP, ada, ada, ALL, clock.now().date())
        await s.commit()
    lengths = await _record(rig, org, ada, [], clock.now().date())
    _recorded_both(lengths, f"staff:{org.tutor_id}", ada)


async def test_guardian_consent_lapses_at_18_then_the_adults_own_consent_records(
        rig: Rig, org: Org, clock: FakeClock) -> None:
    today = clock.now().date()
    birthday = today + timedelta(days=1)
    async with rig.sessionmaker() as s:
        tia = await rig.services.people.add_client(s, SETUP, NewClient(
            first_name="Tia", last_name="Teen", date_of_birth=date(birthday.year - 18, birthday.month, birthday.day)))
        gail = await s.get_one(Guardian, org.guardian_id)
        await rig.services.people.link(s, SETUP, tia, gail, parental_responsibility=True, account_holder=True)
        await rig.services.consent.give(s, SETUP, f"guardian:{gail.id}", f"client:{tia.id}", ALL, today)
        await s.commit()
        teen = f"client:{tia.id}"
    refused = await _record(rig, org, teen, [], birthday)  # the session is on her 18th birthday
    assert refused == ("Recording refused: no recording consent from Tia: their guardian's consent lapsed on "
                       "their 18th birthday.")
    await _nothing_stored(rig)

    async with rig.sessionmaker() as s:  # Tia consents herself (paper, entered by staff on the day)
        await rig.services.consent.give(s, SETUP, teen, teen, ALL, birthday)
        await s.commit()
    lengths = await _record(rig, org, teen, [], birthday)
    _recorded_both(lengths, f"staff:{org.tutor_id}", teen)
