"""Sealed chunk format for recordings (docs/recording-format.md).

Each recording has its own random 256-bit data key. Media is cut into chunks and every chunk is sealed
with AES-256-GCM under the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015): the 96-bit nonce is

    nonce_prefix (7 random bytes, per recording) || counter (4 bytes, big-endian) || last flag (1 byte)

and the 40-byte recording header is the associated data of every chunk. So a flipped bit, a chunk moved to
another position (counter), a chunk from another recording (header and key), and a recording cut short
(no chunk with the last flag) are all detected, while every chunk still decrypts on its own: the player can
seek, and a recording interrupted by a crash plays up to its last sealed chunk.

This module is pure: no I/O. Stores keep one object per sealed chunk (see ``stores.py``).
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.errors import DuetError

MAGIC = b"DUETREC1"
VERSION = 1
ALG_AES256GCM_STREAM = 1

KEY_BYTES = 32
NONCE_PREFIX_BYTES = 7
TAG_BYTES = 16
MAX_CHUNKS = 2**32
DEFAULT_CHUNK_SIZE_HINT = 1 << 20

# magic(8) version(1) alg(1) reserved(2) chunk_size_hint(4) recording_id(16) nonce_prefix(7) reserved(1)
_HEADER = struct.Struct(">8sBBHI16s7sB")
HEADER_BYTES = _HEADER.size  # 40
# flags(1) counter(4), after the header copy at the start of every chunk object
_FRAME = struct.Struct(">BI")
FRAME_BYTES = _FRAME.size  # 5
CHUNK_OVERHEAD = HEADER_BYTES + FRAME_BYTES + TAG_BYTES  # 61 bytes around the plaintext

FLAG_LAST = 0x01


class SealingError(DuetError):
    """A recording could not be sealed or opened (a programming or data error, not the user's)."""

    status = 500
    code = "recording_format"
    title = "Recording format error"


class BadHeader(SealingError):
    """The bytes are not a DUETREC1 header this code understands."""


class DamagedChunk(SealingError):
    """Chunk ``index`` failed authentication: tampered, corrupted, moved, or from another recording.

    The other chunks of the recording stay readable: each one is authenticated on its own.
    """

    code = "recording_damaged"
    title = "Recording damaged"

    def __init__(self, index: int, reason: str = "failed authentication") -> None:
        super().__init__(f"Chunk {index} of the recording is damaged ({reason}).", chunk=index)
        self.index = index
        self.reason = reason


@dataclass(frozen=True)
class RecordingHeader:
    """The plaintext, authenticated header shared by every chunk of one recording."""

    recording_id: uuid.UUID
    nonce_prefix: bytes
    chunk_size_hint: int = DEFAULT_CHUNK_SIZE_HINT
    version: int = VERSION
    alg: int = ALG_AES256GCM_STREAM

    def __post_init__(self) -> None:
        if len(self.nonce_prefix) != NONCE_PREFIX_BYTES:
            raise BadHeader(f"nonce prefix must be {NONCE_PREFIX_BYTES} bytes")
        if not 0 <= self.chunk_size_hint < 2**32:
            raise BadHeader("chunk size hint must fit in 32 bits")
        if self.version != VERSION or self.alg != ALG_AES256GCM_STREAM:
            raise BadHeader(f"unsupported recording format version {self.version} / algorithm {self.alg}")

    @classmethod
    def new(
        cls,
        recording_id: uuid.UUID,
        *,
        chunk_size_hint: int = DEFAULT_CHUNK_SIZE_HINT,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> RecordingHeader:
        """A header with a fresh random nonce prefix (never reuse a prefix under the same key)."""
        return cls(recording_id, randbytes(NONCE_PREFIX_BYTES), chunk_size_hint)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(
            MAGIC,
            self.version,
            self.alg,
            0,
            self.chunk_size_hint,
            self.recording_id.bytes,
            self.nonce_prefix,
            0,
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> RecordingHeader:
        if len(data) < HEADER_BYTES:
            raise BadHeader("header too short")
        magic, version, alg, reserved, hint, rid, prefix, reserved2 = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise BadHeader("not a Duet recording (bad magic)")
        if reserved or reserved2:
            raise BadHeader("reserved header bytes are not zero")
        return cls(uuid.UUID(bytes=rid), prefix, hint, version, alg)


def new_data_key() -> bytes:
    """A fresh random 256-bit data key for one recording."""
    return AESGCM.generate_key(bit_length=256)


def chunk_nonce(prefix: bytes, index: int, last: bool) -> bytes:
    """STREAM nonce: prefix || counter (big-endian u32) || last flag."""
    if not 0 <= index < MAX_CHUNKS:
        raise SealingError(f"chunk index {index} out of range")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def seal_chunk(
    data_key: bytes, header: RecordingHeader, index: int, plaintext: bytes, *, last: bool
) -> bytes:
    """One sealed chunk object: header || flags || counter || AES-256-GCM(ciphertext || tag)."""
    if len(data_key) != KEY_BYTES:
        raise SealingError("data key must be 32 bytes")
    hdr = header.to_bytes()
    body = AESGCM(data_key).encrypt(chunk_nonce(header.nonce_prefix, index, last), plaintext, hdr)
    return hdr + _FRAME.pack(FLAG_LAST if last else 0, index) + body


@dataclass(frozen=True)
class OpenedChunk:
    index: int
    plaintext: bytes
    last: bool


def peek_header(blob: bytes) -> RecordingHeader:
    """The (not yet authenticated) header copy at the start of a chunk object."""
    return RecordingHeader.from_bytes(blob[:HEADER_BYTES])


def open_chunk(data_key: bytes, header: RecordingHeader, index: int, blob: bytes) -> OpenedChunk:
    """Authenticate and decrypt the chunk stored at position ``index``.

    ``header`` is the recording's expected header (from its first chunk or the database), never the copy
    inside ``blob``: a chunk spliced in from another recording fails here.

    Raises:
        DamagedChunk: anything wrong with this chunk; other chunks are unaffected.
    """
    if len(blob) < CHUNK_OVERHEAD:
        raise DamagedChunk(index, "too short")
    hdr = header.to_bytes()
    if blob[:HEADER_BYTES] != hdr:
        raise DamagedChunk(index, "header does not match the recording")
    flags, counter = _FRAME.unpack_from(blob, HEADER_BYTES)
    if flags & ~FLAG_LAST:
        raise DamagedChunk(index, "unknown flags")
    if counter != index:
        raise DamagedChunk(index, f"chunk is out of place (counter {counter})")
    last = bool(flags & FLAG_LAST)
    try:
        plaintext = AESGCM(data_key).decrypt(
            chunk_nonce(header.nonce_prefix, index, last), blob[HEADER_BYTES + FRAME_BYTES :], hdr
        )
    except InvalidTag:
        raise DamagedChunk(index) from None
    return OpenedChunk(index, plaintext, last)


def plaintext_size(sealed_size: int) -> int:
    """Plaintext length of a sealed chunk object of ``sealed_size`` bytes (no decryption needed)."""
    return max(0, sealed_size - CHUNK_OVERHEAD)


class ChunkSealer:
    """Seals one recording's chunks in order; the recorder calls ``seal`` at least every 2 s, then ``finish``.

    ``finish`` seals the final chunk with the last flag (possibly empty): without it the recording reads as
    interrupted, which is exactly what a crash leaves behind.
    """

    def __init__(self, data_key: bytes, header: RecordingHeader, *, start_index: int = 0) -> None:
        if len(data_key) != KEY_BYTES:
            raise SealingError("data key must be 32 bytes")
        self._key = data_key
        self.header = header
        self._next = start_index
        self._finished = False

    @property
    def next_index(self) -> int:
        return self._next

    @property
    def finished(self) -> bool:
        return self._finished

    def seal(self, plaintext: bytes) -> tuple[int, bytes]:
        """Seal a middle chunk; returns (index, sealed object)."""
        return self._seal(plaintext, last=False)

    def finish(self, plaintext: bytes = b"") -> tuple[int, bytes]:
        """Seal the final chunk (last flag set); no chunk may follow."""
        out = self._seal(plaintext, last=True)
        self._finished = True
        return out

    def _seal(self, plaintext: bytes, *, last: bool) -> tuple[int, bytes]:
        if self._finished:
            raise SealingError("recording already finished: no chunk may follow the last one")
        index = self._next
        blob = seal_chunk(self._key, self.header, index, plaintext, last=last)
        self._next += 1
        return index, blob


@dataclass(frozen=True)
class ChunkSpan:
    index: int
    offset: int  # plaintext offset of the chunk's first byte
    length: int  # plaintext bytes in the chunk


class PlaintextIndex:
    """Maps plaintext byte offsets to chunks, from the sealed objects' sizes alone (no decryption).

    Serves an HTTP ``Range`` (RFC 9110 §14) by decrypting only the chunks that cover it.
    """

    def __init__(self, sizes: Sequence[tuple[int, int]]) -> None:
        """``sizes``: (chunk index, sealed object size) for consecutive chunks starting at index 0."""
        spans: list[ChunkSpan] = []
        offset = 0
        for expected, (index, sealed_size) in enumerate(sizes):
            if index != expected:
                raise SealingError(f"chunk {expected} is missing; the index covers consecutive chunks only")
            length = plaintext_size(sealed_size)
            spans.append(ChunkSpan(index, offset, length))
            offset += length
        self.spans: tuple[ChunkSpan, ...] = tuple(spans)
        self.total: int = offset

    def covering(self, start: int, end: int) -> list[ChunkSpan]:
        """Chunks holding plaintext bytes ``start`` .. ``end - 1`` (half-open, clipped to the total)."""
        end = min(end, self.total)
        if start < 0 or start >= end:
            return []
        return [s for s in self.spans if s.length and s.offset < end and s.offset + s.length > start]
