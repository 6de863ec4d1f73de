"""Where sealed chunks live: a folder (embedded default) or any S3 API (AWS S3, MinIO, SeaweedFS).

One object per sealed chunk, ``<prefix><recording id>/<index:08d>.chunk``: S3 objects are immutable, so a
recording is uploaded chunk by chunk as it goes, and a crash loses at most the chunk not yet sealed.
Both stores keep the same contract (tests/recording/test_stores.py runs one test suite over both).
Vendor errors are translated here: callers only ever see ``RecordingStoreError`` and its kin.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from server.errors import DuetError
from server.keys import private_folder

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

T = TypeVar("T")

CHUNK_NAME = re.compile(r"^(\d{8})\.chunk$")


class RecordingStoreError(DuetError):
    """The recording store refused or failed an operation (configuration, permissions, bad data)."""

    status = 502
    code = "recording_store"
    title = "Recording store error"


class ChunkNotFound(RecordingStoreError):
    status = 404
    code = "recording_chunk_not_found"
    title = "Not found"


class StoreUnavailable(RecordingStoreError):
    """The store cannot be reached now; retrying later may work (the spool does)."""

    status = 503
    code = "recording_store_unavailable"
    title = "Temporarily unavailable"


@dataclass(frozen=True)
class ChunkInfo:
    index: int
    size: int  # sealed object size in bytes


def chunk_name(index: int) -> str:
    if not 0 <= index < 10**8:
        raise RecordingStoreError(f"chunk index {index} out of range")
    return f"{index:08d}.chunk"


class RecordingStore(Protocol):
    """Immutable sealed chunks, addressed by (recording id, chunk index)."""

    async def put_chunk(self, recording_id: uuid.UUID, index: int, data: bytes) -> None:
        """Store (or idempotently replace with the same bytes) one sealed chunk."""
        ...

    async def get_chunk(self, recording_id: uuid.UUID, index: int) -> bytes:
        """Raises ChunkNotFound."""
        ...

    async def list_chunks(self, recording_id: uuid.UUID) -> list[ChunkInfo]:
        """Every chunk of the recording, sorted by index (empty if none)."""
        ...

    async def delete_recording(self, recording_id: uuid.UUID) -> int:
        """Delete every chunk; returns how many were deleted (0 if none)."""
        ...

    async def exists(self, recording_id: uuid.UUID) -> bool:
        """True if the recording has at least one chunk."""
        ...

    async def close(self) -> None:
        """Release connections and threads (process shutdown, the end of a CLI command)."""
        ...


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file_atomically(path: Path, data: bytes) -> None:
    """Write ``path`` so that it is either absent or whole: temp file, fsync, rename, fsync the folder.

    The file is created 0600: sealed media is ciphertext, but its size and timing still say something.
    """
    private_folder(path.parent)  # the recordings folder itself too, not only the recording's own
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def list_chunk_files(folder: Path) -> list[ChunkInfo]:
    """Sealed chunk files in ``folder`` (temp files of interrupted writes are ignored)."""
    out: list[ChunkInfo] = []
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for entry in entries:
        m = CHUNK_NAME.match(entry.name)
        if m and entry.is_file():
            out.append(ChunkInfo(int(m.group(1)), entry.stat().st_size))
    out.sort(key=lambda c: c.index)
    return out


class FolderStore:
    """Chunks as files under ``root/<recording id>/`` (default ``<home>/recordings``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""

    def _dir(self, recording_id: uuid.UUID) -> Path:
        return self.root / str(uuid.UUID(str(recording_id)))

    async def put_chunk(self, recording_id: uuid.UUID, index: int, data: bytes) -> None:
        path = self._dir(recording_id) / chunk_name(index)
        await asyncio.to_thread(self._guard, write_file_atomically, path, data)

    async def get_chunk(self, recording_id: uuid.UUID, index: int) -> bytes:
        path = self._dir(recording_id) / chunk_name(index)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise ChunkNotFound(f"Chunk {index} of recording {recording_id} is not in the store.") from None
        except OSError as exc:
            raise RecordingStoreError(f"Reading the recording folder failed: {exc.strerror}.") from None

    async def list_chunks(self, recording_id: uuid.UUID) -> list[ChunkInfo]:
        return await asyncio.to_thread(self._guard, list_chunk_files, self._dir(recording_id))

    async def delete_recording(self, recording_id: uuid.UUID) -> int:
        return await asyncio.to_thread(self._guard, self._delete, self._dir(recording_id))

    async def exists(self, recording_id: uuid.UUID) -> bool:
        return bool(await self.list_chunks(recording_id))

    @staticmethod
    def _delete(folder: Path) -> int:
        count = 0
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return 0
        for entry in entries:
            os.unlink(entry.path)
            if CHUNK_NAME.match(entry.name):
                count += 1
        with contextlib.suppress(OSError):
            folder.rmdir()
        return count

    @staticmethod
    def _guard(fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except OSError as exc:
            raise RecordingStoreError(f"The recording folder failed: {exc.strerror}.") from None


_UNAVAILABLE_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Store:
    """Chunks as S3 objects ``<prefix><recording id>/<index:08d>.chunk`` in one bucket.

    boto3 is synchronous: every call runs in this store's own thread pool, whose size bounds how many
    requests are in flight. Call ``close()`` on shutdown.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        prefix: str = "recordings/",
        max_concurrency: int = 4,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="s3store")

    @classmethod
    def from_settings(
        cls,
        *,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        prefix: str = "recordings/",
        max_concurrency: int = 4,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> S3Store:
        """Build the boto3 client. Retries are left to the spool, so a dead store fails fast."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                max_pool_connections=max_concurrency,
            ),
        )
        return cls(client, bucket, prefix=prefix, max_concurrency=max_concurrency)

    async def close(self) -> None:
        await asyncio.to_thread(self.shutdown)

    def shutdown(self) -> None:
        """``close`` for code without an event loop (test fixtures): wait for the threads, end the client."""
        self._pool.shutdown(wait=True)
        self._client.close()

    def _key(self, recording_id: uuid.UUID, index: int) -> str:
        return f"{self._folder(recording_id)}{chunk_name(index)}"

    def _folder(self, recording_id: uuid.UUID) -> str:
        return f"{self.prefix}{uuid.UUID(str(recording_id))}/"

    async def _call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))
        except Exception as exc:
            ours = _translate(exc)
            if ours is exc:  # not a botocore error: a bug of ours, keep its traceback
                raise
            raise ours from None

    async def put_chunk(self, recording_id: uuid.UUID, index: int, data: bytes) -> None:
        await self._call(
            self._client.put_object, Bucket=self.bucket, Key=self._key(recording_id, index), Body=data
        )

    async def get_chunk(self, recording_id: uuid.UUID, index: int) -> bytes:
        key = self._key(recording_id, index)

        def get() -> bytes:
            return self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        try:
            return await self._call(get)
        except ChunkNotFound:
            raise ChunkNotFound(f"Chunk {index} of recording {recording_id} is not in the store.") from None

    async def list_chunks(self, recording_id: uuid.UUID) -> list[ChunkInfo]:
        folder = self._folder(recording_id)

        def list_all() -> list[ChunkInfo]:
            out: list[ChunkInfo] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                for obj in page.get("Contents", []):
                    m = CHUNK_NAME.match(obj["Key"][len(folder) :])
                    if m:
                        out.append(ChunkInfo(int(m.group(1)), int(obj["Size"])))
            out.sort(key=lambda c: c.index)
            return out

        return await self._call(list_all)

    async def delete_recording(self, recording_id: uuid.UUID) -> int:
        folder = self._folder(recording_id)

        def delete_all() -> int:
            count = 0
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=folder):
                keys: list[ObjectIdentifierTypeDef] = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if not keys:
                    continue
                resp = self._client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                if resp.get("Errors"):
                    first = resp["Errors"][0]
                    raise RecordingStoreError(
                        f"The store refused to delete {len(resp['Errors'])} chunk(s): {first.get('Code')}."
                    )
                count += sum(1 for k in keys if CHUNK_NAME.match(k["Key"][len(folder) :]))
            return count

        return await self._call(delete_all)

    async def exists(self, recording_id: uuid.UUID) -> bool:
        folder = self._folder(recording_id)

        def any_key() -> bool:
            resp = self._client.list_objects_v2(Bucket=self.bucket, Prefix=folder, MaxKeys=1)
            return bool(resp.get("KeyCount") or resp.get("Contents"))

        return await self._call(any_key)


def _translate(exc: Exception) -> Exception:
    """botocore's exceptions -> ours (the caller raises the result ``from None``)."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        HTTPClientError,
        ReadTimeoutError,
    )

    if isinstance(exc, DuetError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in _NOT_FOUND_CODES:
            return ChunkNotFound("The chunk is not in the store.")
        if code in _UNAVAILABLE_CODES or status >= 500:
            return StoreUnavailable(
                f"The recording store is not answering properly ({code or status}); retry later."
            )
        return RecordingStoreError(
            f"The recording store refused the request ({code or status}): check its settings."
        )
    if isinstance(exc, ConnectionError | HTTPClientError | ReadTimeoutError):
        return StoreUnavailable("The recording store cannot be reached; retry later.")
    if isinstance(exc, BotoCoreError):
        return RecordingStoreError(f"The recording store client failed: {type(exc).__name__}.")
    return exc
