"""One contract for every RecordingStore: the folder (default) and S3 (a real SeaweedFS)."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import pytest

from server.recording.stores import (
    ChunkInfo,
    ChunkNotFound,
    FolderStore,
    RecordingStore,
    RecordingStoreError,
    S3Store,
    StoreUnavailable,
)
from tests.support.seaweedfs import SeaweedFS


async def test_put_get_list_exists_delete(store: RecordingStore) -> None:
    rid = uuid.uuid4()
    assert not await store.exists(rid)
    assert await store.list_chunks(rid) == []
    for i, data in enumerate([b"zero", b"one!", b"two..."]):
        await store.put_chunk(rid, i, data)
    assert await store.exists(rid)
    assert await store.get_chunk(rid, 1) == b"one!"
    assert await store.list_chunks(rid) == [ChunkInfo(0, 4), ChunkInfo(1, 4), ChunkInfo(2, 6)]
    assert await store.delete_recording(rid) == 3
    assert not await store.exists(rid)
    with pytest.raises(ChunkNotFound):
        await store.get_chunk(rid, 0)


async def test_missing_chunk_is_chunk_not_found_with_status_404(store: RecordingStore) -> None:
    rid = uuid.uuid4()
    await store.put_chunk(rid, 0, b"x")
    with pytest.raises(ChunkNotFound) as info:
        await store.get_chunk(rid, 5)
    assert info.value.status == 404
    assert info.value.__suppress_context__  # vendor error translated `from None`


async def test_chunks_are_listed_in_index_order_and_recordings_stay_apart(store: RecordingStore) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    for i in (10, 2, 0, 1):
        await store.put_chunk(a, i, bytes(i + 1))
    await store.put_chunk(b, 0, b"other")
    assert [c.index for c in await store.list_chunks(a)] == [0, 1, 2, 10]
    assert await store.delete_recording(a) == 4
    assert await store.get_chunk(b, 0) == b"other"


async def test_rewriting_a_chunk_with_the_same_bytes_is_idempotent(store: RecordingStore) -> None:
    """The spool may upload a chunk twice (crash between upload and forgetting it)."""
    rid = uuid.uuid4()
    await store.put_chunk(rid, 0, b"same")
    await store.put_chunk(rid, 0, b"same")
    assert await store.list_chunks(rid) == [ChunkInfo(0, 4)]


async def test_deleting_an_unknown_recording_deletes_nothing(store: RecordingStore) -> None:
    assert await store.delete_recording(uuid.uuid4()) == 0


async def test_large_chunk_round_trips(store: RecordingStore) -> None:
    rid, data = uuid.uuid4(), bytes(range(256)) * 8192  # 2 MiB
    await store.put_chunk(rid, 0, data)
    assert await store.get_chunk(rid, 0) == data


async def test_many_chunks_list_past_one_page(store: RecordingStore) -> None:
    rid = uuid.uuid4()
    for i in range(25):
        await store.put_chunk(rid, i, b"c")
    assert [c.index for c in await store.list_chunks(rid)] == list(range(25))
    assert await store.delete_recording(rid) == 25


async def test_folder_store_writes_private_files_and_no_temp_leftovers(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "recordings")
    rid = uuid.uuid4()
    await store.put_chunk(rid, 0, b"sealed")
    folder = tmp_path / "recordings" / str(rid)
    assert [p.name for p in folder.iterdir()] == ["00000000.chunk"]
    assert stat.S_IMODE((folder / "00000000.chunk").stat().st_mode) == 0o600


async def test_folder_store_ignores_half_written_temp_files(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "recordings")
    rid = uuid.uuid4()
    await store.put_chunk(rid, 0, b"sealed")
    (tmp_path / "recordings" / str(rid) / ".00000001.chunk.dead.tmp").write_bytes(b"half")
    assert [c.index for c in await store.list_chunks(rid)] == [0]


async def test_s3_store_unreachable_is_store_unavailable() -> None:
    store = S3Store.from_settings(
        bucket="b",
        endpoint_url="http://127.0.0.1:9",
        region="us-east-1",
        access_key="k",
        secret_key="s",  # noqa: S106 - nothing listens on port 9
        connect_timeout=1,
        read_timeout=1,
    )
    try:
        with pytest.raises(StoreUnavailable) as info:
            await store.put_chunk(uuid.uuid4(), 0, b"x")
        assert info.value.status == 503
    finally:
        await store.close()


async def test_s3_store_wrong_secret_is_a_store_error_not_retryable(running_seaweedfs: SeaweedFS) -> None:
    bad = S3Store.from_settings(
        bucket=running_seaweedfs.bucket,
        endpoint_url=running_seaweedfs.endpoint,
        region=running_seaweedfs.region,
        access_key=running_seaweedfs.access_key,
        secret_key="not-the-secret",  # noqa: S106 - deliberately wrong
    )
    try:
        with pytest.raises(RecordingStoreError) as info:
            await bad.put_chunk(uuid.uuid4(), 0, b"x")
        assert not isinstance(info.value, StoreUnavailable)
        assert "refused" in info.value.detail
    finally:
        await bad.close()


async def test_s3_store_unknown_bucket_is_a_store_error(running_seaweedfs: SeaweedFS) -> None:
    bad = S3Store.from_settings(
        bucket="no-such-bucket-here",
        endpoint_url=running_seaweedfs.endpoint,
        region=running_seaweedfs.region,
        access_key=running_seaweedfs.access_key,
        secret_key=running_seaweedfs.secret_key,
    )
    try:
        with pytest.raises(RecordingStoreError):
            await bad.list_chunks(uuid.uuid4())
    finally:
        await bad.close()
