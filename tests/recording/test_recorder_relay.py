"""End to end through the relay: two real aiortc publishers (VP8 + Opus) in a room, the room's recording tap
into the recorder for about 4 s; the stored, sealed recording decodes with both participants' video and
audio for that long."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import av
import pytest

from server.clock import SystemClock
from server.media import MediaRouter
from server.recording.keywrap import X25519KeyFiles
from server.recording.muxer import Track
from server.recording.reader import Completeness, RecordingReader
from server.recording.recorder import Recorder
from server.recording.spool import Spool
from server.recording.stores import FolderStore
from server.recording.writer import SealedWriter, begin_recording
from tests.media.peers import Peer, until

RECORD_FOR = 4.0


@pytest.fixture
async def relay() -> AsyncIterator[MediaRouter]:
    router = MediaRouter()
    yield router
    await router.close()


async def test_a_live_room_is_recorded_through_its_tap_and_decodes_for_the_recorded_time(
        relay: MediaRouter, tmp_path: Path) -> None:
    room = relay.room("booking-41")
    a, b = Peer("staff:1", tag=1, tone=440), Peer("guardian:3", tag=2, tone=880)
    try:
        await a.connect(await room.join("staff:1"))
        await b.connect(await room.join("guardian:3"))
        await until(lambda: len(b.video_from(1)) >= 5 and len(a.video_from(2)) >= 5)
        store, keys = FolderStore(tmp_path / "rec"), X25519KeyFiles(tmp_path / "keys")
        keys.ensure()
        clock = SystemClock()
        spool = Spool(tmp_path / "spool", store, clock)
        spool.start()
        rid = uuid.uuid4()
        new = begin_recording(rid, keys.public_wrapper())
        tap = room.tap()
        tracks = [Track(p, k) for p in ("staff:1", "guardian:3") for k in ("video", "audio")]
        recorder = Recorder(tap, SealedWriter(rid, new.sealer, spool, clock), tracks, close_source=tap.close)
        began = time.monotonic()
        recorder.start()
        await asyncio.sleep(RECORD_FOR)
        await recorder.stop()
        recorded = time.monotonic() - began
        await asyncio.wait_for(spool.wait_idle(), 10)
        await spool.close()
    finally:
        await a.close()
        await b.close()
    assert recorder.error is None, recorder.error
    reader = await RecordingReader.open(store, rid, keys.wrapper().unwrap(new.wrapped_key, rid))
    assert reader.state.completeness is Completeness.COMPLETE
    webm = await reader.read_all()
    titles = [s.metadata.get("title") for s in av.open(io.BytesIO(webm)).streams]
    assert titles == ["staff:1 video", "staff:1 audio", "guardian:3 video", "guardian:3 audio", "chat"]
    for index in range(4):
        container = av.open(io.BytesIO(webm))
        decoded = list(container.decode(container.streams[index]))
        assert len(decoded) > 10, titles[index]
        assert decoded[0].time is not None and decoded[-1].time is not None
        span = decoded[-1].time - decoded[0].time
        assert abs(span - recorded) < 1.0, (titles[index], span, recorded)
