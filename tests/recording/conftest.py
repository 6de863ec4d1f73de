"""Fixtures for the recording tests: both recording stores, the S3 one on a real SeaweedFS."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from server.recording.stores import FolderStore, RecordingStore, S3Store
from tests.support.seaweedfs import SeaweedFS, seaweedfs

__all__ = ["seaweedfs"]


def make_s3_store(server: SeaweedFS, prefix: str) -> S3Store:
    return S3Store.from_settings(
        bucket=server.bucket,
        endpoint_url=server.endpoint,
        region=server.region,
        access_key=server.access_key,
        secret_key=server.secret_key,
        prefix=prefix,
        connect_timeout=2,
        read_timeout=10,
    )


@pytest.fixture
def s3_store_factory(running_seaweedfs: SeaweedFS) -> Iterator[Callable[[str], S3Store]]:
    """Builds S3Stores on the running SeaweedFS with a given key prefix; closes them afterwards."""
    made: list[S3Store] = []

    def make(prefix: str) -> S3Store:
        made.append(make_s3_store(running_seaweedfs, prefix))
        return made[-1]

    yield make
    for store in made:
        store.shutdown()


@pytest.fixture
def running_seaweedfs(seaweedfs: SeaweedFS) -> SeaweedFS:
    """The session's SeaweedFS, started again if an earlier test left it stopped."""
    seaweedfs.start()
    return seaweedfs


@pytest.fixture
def s3_store(running_seaweedfs: SeaweedFS, request: pytest.FixtureRequest) -> Iterator[S3Store]:
    # A prefix per test keeps tests apart in the one session bucket.
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)
    store = make_s3_store(running_seaweedfs, f"t/{name}/recordings/")
    yield store
    store.shutdown()


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RecordingStore:
    """Every RecordingStore implementation, for the contract tests."""
    if request.param == "folder":
        return FolderStore(tmp_path / "recordings")
    s3: S3Store = request.getfixturevalue("s3_store")
    return s3
