"""Local spool between the recorder and the recording store (docs/consent-and-recording.md: a crash loses at most the
last unsealed chunk).

A sealed chunk is first written to local disk (temp file, fsync, rename), then uploaded by this spool's
uploader tasks. If the store is down the chunks wait on disk and are retried with exponential back-off on
the injected Clock; a chunk file is deleted only after the store confirmed the upload. On start,
``recover()`` finds what a previous process left behind and queues it again. ``has_room()`` tells the
recorder to pause with "disk full" before the disk really is.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from server.clock import Clock
from server.errors import Unavailable
from server.recording.stores import (
    RecordingStore,
    RecordingStoreError,
    chunk_name,
    list_chunk_files,
    write_file_atomically,
)

log = logging.getLogger(__name__)

DEFAULT_MIN_FREE_BYTES = 512 * 1024 * 1024


class SpoolFull(Unavailable):
    """The spool's disk is full: the recorder pauses and says "disk full" (``has_room`` warns earlier)."""

    code = "recording_disk_full"


@dataclass
class UploadStats:
    uploaded: int = 0
    failures: int = 0
    last_error: str | None = None
    retrying_since: float | None = None  # monotonic time of the first failure in the current outage


@dataclass(order=True, frozen=True)
class _Item:
    recording_id: uuid.UUID = field(compare=False)
    index: int = field(compare=False)
    seq: int = 0


