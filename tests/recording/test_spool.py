"""The local spool: chunks are durable on disk first, uploaded as the recording goes, kept while the store
is down, retried with back-off on the (fake) clock, resumed after a restart; and the real S3 fault test."""

from __future__ import annotations

import asyncio
import errno
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from server.clock import FakeClock
from server.recording.reader import Completeness, RecordingReader
from server.recording.sealing import ChunkSealer, RecordingHeader, new_data_key
from server.recording.spool import Spool, SpoolFull
from server.recording.stores import ChunkInfo, FolderStore, S3Store, StoreUnavailable
from tests.support.seaweedfs import SeaweedFS


class FlakyStore:
    """A FolderStore that can be switched off, counting upload attempts."""

    def __init__(self, root: Path) -> None:
        self.inner = FolderStore(root)
        self.down = False
        self.attempts = 0

    async def put_chunk(self, recording_id: uuid.UUID, index: int, data: bytes) -> None:
        self.attempts += 1
        if self.down:
            raise StoreUnavailable("store is down (test)")
        await self.inner.put_chunk(recording_id, index, data)

    async def get_chunk(self, recording_id: uuid.UUID, index: int) -> bytes:
        return await self.inner.get_chunk(recording_id, index)

    async def list_chunks(self, recording_id: uuid.UUID) -> list[ChunkInfo]:
        return await self.inner.list_chunks(recording_id)

    async def delete_recording(self, recording_id: uuid.UUID) -> int:
        return await self.inner.delete_recording(recording_id)

    async def exists(self, recording_id: uuid.UUID) -> bool:
        return await self.inner.exists(recording_id)


async def until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for something the uploader does on the event loop (never for a deadline: the clock is fake)."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls counters of a store double; bounded by the timeout
            await asyncio.sleep(0.01)


def spooled_files(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.is_file())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def flaky(tmp_path: Path) -> FlakyStore:
    return FlakyStore(tmp_path / "store")


async def test_chunks_are_uploaded_and_then_removed_from_the_spool(
    tmp_path: Path, flaky: FlakyStore, clock: FakeClock
) -> None:
    spool = Spool(tmp_path / "spool", flaky, clock)
    spool.start()
    try:
        rid = uuid.uuid4()
        for i in range(3):
            await spool.write_chunk(rid, i, f"chunk {i}".encode())
        await asyncio.wait_for(spool.wait_recording(rid), 10)
        assert [c.index for c in await flaky.list_chunks(rid)] == [0, 1, 2]
        assert spooled_files(tmp_path / "spool") == []
        assert spool.stats.uploaded == 3
    finally:
        await spool.close()


async def test_store_down_keeps_every_chunk_and_uploads_when_it_returns(
    tmp_path: Path, flaky: FlakyStore, clock: FakeClock
) -> None:
    spool = Spool(tmp_path / "spool", flaky, clock, workers=1, retry_initial=1.0, retry_max=8.0)
    spool.start()
    try:
        flaky.down = True
        rid = uuid.uuid4()
        for i in range(4):
            await spool.write_chunk(rid, i, b"x" * 10)
        await until(lambda: flaky.attempts >= 1)
        assert spool.pending() == {rid: [0, 1, 2, 3]}
        assert spooled_files(tmp_path / "spool") == [f"{i:08d}.chunk" for i in range(4)]
        # Back-off: nothing is retried before the clock says so, then the delay doubles.
        attempts = flaky.attempts
        clock.advance(0.9)
        await asyncio.sleep(0.05)
        assert flaky.attempts == attempts
        clock.advance(0.1)
        await until(lambda: flaky.attempts == attempts + 1)
        clock.advance(1.9)
        await asyncio.sleep(0.05)
        assert flaky.attempts == attempts + 1
        assert spool.stats.retrying_since is not None
        flaky.down = False
        clock.advance(8)
        await asyncio.wait_for(spool.wait_idle(), 10)
        assert [c.index for c in await flaky.list_chunks(rid)] == [0, 1, 2, 3]
        assert spooled_files(tmp_path / "spool") == []
        assert spool.stats.retrying_since is None
    finally:
        await spool.close()


