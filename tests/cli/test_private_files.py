"""Everything under DUET_HOME, and every export, is for Duet's own user only, from the moment it is made:
files 0600, folders 0700. Run as a user runs it: real `duet` processes with the usual umask (022)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from server.db.engine import make_engine, make_sessionmaker
from server.recording.keywrap import X25519KeyFiles
from server.recording.models import Recording
from server.recording.stores import FolderStore
from server.recording.writer import begin_recording


def _mode(path: Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def duet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "server", *args], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    old = os.umask(0o022)  # what a user's shell usually has: nothing of Duet's may depend on it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    environ.update(DUET_HOME=str(tmp_path / "home"), DUET_LOG_LEVEL="WARNING", DUET_PORT=str(port))
    yield environ
    os.umask(old)


async def _sealed_recording(home: Path, booking_id: int) -> uuid.UUID:
    """A real encrypted recording in the home's store, as the recorder leaves one."""
    rid = uuid.uuid4()
    keys = X25519KeyFiles(home / "keys" / "recording")
    keys.ensure()
    new = begin_recording(rid, keys.public_wrapper())
    store = FolderStore(home / "recordings")
    for index, blob in (new.sealer.seal(b"\x1aE\xdf\xa3 webm head"), new.sealer.finish(b" and tail")):
        await store.put_chunk(rid, index, blob)
    engine = make_engine(f"sqlite+aiosqlite:///{home / 'duet.db'}")
    now = datetime.now(UTC)
    async with make_sessionmaker(engine)() as s:
        s.add(Recording(id=rid, booking_id=booking_id, status="stopped", key_scheme=new.wrapped_key.scheme,
                        key_id=new.wrapped_key.key_id, wrapped_key=new.wrapped_key.blob, header=new.header.to_bytes(),
                        store_key=str(rid), started_by="staff:1", started_at=now, ended_at=now))
        await s.commit()
    await engine.dispose()
    return rid


def _serving(env: dict[str, str]) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{env['DUET_PORT']}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.1)  # waiting for another process to listen: nothing to wait on but time
    server.kill()
    raise AssertionError("duet serve did not start")


def test_every_file_and_folder_duet_makes_is_private(env: dict[str, str], tmp_path: Path) -> None:
    home = Path(env["DUET_HOME"])
    home.mkdir(mode=0o755)  # left open by an older version, or by `mkdir`
    duet(env, "migrate")
    assert _mode(home) == "0o700" and _mode(home / "duet.db") == "0o600"
    demo = json.loads(duet(env, "demo", "--json").stdout)
    duet(env, "mail", "send-pending")
    emails = list((home / "outbox").rglob("*.eml"))
    assert emails and {_mode(p) for p in emails} == {"0o600"}
    assert {_mode(p) for p in (home / "outbox").rglob("*") if p.is_dir()} | {_mode(home / "outbox")} == {"0o700"}

    rid = asyncio.run(_sealed_recording(home, demo["booking_id"]))
    exported = tmp_path / "exports" / "recording.webm"
    exported.parent.mkdir()
    duet(env, "recording", "export", str(rid), "--out", str(exported), "--reason", "subject access request 12")
    assert _mode(exported) == "0o600"
    bundle = tmp_path / "exports" / "sar.zip"
    duet(env, "gdpr", "export", "--client", str(demo["client_id"]), "--out", str(bundle))
    assert _mode(bundle) == "0o600"

    server = _serving(env)
    try:
        for name in ("duet.db", "duet.db-wal", "duet.db-shm"):
            assert _mode(home / name) == "0o600", name
        for folder in ("spool", "keys", "audit"):
            assert _mode(home / folder) == "0o700", folder
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
    assert {_mode(p) for p in (home / "audit").glob("checkpoint-*")} == {"0o600"}
    everything = list(home.rglob("*"))
    assert {_mode(p) for p in everything if p.is_dir()} == {"0o700"}
    assert {_mode(p) for p in everything if p.is_file()} == {"0o600"}, [
        (str(p.relative_to(home)), _mode(p)) for p in everything if p.is_file() and _mode(p) != "0o600"]
