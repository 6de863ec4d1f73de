"""The retention tests erase from the real stores too: SeaweedFS (S3) as in the recording tests."""

from tests.recording.conftest import running_seaweedfs, s3_store, seaweedfs

__all__ = ["running_seaweedfs", "s3_store", "seaweedfs"]
