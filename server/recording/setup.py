"""Build the recording parts from settings: the store (folder or S3), the spool, the key wrapper.

Embedded defaults: chunks in ``<home>/recordings``, the spool in ``<home>/spool``, data keys wrapped to
the X25519 key pair in ``<home>/keys/recording``. ``DUET_STORE=s3://bucket`` and ``DUET_KMS_KEY_ID`` switch
to S3 and AWS KMS.
"""

from __future__ import annotations

from pathlib import Path

from server.clock import Clock
from server.config import Settings
from server.keys import private_folder
from server.recording.keywrap import KeyWrapper, KmsWrapper, X25519KeyFiles
from server.recording.spool import Spool
from server.recording.stores import FolderStore, RecordingStore, S3Store


def store_from_settings(settings: Settings) -> RecordingStore:
    if settings.store.startswith("s3://"):
        return S3Store.from_settings(
            bucket=settings.store[len("s3://"):].strip("/"), endpoint_url=settings.s3_endpoint or None,
            region=settings.s3_region, access_key=settings.s3_access_key or None,
            secret_key=settings.s3_secret_key or None)
    return FolderStore(settings.home / "recordings")


def key_files(settings: Settings) -> X25519KeyFiles:
    return X25519KeyFiles(settings.keys_dir / "recording")


def wrapper_from_settings(settings: Settings, *, can_unwrap: bool = False) -> KeyWrapper:
    """The media node wraps only (public key); review and export also unwrap (``can_unwrap``)."""
    if settings.kms_key_id:
        import boto3

        return KmsWrapper(boto3.client("kms", region_name=settings.s3_region), settings.kms_key_id)
    files = key_files(settings)
    files.ensure()
    return files.wrapper() if can_unwrap else files.following_wrapper()


def spool_from_settings(settings: Settings, store: RecordingStore, clock: Clock) -> Spool:
    root: Path = private_folder(settings.home / "spool")
    return Spool(root, store, clock, min_free_bytes=settings.spool_min_free_mb * 1024 * 1024)