class Spool:
    """Chunks on local disk under ``root/<recording id>/<index:08d>.chunk`` until the store has them.

    The owner calls ``start()`` once (after ``recover()``) and ``await close()`` on shutdown. The uploader
    runs ``workers`` tasks; the queue of pending chunks is bounded by the disk, which ``has_room`` guards.
    """

    def __init__(
        self,
        root: Path,
        store: RecordingStore,
        clock: Clock,
        *,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        workers: int = 2,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        disk_usage: Callable[[Path], int] | None = None,
    ) -> None:
        self.root = root
        self._store = store
        self._clock = clock
        self.min_free_bytes = min_free_bytes
        self._workers = workers
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._disk_free = disk_usage or (lambda p: shutil.disk_usage(p).free)
        self._pending: dict[tuple[uuid.UUID, int], _Item] = {}
        self._in_flight: set[tuple[uuid.UUID, int]] = set()
        self._seq = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._change = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = UploadStats()
        root.mkdir(mode=0o700, parents=True, exist_ok=True)

    # -- recorder side -------------------------------------------------------------------------------

    def free_bytes(self) -> int:
        return self._disk_free(self.root)

    def has_room(self) -> bool:
        """False when free space is under ``min_free_bytes``: the recorder pauses with "disk full"."""
        return self.free_bytes() >= self.min_free_bytes

    async def write_chunk(self, recording_id: uuid.UUID, index: int, data: bytes) -> None:
        """Persist one sealed chunk (durable when this returns) and queue it for upload.

        Raises:
            SpoolFull: no space left; nothing half-written is left behind.
        """
        path = self._path(recording_id, index)
        try:
            await asyncio.to_thread(write_file_atomically, path, data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFull("The recording spool disk is full: recording paused.") from None
            raise
        self._queue(recording_id, index)

    # -- status --------------------------------------------------------------------------------------

    def pending(self) -> dict[uuid.UUID, list[int]]:
        """Chunks not yet confirmed by the store, per recording (from memory; ``scan`` reads the disk)."""
        out: dict[uuid.UUID, list[int]] = {}
        for rid, idx in sorted(self._pending, key=lambda k: (str(k[0]), k[1])):
            out.setdefault(rid, []).append(idx)
        return out

    def scan(self, *, remove_leftovers: bool = False) -> dict[uuid.UUID, list[int]]:
        """Chunk files on disk per recording; temp files of unfinished writes are never counted.

        ``remove_leftovers`` (only at start-up, when no write can be in progress) deletes those temp files
        and empty recording folders.
        """
        out: dict[uuid.UUID, list[int]] = {}
        for entry in os.scandir(self.root):
            if not entry.is_dir():
                continue
            try:
                rid = uuid.UUID(entry.name)
            except ValueError:
                continue
            folder = Path(entry.path)
            chunks = [c.index for c in list_chunk_files(folder)]
            if chunks:
                out[rid] = chunks
            if remove_leftovers:
                for leftover in folder.glob(".*.tmp"):
                    with contextlib.suppress(FileNotFoundError):
                        leftover.unlink()
                if not chunks:
                    with contextlib.suppress(OSError):
                        folder.rmdir()
        return out

    def recover(self) -> dict[uuid.UUID, list[int]]:
        """At start-up, before any write: queue every chunk a previous process left; returns them."""
        found = self.scan(remove_leftovers=True)
        for rid, indices in found.items():
            for idx in indices:
                self._queue(rid, idx)
        if found:
            log.info("spool: resuming upload of %d recording(s)", len(found))
        return found

    async def wait_idle(self) -> None:
        """Until every queued chunk is confirmed by the store."""
        await self._idle.wait()

    async def wait_recording(self, recording_id: uuid.UUID) -> None:
        """Until every queued chunk of one recording is uploaded (the recorder's "stored" moment)."""
        while any(rid == recording_id for rid, _ in self._pending):
            change = self._change
            await change.wait()

    # -- uploader ------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"spool-uploader-{n}") for n in range(self._workers)
        ]

    async def close(self) -> None:
        """Stop the uploaders; chunks not uploaded stay on disk for the next ``recover``."""
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    def _path(self, recording_id: uuid.UUID, index: int) -> Path:
        return self.root / str(uuid.UUID(str(recording_id))) / chunk_name(index)

    def _queue(self, recording_id: uuid.UUID, index: int) -> None:
        key = (recording_id, index)
        if key in self._pending:
            return
        self._seq += 1
        self._pending[key] = _Item(recording_id, index, self._seq)
        self._idle.clear()
        self._changed()
        self._wake.set()

    def _changed(self) -> None:
        change, self._change = self._change, asyncio.Event()
        change.set()

    def _take(self) -> _Item | None:
        free = [item for key, item in self._pending.items() if key not in self._in_flight]
        if not free:
            return None
        item = min(free)  # oldest first: a recording is uploaded in the order it was sealed
        self._in_flight.add((item.recording_id, item.index))
        return item

    async def _worker(self) -> None:
        backoff = self._retry_initial
        while True:
            item = self._take()
            if item is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            key = (item.recording_id, item.index)
            try:
                ok = await self._upload(item)
            except Exception:  # a local disk error must not kill the uploader: keep the chunk, retry
                log.exception("spool: uploading chunk %d of %s failed", item.index, item.recording_id)
                ok = False
            finally:
                self._in_flight.discard(key)
            if ok:
                backoff = self._retry_initial
                continue
            self._wake.set()  # let another worker see the item we gave back
            await self._clock.sleep(backoff)
            backoff = min(backoff * 2, self._retry_max)

    async def _upload(self, item: _Item) -> bool:
        key = (item.recording_id, item.index)
        path = self._path(item.recording_id, item.index)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            self._done(key)  # already uploaded by a previous process that died before forgetting it
            return True
        try:
            await self._store.put_chunk(item.recording_id, item.index, data)
        except RecordingStoreError as exc:
            self.stats.failures += 1
            self.stats.last_error = exc.detail
            if self.stats.retrying_since is None:
                self.stats.retrying_since = self._clock.monotonic()
                log.warning("spool: upload failed, keeping chunks and retrying: %s", exc.detail)
            return False
        await asyncio.to_thread(self._forget_file, path)
        self.stats.uploaded += 1
        self.stats.retrying_since = None
        self._done(key)
        return True

    def _done(self, key: tuple[uuid.UUID, int]) -> None:
        self._pending.pop(key, None)
        if not self._pending:
            self._idle.set()
        self._changed()

    @staticmethod
    def _forget_file(path: Path) -> None:
        # The recording's folder stays (a write may be creating a file in it now); recover() prunes it.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
