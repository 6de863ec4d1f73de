"""Wrapping data keys: X25519 key files (public key only on media nodes), KMS via botocore's Stubber,
and rotation by rewrapping."""

from __future__ import annotations

import stat
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from server.recording.keywrap import (
    SCHEME_KMS,
    KeyUnavailable,
    KmsWrapper,
    UnwrapFailed,
    WrappedKey,
    X25519KeyFiles,
    rewrap,
)
from server.recording.sealing import new_data_key


@pytest.fixture
def keys(tmp_path: Path) -> X25519KeyFiles:
    files = X25519KeyFiles(tmp_path / "keys")
    files.ensure()
    return files


def test_key_files_are_created_on_first_use_with_mode_0600(tmp_path: Path) -> None:
    files = X25519KeyFiles(tmp_path / "keys")
    key_id = files.ensure()
    assert files.ensure() == key_id  # second start reuses the pair
    for name in ("recording_x25519.pub", "recording_x25519.key"):
        assert stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700


def test_media_node_with_public_key_only_can_wrap_but_not_unwrap(
    keys: X25519KeyFiles, tmp_path: Path
) -> None:
    node_dir = tmp_path / "node-keys"
    node_dir.mkdir()
    (node_dir / "recording_x25519.pub").write_bytes((keys.folder / "recording_x25519.pub").read_bytes())
    node = X25519KeyFiles(node_dir).public_wrapper()
    rid, data_key = uuid.uuid4(), new_data_key()
    wrapped = node.wrap(data_key, rid)
    assert data_key not in wrapped.blob
    with pytest.raises(KeyUnavailable):
        node.unwrap(wrapped, rid)
    assert keys.wrapper().unwrap(wrapped, rid) == data_key  # where the private key lives


def test_wrapping_twice_gives_different_blobs(keys: X25519KeyFiles) -> None:
    w, rid, dk = keys.wrapper(), uuid.uuid4(), new_data_key()
    assert w.wrap(dk, rid).blob != w.wrap(dk, rid).blob


def test_wrapped_key_of_another_recording_does_not_open(keys: X25519KeyFiles) -> None:
    w = keys.wrapper()
    wrapped = w.wrap(new_data_key(), uuid.uuid4())
    with pytest.raises(UnwrapFailed):
        w.unwrap(wrapped, uuid.uuid4())


def test_damaged_wrapped_key_does_not_open(keys: X25519KeyFiles) -> None:
    w, rid = keys.wrapper(), uuid.uuid4()
    wrapped = w.wrap(new_data_key(), rid)
    for pos in (0, 5, len(wrapped.blob) - 1):
        blob = bytearray(wrapped.blob)
        blob[pos] ^= 1
        with pytest.raises(UnwrapFailed):
            w.unwrap(WrappedKey(wrapped.scheme, wrapped.key_id, bytes(blob)), rid)


def test_rotation_rewraps_without_touching_media_then_retires_the_old_key(keys: X25519KeyFiles) -> None:
    rid, data_key = uuid.uuid4(), new_data_key()
    old_wrapped = keys.wrapper().wrap(data_key, rid)
    old_id, new_id = keys.rotate()
    assert old_id == old_wrapped.key_id and new_id != old_id
    assert keys.key_ids() == [new_id, old_id]
    ring = keys.wrapper()  # holds the current and the retiring private keys
    assert ring.key_id == new_id
    assert ring.unwrap(old_wrapped, rid) == data_key
    new_wrapped = rewrap(old_wrapped, rid, keys.retiring_wrapper(old_id), ring)
    assert new_wrapped.key_id == new_id
    keys.retire(old_id)
    assert keys.key_ids() == [new_id]
    assert keys.wrapper().unwrap(new_wrapped, rid) == data_key
    with pytest.raises(KeyUnavailable):
        keys.wrapper().unwrap(old_wrapped, rid)
    for path in keys.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _kms() -> tuple[KmsWrapper, Stubber]:
    client = boto3.client(
        "kms",
        region_name="eu-west-2",
        aws_access_key_id="k",
        aws_secret_access_key="s",  # noqa: S106 - the Stubber answers; nothing is sent
    )
    return KmsWrapper(client, "alias/duet-recordings"), Stubber(client)


def test_kms_wrap_and_unwrap_bind_the_recording_id_as_encryption_context() -> None:
    """No KMS runs locally: botocore's Stubber checks the exact requests and plays KMS's answers."""
    wrapper, stub = _kms()
    rid, data_key = uuid.uuid4(), new_data_key()
    context = {"duet:recording": str(rid)}
    stub.add_response(
        "encrypt",
        {"CiphertextBlob": b"kms-blob", "KeyId": "arn:aws:kms:eu-west-2:1:key/abc"},
        {"KeyId": "alias/duet-recordings", "Plaintext": data_key, "EncryptionContext": context},
    )
    stub.add_response(
        "decrypt",
        {"Plaintext": data_key, "KeyId": "arn:aws:kms:eu-west-2:1:key/abc"},
        {"KeyId": "alias/duet-recordings", "CiphertextBlob": b"kms-blob", "EncryptionContext": context},
    )
    with stub:
        wrapped = wrapper.wrap(data_key, rid)
        assert wrapped == WrappedKey(SCHEME_KMS, "alias/duet-recordings", b"kms-blob")
        assert wrapper.unwrap(wrapped, rid) == data_key
    stub.assert_no_pending_responses()


def test_kms_refusal_for_another_recording_is_unwrap_failed() -> None:
    wrapper, stub = _kms()
    stub.add_client_error("decrypt", service_error_code="InvalidCiphertextException", http_status_code=400)
    with stub, pytest.raises(UnwrapFailed) as info:
        wrapper.unwrap(WrappedKey(SCHEME_KMS, "alias/duet-recordings", b"blob"), uuid.uuid4())
    assert info.value.__suppress_context__


def test_kms_access_denied_is_key_unavailable() -> None:
    wrapper, stub = _kms()
    stub.add_client_error("encrypt", service_error_code="AccessDeniedException", http_status_code=400)
    with stub, pytest.raises(KeyUnavailable):
        wrapper.wrap(new_data_key(), uuid.uuid4())


def test_rotation_between_kms_keys_and_from_key_files_to_kms(keys: X25519KeyFiles) -> None:
    rid, data_key = uuid.uuid4(), new_data_key()
    file_wrapped = keys.wrapper().wrap(data_key, rid)
    kms, stub = _kms()
    stub.add_response(
        "encrypt",
        {"CiphertextBlob": b"new-blob"},
        {
            "KeyId": "alias/duet-recordings",
            "Plaintext": data_key,
            "EncryptionContext": {"duet:recording": str(rid)},
        },
    )
    with stub:
        moved = rewrap(file_wrapped, rid, keys.wrapper(), kms)
    assert moved.scheme == SCHEME_KMS and moved.blob == b"new-blob"
