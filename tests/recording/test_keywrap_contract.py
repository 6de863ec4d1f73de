"""One contract over every key wrapper: X25519 key files and AWS KMS.

No AWS KMS runs here, so the KMS side talks real HTTP to moto's KMS server on loopback (an emulator of
the KMS API, started by the test); the requests, encryption contexts and error codes are KMS's own.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from server.recording.keywrap import KeyWrapper, KmsWrapper, UnwrapFailed, WrappedKey, X25519KeyFiles, rewrap
from server.recording.sealing import new_data_key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def _kms(endpoint: str) -> KmsWrapper:
    client = boto3.client("kms", region_name="eu-west-2", endpoint_url=endpoint, aws_access_key_id="test",
                          aws_secret_access_key="test")  # noqa: S106 - the local emulator's dummy credentials
    key_id = client.create_key(Description="duet recordings (test)")["KeyMetadata"]["KeyId"]
    return KmsWrapper(client, key_id)


@pytest.fixture(params=["key files", "kms"])
def wrapper(request: pytest.FixtureRequest, tmp_path: Path) -> KeyWrapper:
    if request.param == "key files":
        files = X25519KeyFiles(tmp_path / "keys")
        files.ensure()
        return files.wrapper()
    return _kms(request.getfixturevalue("kms_endpoint"))


def test_a_wrapped_key_opens_for_its_recording_only(wrapper: KeyWrapper) -> None:
    rid, data_key = uuid.uuid4(), new_data_key()
    wrapped = wrapper.wrap(data_key, rid)
    assert wrapped.key_id == wrapper.key_id and data_key not in wrapped.blob
    assert wrapper.unwrap(wrapped, rid) == data_key
    with pytest.raises(UnwrapFailed):
        wrapper.unwrap(wrapped, uuid.uuid4())


def test_wrapping_twice_gives_different_blobs(wrapper: KeyWrapper) -> None:
    rid, data_key = uuid.uuid4(), new_data_key()
    assert wrapper.wrap(data_key, rid).blob != wrapper.wrap(data_key, rid).blob


def test_a_damaged_wrapped_key_does_not_open(wrapper: KeyWrapper) -> None:
    rid = uuid.uuid4()
    wrapped = wrapper.wrap(new_data_key(), rid)
    # The middle and the end (the sealed key itself); a KMS blob begins by naming the key, whose damage
    # reads as "no such key" rather than as a damaged ciphertext.
    for pos in (len(wrapped.blob) // 2, len(wrapped.blob) - 2, len(wrapped.blob) - 1):
        blob = bytearray(wrapped.blob)
        blob[pos] ^= 1
        with pytest.raises(UnwrapFailed):
            wrapper.unwrap(WrappedKey(wrapped.scheme, wrapped.key_id, bytes(blob)), rid)


def test_a_key_of_the_other_scheme_is_refused_not_misread(wrapper: KeyWrapper, tmp_path: Path,
                                                          kms_endpoint: str) -> None:
    other_files = X25519KeyFiles(tmp_path / "other")
    other_files.ensure()
    other: KeyWrapper = other_files.wrapper() if isinstance(wrapper, KmsWrapper) else _kms(kms_endpoint)
    rid = uuid.uuid4()
    with pytest.raises(UnwrapFailed):
        wrapper.unwrap(other.wrap(new_data_key(), rid), rid)


def test_rewrapping_moves_a_key_between_wrappers_without_touching_the_data_key(
        wrapper: KeyWrapper, tmp_path: Path, kms_endpoint: str) -> None:
    target: KeyWrapper = _kms(kms_endpoint)
    rid, data_key = uuid.uuid4(), new_data_key()
    moved = rewrap(wrapper.wrap(data_key, rid), rid, wrapper, target)
    assert moved.key_id == target.key_id
    assert target.unwrap(moved, rid) == data_key
