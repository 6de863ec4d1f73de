"""The recorder muxes the relay's encoded VP8/Opus frames into WebM without re-encoding, through the sealed
writer; the stored recording decrypts and PyAV decodes every participant's tracks for the right duration."""

from __future__ import annotations

import asyncio
import fractions
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import av

from server.clock import FakeClock
from server.media.frames import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame, vp8_is_keyframe
from server.recording.keywrap import X25519KeyFiles
from server.recording.muxer import Track, vp8_size
from server.recording.reader import Completeness, RecordingReader
from server.recording.recorder import Recorder
from server.recording.spool import Spool
from server.recording.stores import FolderStore
from server.recording.writer import SealedWriter, begin_recording

SECONDS = 3


def _vp8(pid: str, start: float, shade: int) -> list[EncodedFrame]:
    """Real VP8 frames (30 fps, 320x240) as a publisher would send them: pts from 0 on a 90 kHz clock."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt = 320, 240, "yuv420p"
    enc.time_base = fractions.Fraction(1, 30)
    frames = []
    for i in range(SECONDS * 30 + 1):
        picture = av.VideoFrame(320, 240, "yuv420p") if i < SECONDS * 30 else None
        if picture is not None:
            for plane in picture.planes:
                plane.update(bytes([(shade + i) % 255]) * plane.buffer_size)
            picture.pts = i
        for packet in enc.encode(picture):
            data = bytes(packet)
            frames.append(EncodedFrame(pid, "video", "VP8", data, int(packet.pts) * 3000, VIDEO_TIME_BASE,
                                       vp8_is_keyframe(data), arrival=start + int(packet.pts) / 30))
    return frames


def _opus(pid: str, start: float) -> list[EncodedFrame]:
    enc = av.CodecContext.create("libopus", "w")
    enc.sample_rate, enc.layout, enc.format = 48000, "stereo", "s16"
    frames = []
    for i in range(SECONDS * 50):
        sound = av.AudioFrame(format="s16", layout="stereo", samples=960)
        sound.planes[0].update(bytes(sound.planes[0].buffer_size))
        sound.sample_rate, sound.pts = 48000, i * 960
        for packet in enc.encode(sound):
            frames.append(EncodedFrame(pid, "audio", "opus", bytes(packet), int(packet.pts), AUDIO_TIME_BASE, True,
                                       arrival=start + int(packet.pts) / 48000))
    return frames


async def _feed(frames: list[EncodedFrame]) -> AsyncIterator[EncodedFrame]:
    for frame in frames:
        yield frame
        await asyncio.sleep(0)


async def test_two_participants_are_recorded_without_reencoding_and_decode_back(tmp_path: Path) -> None:
    frames = _vp8("staff:1", 0.0, 10) + _opus("staff:1", 0.0) + _vp8("guardian:3", 0.5, 120) + _opus("guardian:3", 0.5)
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
    assert titles == ["staff:1 video", "staff:1 audio", "guardian:3 video", "guardian:3 audio"]
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
