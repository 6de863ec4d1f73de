"""The storage end of a recording: seal by size or every 2 s on the clock, final chunk on close."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from server.clock import FakeClock
from server.recording.keywrap import X25519KeyFiles
from server.recording.reader import Completeness, RecordingReader
from server.recording.spool import Spool
from server.recording.stores import FolderStore
from server.recording.writer import SealedWriter, begin_recording


@pytest.fixture
def parts(tmp_path: Path) -> tuple[FolderStore, Spool, FakeClock, X25519KeyFiles]:
    store = FolderStore(tmp_path / "recordings")
    clock = FakeClock()
    keys = X25519KeyFiles(tmp_path / "keys")
    keys.ensure()
    return store, Spool(tmp_path / "spool", store, clock), clock, keys


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_seals_by_size_and_every_two_seconds_then_reads_back_complete(
    parts: tuple[FolderStore, Spool, FakeClock, X25519KeyFiles],
) -> None:
    store, spool, clock, keys = parts
    rid = uuid.uuid4()
    new = begin_recording(rid, keys.public_wrapper(), chunk_size_hint=100)
    writer = SealedWriter(rid, new.sealer, spool, clock)
    writer.start()
    spool.start()
    try:
        await writer.write(b"a" * 10)
        await _settle()
        clock.advance(1.9)
        await _settle()
        assert writer.chunks_sealed == 0
        clock.advance(0.1)
        await _settle()
        assert writer.chunks_sealed == 1  # 2 s old: sealed though far below the size hint
        await writer.write(b"b" * 250)
        assert writer.chunks_sealed == 3  # two full chunks at once, 50 bytes still buffered
        await writer.close()
        assert writer.chunks_sealed == 4
        await asyncio.wait_for(spool.wait_idle(), 10)
    finally:
        await spool.close()

    data_key = keys.wrapper().unwrap(new.wrapped_key, rid)
    reader = await RecordingReader.open(store, rid, data_key)
    assert reader.state.completeness is Completeness.COMPLETE
    assert await reader.read_all() == b"a" * 10 + b"b" * 250
    assert [s.length for s in reader.index.spans] == [10, 100, 100, 50]


async def test_abort_leaves_an_interrupted_recording_that_plays_what_was_sealed(
    parts: tuple[FolderStore, Spool, FakeClock, X25519KeyFiles],
) -> None:
    store, spool, clock, keys = parts
    rid = uuid.uuid4()
    new = begin_recording(rid, keys.public_wrapper(), chunk_size_hint=100)
    writer = SealedWriter(rid, new.sealer, spool, clock)
    spool.start()
    try:
        await writer.write(b"x" * 150)
        await writer.abort()  # like a crash: the 50 unsealed bytes are lost
        await asyncio.wait_for(spool.wait_idle(), 10)
    finally:
        await spool.close()
    reader = await RecordingReader.open(store, rid, keys.wrapper().unwrap(new.wrapped_key, rid))
    assert reader.interrupted
    assert await reader.read_all() == b"x" * 100