async def test_restart_recovers_pending_chunks_and_drops_half_written_ones(
    tmp_path: Path, flaky: FlakyStore, clock: FakeClock
) -> None:
    flaky.down = True
    first = Spool(tmp_path / "spool", flaky, clock)
    first.start()
    rid = uuid.uuid4()
    for i in range(3):
        await first.write_chunk(rid, i, b"sealed")
    await until(lambda: flaky.attempts >= 1)
    await first.close()  # the process stops (or dies) with chunks not uploaded
    (tmp_path / "spool" / str(rid) / ".00000003.chunk.dead.tmp").write_bytes(b"half a chunk")

    flaky.down = False
    second = Spool(tmp_path / "spool", flaky, clock)
    assert second.recover() == {rid: [0, 1, 2]}
    second.start()
    try:
        await asyncio.wait_for(second.wait_idle(), 10)
        assert [c.index for c in await flaky.list_chunks(rid)] == [0, 1, 2]
        assert spooled_files(tmp_path / "spool") == []
    finally:
        await second.close()


async def test_has_room_follows_free_space_threshold(
    tmp_path: Path, flaky: FlakyStore, clock: FakeClock
) -> None:
    free = {"bytes": 10_000}
    spool = Spool(tmp_path / "spool", flaky, clock, min_free_bytes=5_000, disk_usage=lambda _: free["bytes"])
    assert spool.free_bytes() == 10_000 and spool.has_room()
    free["bytes"] = 4_999
    assert not spool.has_room()


async def test_disk_full_is_reported_and_leaves_no_half_chunk(
    tmp_path: Path, flaky: FlakyStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("server.recording.spool.write_file_atomically", no_space)
    spool = Spool(tmp_path / "spool", flaky, clock)
    with pytest.raises(SpoolFull) as info:
        await spool.write_chunk(uuid.uuid4(), 0, b"x")
    assert info.value.status == 503
    assert spool.pending() == {} and spooled_files(tmp_path / "spool") == []


def test_real_free_space_is_reported(tmp_path: Path, flaky: FlakyStore, clock: FakeClock) -> None:
    spool = Spool(tmp_path / "spool", flaky, clock, min_free_bytes=1)
    assert spool.free_bytes() > 0 and spool.has_room()


async def test_s3_fault_mid_recording_the_recording_is_complete(
    tmp_path: Path,
    running_seaweedfs: SeaweedFS,
    s3_store_factory: Callable[[str], S3Store],
    clock: FakeClock,
) -> None:
    """SeaweedFS is killed during a recording and comes back: every chunk arrives, the recording is whole."""
    store = s3_store_factory("fault/recordings/")
    spool = Spool(tmp_path / "spool", store, clock, retry_initial=1.0, retry_max=4.0)
    spool.start()
    rid, key = uuid.uuid4(), new_data_key()
    sealer = ChunkSealer(key, RecordingHeader.new(rid, chunk_size_hint=4096))
    parts = [bytes([i]) * 4000 for i in range(8)]
    try:
        for part in parts[:3]:
            await spool.write_chunk(rid, *sealer.seal(part))
        await asyncio.wait_for(spool.wait_idle(), 20)

        running_seaweedfs.stop()
        for part in parts[3:7]:
            await spool.write_chunk(rid, *sealer.seal(part))
        await spool.write_chunk(rid, *sealer.finish(parts[7]))
        await until(lambda: spool.stats.failures >= 1, within=20)
        assert spool.pending()[rid] == [3, 4, 5, 6, 7]

        running_seaweedfs.start()
        clock.advance(4)
        await asyncio.wait_for(spool.wait_idle(), 30)
        assert spooled_files(tmp_path / "spool") == []

        reader = await RecordingReader.open(store, rid, key)
        assert reader.state.completeness is Completeness.COMPLETE
        assert await reader.read_all() == b"".join(parts)
    finally:
        running_seaweedfs.start()
        await spool.close()
        await store.delete_recording(rid)
