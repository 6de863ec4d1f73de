"""The recorder muxes the relay's encoded VP8/Opus frames into WebM without re-encoding, through the sealed
writer; the stored recording decrypts and PyAV decodes every participant's tracks for the right duration."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import av

from server.clock import FakeClock
from server.media.frames import AUDIO_TIME_BASE, EncodedFrame
from server.recording.keywrap import X25519KeyFiles
from server.recording.muxer import Track, vp8_size
from server.recording.reader import Completeness, RecordingReader
from server.recording.recorder import Recorder
from server.recording.spool import Spool
from server.recording.stores import FolderStore, S3Store
from server.recording.writer import SealedWriter, begin_recording
from tests.media.peers import until
from tests.support.frames import opus_frames, vp8_frames
from tests.support.seaweedfs import SeaweedFS

SECONDS = 3


async def _feed(frames: list[EncodedFrame]) -> AsyncIterator[EncodedFrame]:
    for frame in frames:
        yield frame
        await asyncio.sleep(0)


async def test_two_participants_are_recorded_without_reencoding_and_decode_back(tmp_path: Path) -> None:
    frames = (vp8_frames("staff:1", 0.0, 10, SECONDS) + opus_frames("staff:1", 0.0, SECONDS)
              + vp8_frames("guardian:3", 0.5, 120, SECONDS) + opus_frames("guardian:3", 0.5, SECONDS))
    frames.sort(key=lambda f: f.arrival)
    frames.append(EncodedFrame("observer:9", "audio", "opus", b"x", 0, AUDIO_TIME_BASE, True, arrival=1.0))
    store, clock, keys = FolderStore(tmp_path / "rec"), FakeClock(), X25519KeyFiles(tmp_path / "keys")
    keys.ensure()
    spool = Spool(tmp_path / "spool", store, clock)
    rid = uuid.uuid4()
    new = begin_recording(rid, keys.public_wrapper(), chunk_size_hint=4 * 1024)
    tracks = [Track(p, k) for p in ("staff:1", "guardian:3") for k in ("video", "audio")]
    recorder = Recorder(_feed(frames), SealedWriter(rid, new.sealer, spool, clock), tracks)
    spool.start()
    try:
        recorder.start()
        for _ in range(200):
            await asyncio.sleep(0.01)
            if recorder.muxer.frames_written + recorder.muxer.frames_skipped >= len(frames):
                break
        await recorder.stop()
        await asyncio.wait_for(spool.wait_idle(), 10)
    finally:
        await spool.close()
    assert recorder.error is None and recorder.muxer.frames_skipped == 1  # the undeclared track only
    reader = await RecordingReader.open(store, rid, keys.wrapper().unwrap(new.wrapped_key, rid))
    assert reader.state.completeness is Completeness.COMPLETE and reader.state.playable_chunks >= 3
    webm = await reader.read_all()

    written = {f.data for f in frames if f.kind == "video"}
    demuxed = av.open(io.BytesIO(webm))
    titles = [s.metadata.get("title") for s in demuxed.streams]
    assert titles == ["staff:1 video", "staff:1 audio", "guardian:3 video", "guardian:3 audio", "chat"]
    assert all(bytes(p) in written for p in demuxed.demux(video=0) if p.size)  # the same bytes: no re-encoding
    for index in range(4):
        container = av.open(io.BytesIO(webm))
        decoded = list(container.decode(container.streams[index]))
        first, last = decoded[0], decoded[-1]
        assert last.time is not None and first.time is not None
        span = last.time - first.time
        assert abs(span - SECONDS) < 0.1, (titles[index], span)
        if index >= 2:  # the guardian arrived half a second later and stays in step
            assert abs(first.time - 0.5) < 0.05
    assert vp8_size(next(f.data for f in frames if f.keyframe and f.kind == "video")) == (320, 240)


async def test_a_recording_survives_seaweedfs_going_away_in_the_middle(
        tmp_path: Path, running_seaweedfs: SeaweedFS, s3_store_factory: Callable[[str], S3Store]) -> None:
    """The S3 store is killed half-way through a recording made by the recorder, then comes back: whole."""
    frames = (vp8_frames("staff:1", 0.0, 10, SECONDS) + opus_frames("staff:1", 0.0, SECONDS)
              + vp8_frames("guardian:3", 0.2, 120, SECONDS) + opus_frames("guardian:3", 0.2, SECONDS))
    frames.sort(key=lambda f: f.arrival)
    half = len(frames) // 2
    store, clock, keys = s3_store_factory("fault-recorder/recordings/"), FakeClock(), X25519KeyFiles(tmp_path / "k")
    keys.ensure()
    spool = Spool(tmp_path / "spool", store, clock, retry_initial=1.0, retry_max=4.0)
    rid = uuid.uuid4()
    new = begin_recording(rid, keys.public_wrapper(), chunk_size_hint=4 * 1024)
    store_down = asyncio.Event()

    async def feed() -> AsyncIterator[EncodedFrame]:
        for index, frame in enumerate(frames):
            if index == half:
                await store_down.wait()
            yield frame
            await asyncio.sleep(0)

    tracks = [Track(p, k) for p in ("staff:1", "guardian:3") for k in ("video", "audio")]
    recorder = Recorder(feed(), SealedWriter(rid, new.sealer, spool, clock), tracks)
    spool.start()
    try:
        recorder.start()
        await until(lambda: spool.stats.uploaded >= 1, within=20)
        running_seaweedfs.stop()
        store_down.set()
        await until(lambda: recorder.muxer.frames_written + recorder.muxer.frames_skipped >= len(frames), within=20)
        await recorder.stop()
        await until(lambda: spool.stats.failures >= 1, within=20)
        running_seaweedfs.start()
        clock.advance(4)
        await asyncio.wait_for(spool.wait_idle(), 30)
    finally:
        running_seaweedfs.start()
        await spool.close()
    reader = await RecordingReader.open(store, rid, keys.wrapper().unwrap(new.wrapped_key, rid))
    assert reader.state.completeness is Completeness.COMPLETE
    webm = await reader.read_all()
    for index in range(4):
        container = av.open(io.BytesIO(webm))
        decoded = [f for f in container.decode(container.streams[index]) if f.time is not None]
        assert abs(decoded[-1].time - decoded[0].time - SECONDS) < 0.1
    await store.delete_recording(rid)
