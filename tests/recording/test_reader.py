"""Playing a sealed recording back from a store: status, damaged chunks, interrupted recordings, ranges."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from server.recording.reader import Completeness, RecordingMissing, RecordingReader
from server.recording.sealing import (
    ChunkSealer,
    DamagedChunk,
    OpenedChunk,
    RecordingHeader,
    new_data_key,
)
from server.recording.stores import FolderStore, RecordingStore

PARTS = [bytes([65 + i]) * (100 + i) for i in range(5)]  # A*100, B*101, ... E*104


class CountingStore:
    """A FolderStore that counts chunk reads, to show a range decrypts only what covers it."""

    def __init__(self, inner: FolderStore) -> None:
        self.inner = inner
        self.reads: list[int] = []
        self.put_chunk = inner.put_chunk
        self.list_chunks = inner.list_chunks
        self.delete_recording = inner.delete_recording
        self.exists = inner.exists

    async def get_chunk(self, recording_id: uuid.UUID, index: int) -> bytes:
        self.reads.append(index)
        return await self.inner.get_chunk(recording_id, index)


async def _record(
    store: RecordingStore, parts: list[bytes], *, finish: bool = True
) -> tuple[uuid.UUID, bytes, list[bytes]]:
    rid, key = uuid.uuid4(), new_data_key()
    sealer = ChunkSealer(key, RecordingHeader.new(rid, chunk_size_hint=128))
    blobs = []
    for i, part in enumerate(parts):
        _, blob = sealer.finish(part) if finish and i == len(parts) - 1 else sealer.seal(part)
        await store.put_chunk(rid, i, blob)
        blobs.append(blob)
    return rid, key, blobs


@pytest.fixture
def folder(tmp_path: Path) -> FolderStore:
    return FolderStore(tmp_path / "recordings")


async def test_complete_recording_reads_back_whole(folder: FolderStore) -> None:
    rid, key, _ = await _record(folder, PARTS)
    reader = await RecordingReader.open(folder, rid, key)
    assert reader.state.completeness is Completeness.COMPLETE
    assert not reader.interrupted
    assert await reader.read_all() == b"".join(PARTS)
    assert reader.index.total == sum(map(len, PARTS))


async def test_range_decrypts_only_the_covering_chunks(folder: FolderStore) -> None:
    rid, key, _ = await _record(folder, PARTS)
    counting = CountingStore(folder)
    reader = await RecordingReader.open(counting, rid, key)
    counting.reads.clear()
    whole = b"".join(PARTS)
    start, end = 150, 260  # inside chunk 1 (100..200) and chunk 2 (201..303)
    assert await reader.read_range(start, end) == whole[start:end]
    assert counting.reads == [1, 2]


async def test_random_access_to_one_chunk(folder: FolderStore) -> None:
    rid, key, _ = await _record(folder, PARTS)
    reader = await RecordingReader.open(folder, rid, key)
    chunk = await reader.read_chunk(3)
    assert chunk.plaintext == PARTS[3] and not chunk.last


async def test_missing_final_chunk_reads_as_interrupted_and_plays_to_the_last_sealed(
    folder: FolderStore,
) -> None:
    rid, key, _ = await _record(folder, PARTS, finish=False)  # the process died before finish()
    reader = await RecordingReader.open(folder, rid, key)
    assert reader.state.completeness is Completeness.INTERRUPTED
    assert await reader.read_all() == b"".join(PARTS)


async def test_truncated_by_deleting_the_last_chunk_is_interrupted(
    folder: FolderStore, tmp_path: Path
) -> None:
    rid, key, _ = await _record(folder, PARTS)
    (tmp_path / "recordings" / str(rid) / "00000004.chunk").unlink()
    reader = await RecordingReader.open(folder, rid, key)
    assert reader.interrupted
    assert await reader.read_all() == b"".join(PARTS[:4])


async def test_flipped_byte_damages_one_chunk_and_the_rest_play(folder: FolderStore, tmp_path: Path) -> None:
    rid, key, blobs = await _record(folder, PARTS)
    bad = bytearray(blobs[2])
    bad[-3] ^= 0x80
    (tmp_path / "recordings" / str(rid) / "00000002.chunk").write_bytes(bytes(bad))
    reader = await RecordingReader.open(folder, rid, key)
    results = [r async for r in reader.iter_chunks()]
    assert isinstance(results[2], DamagedChunk) and results[2].index == 2
    good = [r for r in results if isinstance(r, OpenedChunk)]
    assert [r.plaintext for r in good] == [PARTS[0], PARTS[1], PARTS[3], PARTS[4]]
    assert reader.state.completeness is Completeness.COMPLETE
    with pytest.raises(DamagedChunk):
        await reader.read_range(0, 10_000)
    assert await reader.read_range(0, 50) == PARTS[0][:50]


async def test_damaged_first_chunk_does_not_hide_the_rest(folder: FolderStore, tmp_path: Path) -> None:
    rid, key, blobs = await _record(folder, PARTS)
    (tmp_path / "recordings" / str(rid) / "00000000.chunk").write_bytes(blobs[0][:-1] + b"\x00")
    reader = await RecordingReader.open(folder, rid, key)
    assert (await reader.read_chunk(1)).plaintext == PARTS[1]
    with pytest.raises(DamagedChunk):
        await reader.read_chunk(0)


async def test_swapped_chunks_are_both_reported_damaged(folder: FolderStore) -> None:
    rid, key, blobs = await _record(folder, PARTS)
    await folder.put_chunk(rid, 1, blobs[3])
    await folder.put_chunk(rid, 3, blobs[1])
    reader = await RecordingReader.open(folder, rid, key)
    damaged = [r.index for r in [r async for r in reader.iter_chunks()] if isinstance(r, DamagedChunk)]
    assert damaged == [1, 3]


async def test_chunk_from_another_recording_is_damaged(folder: FolderStore) -> None:
    rid_a, key_a, _ = await _record(folder, PARTS)
    _, _, blobs_b = await _record(folder, PARTS)
    await folder.put_chunk(rid_a, 2, blobs_b[2])
    reader = await RecordingReader.open(folder, rid_a, key_a)
    with pytest.raises(DamagedChunk):
        await reader.read_chunk(2)
    assert (await reader.read_chunk(3)).plaintext == PARTS[3]


async def test_a_gap_stops_playback_before_it_and_is_reported(folder: FolderStore, tmp_path: Path) -> None:
    rid, key, _ = await _record(folder, PARTS)
    (tmp_path / "recordings" / str(rid) / "00000002.chunk").unlink()
    reader = await RecordingReader.open(folder, rid, key)
    assert reader.state.missing == (2,)
    assert reader.interrupted
    assert await reader.read_all() == PARTS[0] + PARTS[1]


async def test_wrong_data_key_cannot_open(folder: FolderStore) -> None:
    rid, _, _ = await _record(folder, PARTS)
    with pytest.raises(DamagedChunk):
        await RecordingReader.open(folder, rid, new_data_key())


async def test_unknown_recording_is_missing(folder: FolderStore) -> None:
    with pytest.raises(RecordingMissing):
        await RecordingReader.open(folder, uuid.uuid4(), new_data_key())


async def test_header_from_the_database_is_checked_against_the_recording(folder: FolderStore) -> None:
    rid, key, _ = await _record(folder, PARTS)
    other = RecordingHeader.new(uuid.uuid4())
    with pytest.raises(DamagedChunk):
        await RecordingReader.open(folder, rid, key, header=other)


async def test_reader_works_over_s3_too(s3_store: RecordingStore) -> None:
    rid, key, _ = await _record(s3_store, PARTS)
    reader = await RecordingReader.open(s3_store, rid, key)
    assert await reader.read_range(95, 105) == (PARTS[0] + PARTS[1])[95:105]
    assert not reader.interrupted
