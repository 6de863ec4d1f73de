"""The sealed chunk format: round trip, random access, ranges, and every kind of tampering detected."""

from __future__ import annotations

import uuid

import pytest

from server.recording.sealing import (
    CHUNK_OVERHEAD,
    HEADER_BYTES,
    BadHeader,
    ChunkSealer,
    DamagedChunk,
    PlaintextIndex,
    RecordingHeader,
    SealingError,
    new_data_key,
    open_chunk,
    peek_header,
    seal_chunk,
)


def _recording(chunks: list[bytes]) -> tuple[bytes, RecordingHeader, list[bytes]]:
    key = new_data_key()
    header = RecordingHeader.new(uuid.uuid4(), chunk_size_hint=64)
    sealer = ChunkSealer(key, header)
    blobs = [sealer.seal(c)[1] for c in chunks[:-1]] + [sealer.finish(chunks[-1])[1]]
    return key, header, blobs


def test_round_trip_marks_only_the_final_chunk_last() -> None:
    parts = [b"a" * 100, b"b" * 50, b"c" * 7]
    key, header, blobs = _recording(parts)
    opened = [open_chunk(key, header, i, b) for i, b in enumerate(blobs)]
    assert [o.plaintext for o in opened] == parts
    assert [o.last for o in opened] == [False, False, True]
    assert all(len(b) == len(p) + CHUNK_OVERHEAD for b, p in zip(blobs, parts, strict=True))


def test_ciphertext_hides_the_media_and_each_chunk_opens_alone() -> None:
    key, header, blobs = _recording([b"secret session audio" * 10, b"more", b""])
    assert b"secret session audio" not in blobs[0]
    assert open_chunk(key, header, 1, blobs[1]).plaintext == b"more"  # no need for chunk 0


def test_header_round_trips_and_is_copied_into_every_chunk() -> None:
    header = RecordingHeader.new(uuid.uuid4(), chunk_size_hint=1 << 20)
    raw = header.to_bytes()
    assert len(raw) == HEADER_BYTES and raw.startswith(b"DUETREC1")
    assert RecordingHeader.from_bytes(raw) == header
    blob = seal_chunk(new_data_key(), header, 0, b"x", last=True)
    assert peek_header(blob) == header


@pytest.mark.parametrize(
    "raw",
    [b"NOTAREC1" + bytes(32), b"DUETREC1", b"DUETREC1" + bytes([2, 1]) + bytes(30)],
    ids=["bad-magic", "short", "future-version"],
)
def test_foreign_or_future_headers_are_refused(raw: bytes) -> None:
    with pytest.raises(BadHeader):
        RecordingHeader.from_bytes(raw)


def test_nothing_may_follow_the_last_chunk() -> None:
    sealer = ChunkSealer(new_data_key(), RecordingHeader.new(uuid.uuid4()))
    sealer.finish(b"end")
    with pytest.raises(SealingError):
        sealer.seal(b"after the end")


def test_flipped_byte_anywhere_is_detected_and_other_chunks_still_open() -> None:
    key, header, blobs = _recording([b"one" * 20, b"two" * 20, b"three"])
    for pos in (0, HEADER_BYTES, HEADER_BYTES + 2, HEADER_BYTES + 7, len(blobs[1]) - 1):
        bad = bytearray(blobs[1])
        bad[pos] ^= 0x01
        with pytest.raises(DamagedChunk) as info:
            open_chunk(key, header, 1, bytes(bad))
        assert info.value.index == 1
    assert open_chunk(key, header, 0, blobs[0]).plaintext == b"one" * 20
    assert open_chunk(key, header, 2, blobs[2]).plaintext == b"three"


def test_swapped_chunks_are_detected() -> None:
    key, header, blobs = _recording([b"first", b"second", b"third"])
    with pytest.raises(DamagedChunk):
        open_chunk(key, header, 0, blobs[1])
    with pytest.raises(DamagedChunk):
        open_chunk(key, header, 1, blobs[0])


def test_counter_rewritten_to_fit_the_new_place_is_still_detected() -> None:
    key, header, blobs = _recording([b"first", b"second", b"third"])
    moved = bytearray(blobs[1])
    moved[HEADER_BYTES + 1 : HEADER_BYTES + 5] = (0).to_bytes(4, "big")
    with pytest.raises(DamagedChunk):
        open_chunk(key, header, 0, bytes(moved))


def test_a_middle_chunk_relabelled_last_is_detected() -> None:
    """Truncation by forging the last flag on an earlier chunk fails: the flag is in the nonce."""
    key, header, blobs = _recording([b"first", b"second", b"third"])
    forged = bytearray(blobs[1])
    forged[HEADER_BYTES] = 0x01
    with pytest.raises(DamagedChunk):
        open_chunk(key, header, 1, bytes(forged))


def test_chunk_from_another_recording_is_detected_even_with_the_same_key() -> None:
    key, header_a, _ = _recording([b"a0", b"a1", b"a2"])
    header_b = RecordingHeader.new(uuid.uuid4(), chunk_size_hint=64)
    blob_b1 = seal_chunk(key, header_b, 1, b"b1", last=False)
    with pytest.raises(DamagedChunk):
        open_chunk(key, header_a, 1, blob_b1)
    # Even with A's header pasted over B's: the AAD and nonce prefix differ.
    pasted = header_a.to_bytes() + blob_b1[HEADER_BYTES:]
    with pytest.raises(DamagedChunk):
        open_chunk(key, header_a, 1, pasted)


def test_wrong_key_fails_authentication() -> None:
    _, header, blobs = _recording([b"a", b"b"])
    with pytest.raises(DamagedChunk):
        open_chunk(new_data_key(), header, 0, blobs[0])


def test_plaintext_index_picks_only_covering_chunks() -> None:
    sizes = [
        (0, 100 + CHUNK_OVERHEAD),
        (1, 50 + CHUNK_OVERHEAD),
        (2, 0 + CHUNK_OVERHEAD),
        (3, 30 + CHUNK_OVERHEAD),
    ]
    index = PlaintextIndex(sizes)
    assert index.total == 180
    assert [s.index for s in index.covering(0, 10)] == [0]
    assert [s.index for s in index.covering(99, 101)] == [0, 1]
    assert [s.index for s in index.covering(150, 151)] == [3]  # the empty chunk 2 is skipped
    assert [s.index for s in index.covering(170, 10_000)] == [3]
    assert index.covering(180, 200) == []
    assert [(s.offset, s.length) for s in index.spans] == [(0, 100), (100, 50), (150, 0), (150, 30)]


def test_plaintext_index_refuses_gaps() -> None:
    with pytest.raises(SealingError):
        PlaintextIndex([(0, 100), (2, 100)])
