"""Reading a sealed recording back from a store: chunk by chunk, or a plaintext byte range.

Review (docs/consent-and-recording.md) plays a recording in the browser; the server decrypts only the chunks that cover
the HTTP range asked. A recording whose final chunk (the one with the last flag) is missing was interrupted,
by a crash or a lost upload: it plays up to its last sealed chunk and says so (``interrupted``).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from server.recording.sealing import (
    DamagedChunk,
    OpenedChunk,
    PlaintextIndex,
    RecordingHeader,
    SealingError,
    open_chunk,
    peek_header,
)
from server.recording.stores import ChunkInfo, ChunkNotFound, RecordingStore


class Completeness(enum.Enum):
    COMPLETE = "complete"  # the chunk with the last flag is there and authentic
    INTERRUPTED = "interrupted"  # no final chunk: plays up to the last sealed one
    EMPTY = "empty"  # no chunk at all


class RecordingMissing(SealingError):
    status = 404
    code = "recording_not_found"
    title = "Not found"


@dataclass(frozen=True)
class RecordingState:
    completeness: Completeness
    playable_chunks: int  # chunks 0 .. n-1 are present in order (not yet all verified)
    missing: tuple[int, ...]  # gaps before the highest index present
    extra_after_last: tuple[int, ...]  # chunks stored after the final one: never played


class RecordingReader:
    """Decrypts one recording from a store with its (unwrapped) data key."""

    def __init__(
        self,
        store: RecordingStore,
        recording_id: uuid.UUID,
        data_key: bytes,
        header: RecordingHeader,
        chunks: list[ChunkInfo],
        state: RecordingState,
    ) -> None:
        self._store = store
        self.recording_id = recording_id
        self._key = data_key
        self.header = header
        self.chunks = chunks
        self.state = state
        contiguous = [(c.index, c.size) for c in chunks[: state.playable_chunks]]
        self.index = PlaintextIndex(contiguous)

    @classmethod
    async def open(
        cls,
        store: RecordingStore,
        recording_id: uuid.UUID,
        data_key: bytes,
        *,
        header: RecordingHeader | None = None,
    ) -> RecordingReader:
        """List the chunks, take the header (from ``header`` or chunk 0) and find how complete it is.

        Opening decrypts the first authentic chunk and the final one; the others when read.

        Raises:
            RecordingMissing: no chunk at all and no header given.
            DamagedChunk: no chunk authenticates with this key (wrong key, or everything damaged).
        """
        chunks = await store.list_chunks(recording_id)
        if header is None:
            header = await cls._find_header(store, recording_id, data_key, chunks)
        if header.recording_id != recording_id:
            raise DamagedChunk(0, "header belongs to another recording")
        state = await cls._state(store, recording_id, data_key, header, chunks)
        return cls(store, recording_id, data_key, header, chunks, state)

    @staticmethod
    async def _find_header(
        store: RecordingStore, recording_id: uuid.UUID, data_key: bytes, chunks: list[ChunkInfo]
    ) -> RecordingHeader:
        """The header of the first chunk that authenticates (a damaged chunk 0 must not hide the rest)."""
        if not chunks:
            raise RecordingMissing(f"Recording {recording_id} has no chunk in the store.")
        for info in chunks:
            blob = await store.get_chunk(recording_id, info.index)
            try:
                candidate = peek_header(blob)
                open_chunk(data_key, candidate, info.index, blob)
            except SealingError:
                continue
            return candidate
        raise DamagedChunk(chunks[0].index, "no chunk of the recording authenticates with this key")

    @staticmethod
    async def _state(
        store: RecordingStore,
        recording_id: uuid.UUID,
        data_key: bytes,
        header: RecordingHeader,
        chunks: list[ChunkInfo],
    ) -> RecordingState:
        if not chunks:
            return RecordingState(Completeness.EMPTY, 0, (), ())
        present = [c.index for c in chunks]
        playable = 0
        while playable < len(present) and present[playable] == playable:
            playable += 1
        missing = tuple(sorted(set(range(present[-1] + 1)) - set(present)))
        # The final chunk is the first authentic chunk with the last flag, searching from the end.
        final: int | None = None
        for idx in reversed(present):
            try:
                opened = open_chunk(data_key, header, idx, await store.get_chunk(recording_id, idx))
            except (DamagedChunk, ChunkNotFound):
                continue
            if opened.last:
                final = idx
            break  # the highest authentic chunk decides: a non-last one means no final chunk yet
        if final is None:
            return RecordingState(Completeness.INTERRUPTED, playable, missing, ())
        extra = tuple(i for i in present if i > final)
        complete = not [m for m in missing if m < final]
        return RecordingState(
            Completeness.COMPLETE if complete else Completeness.INTERRUPTED,
            min(playable, final + 1),
            missing,
            extra,
        )

    @property
    def interrupted(self) -> bool:
        return self.state.completeness is not Completeness.COMPLETE

    async def read_chunk(self, index: int) -> OpenedChunk:
        """Decrypt chunk ``index``. Raises DamagedChunk (this chunk only) or ChunkNotFound."""
        blob = await self._store.get_chunk(self.recording_id, index)
        return open_chunk(self._key, self.header, index, blob)

    async def iter_chunks(self) -> AsyncIterator[OpenedChunk | DamagedChunk]:
        """Every playable chunk in order; a damaged one is yielded as its error and reading goes on."""
        for span in self.index.spans:
            try:
                yield await self.read_chunk(span.index)
            except DamagedChunk as exc:
                yield exc

    async def read_range(self, start: int, end: int) -> bytes:
        """Plaintext bytes ``start`` .. ``end - 1``, decrypting only the chunks that cover them.

        Raises DamagedChunk if one of those chunks is damaged.
        """
        out = bytearray()
        for span in self.index.covering(start, end):
            opened = await self.read_chunk(span.index)
            lo = max(start - span.offset, 0)
            hi = min(end - span.offset, len(opened.plaintext))
            out += opened.plaintext[lo:hi]
        return bytes(out)

    async def read_all(self) -> bytes:
        """The whole playable plaintext (raises on the first damaged chunk)."""
        return await self.read_range(0, self.index.total)
