"""docs/recording-format.md's test vectors match the code, and plain AES-GCM per the doc's own recipe."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from server.recording.sealing import RecordingHeader, chunk_nonce, open_chunk, seal_chunk

DOC = Path(__file__).resolve().parents[2] / "docs" / "recording-format.md"


def _vectors() -> dict[str, bytes]:
    text = DOC.read_text()
    block = re.search(r"```test-vectors\n(.*?)```", text, re.DOTALL)
    assert block, "docs/recording-format.md has no ```test-vectors block"
    out = {}
    for line in block.group(1).splitlines():
        if line.strip():
            name, value = line.split(":", 1)
            out[name.strip()] = bytes.fromhex(value.strip())
    return out


V = _vectors()
CHUNKS = sorted({int(m.group(1)) for k in V if (m := re.match(r"chunk(\d+)_", k))})


def _header() -> RecordingHeader:
    return RecordingHeader(
        uuid.UUID(bytes=V["recording_id"]), V["nonce_prefix"], int.from_bytes(V["chunk_size_hint"], "big")
    )


def test_doc_has_at_least_two_chunks_and_a_final_one() -> None:
    assert len(CHUNKS) >= 2


def test_header_vector() -> None:
    assert _header().to_bytes() == V["header"]
    assert RecordingHeader.from_bytes(V["header"]) == _header()


@pytest.mark.parametrize("i", CHUNKS)
def test_chunk_vectors_seal_and_open(i: int) -> None:
    last = i == CHUNKS[-1]
    header = _header()
    assert chunk_nonce(header.nonce_prefix, i, last) == V[f"chunk{i}_nonce"]
    assert seal_chunk(V["key"], header, i, V[f"chunk{i}_plaintext"], last=last) == V[f"chunk{i}_sealed"]
    opened = open_chunk(V["key"], header, i, V[f"chunk{i}_sealed"])
    assert opened.plaintext == V[f"chunk{i}_plaintext"] and opened.last is last


@pytest.mark.parametrize("i", CHUNKS)
def test_chunk_vectors_follow_the_documented_recipe_with_plain_aes_gcm(i: int) -> None:
    """Independent of sealing.py: header || flags || counter || AESGCM(key, nonce, pt, aad=header)."""
    last = i == CHUNKS[-1]
    nonce = V["nonce_prefix"] + i.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
    assert nonce == V[f"chunk{i}_nonce"]
    body = AESGCM(V["key"]).encrypt(nonce, V[f"chunk{i}_plaintext"], V["header"])
    frame = (b"\x01" if last else b"\x00") + i.to_bytes(4, "big")
    assert V["header"] + frame + body == V[f"chunk{i}_sealed"]
