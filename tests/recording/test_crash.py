"""Crash safety: `kill -9` of `duet serve` in mid-recording; the next start marks the recording interrupted
and it plays up to its last sealed chunk (chunks are sealed at least every 2 s, so at most about 2 s is lost).

Real processes on the embedded defaults (SQLite, folder store), the demo organisation (which has consent),
and two aiortc callers following the session page's protocol.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import av
from aiohttp import ClientSession, CookieJar

from server.recording.keywrap import WrappedKey, X25519KeyFiles
from server.recording.reader import Completeness, RecordingReader
from server.recording.sealing import RecordingHeader
from server.recording.stores import FolderStore
from tests.media.peers import Peer, until
from tests.web.live.conftest import Caller

RECORD_SECONDS = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _duet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "server", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=True)


async def _serve(env: dict[str, str], base: str) -> asyncio.subprocess.Process:
    server = await asyncio.create_subprocess_exec(sys.executable, "-m", "server", "serve", env=env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    async with ClientSession() as http:
        for _ in range(200):
            try:
                if (await http.get(f"{base}/healthz")).status == 200:
                    return server
            except OSError:
                pass
            await asyncio.sleep(0.1)
    server.kill()
    raise AssertionError("duet serve did not start")


async def _caller(base: str, join_url: str, booking_id: int, peer: Peer) -> Caller:
    http = ClientSession(cookie_jar=CookieJar(unsafe=True))
    opened = await http.get(base + urlsplit(join_url).path, allow_redirects=False)
    assert opened.status == 303, await opened.text()
    caller = Caller(http, base, booking_id)
    await caller.connect()
    await caller.join_media(peer)
    return caller


async def test_kill_9_in_mid_recording_leaves_an_interrupted_recording_that_plays(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUET_")}
    env.update(DUET_HOME=str(home), DUET_PORT=str(port), DUET_LOG_LEVEL="WARNING")
    _duet(env, "migrate")
    demo = json.loads(_duet(env, "demo", "--json").stdout)
    booking = demo["booking_id"]

    server = await _serve(env, base)
    callers: list[Caller] = []
    try:
        tutor = await _caller(base, demo["practitioner_join_url"], booking, Peer("tutor", tag=1, tone=440))
        guardian = await _caller(base, demo["guardian_join_url"], booking, Peer("guardian", tag=2, tone=880))
        callers = [tutor, guardian]
        await tutor.wait_for("members", lambda m: len(m["members"]) == 2
                             and all(x["publishing"]["video"] for x in m["members"]), within=15)
        await tutor.send({"type": "record", "on": True})
        await guardian.wait_for("recording", lambda m: m["state"] == "recording", within=10)
        started = time.monotonic()
        await asyncio.sleep(RECORD_SECONDS)
        server.send_signal(signal.SIGKILL)  # no shutdown, no final chunk
        await asyncio.wait_for(server.wait(), 10)
        recorded_for = time.monotonic() - started
    finally:
        if server.returncode is None:
            server.kill()
            await server.wait()
        for caller in callers:
            await caller.close()
            await caller.http.close()

    with sqlite3.connect(home / "duet.db") as db:
        rid_hex, status_before = db.execute("SELECT id, status FROM recordings").fetchone()
    assert status_before == "active"  # what the crash left behind
    restarted = await _serve(env, base)  # recovery runs at start-up
    restarted.send_signal(signal.SIGTERM)
    await asyncio.wait_for(restarted.wait(), 30)
    with sqlite3.connect(home / "duet.db") as db:
        status, reason, scheme, key_id, wrapped, header = db.execute(
            "SELECT status, status_reason, key_scheme, key_id, wrapped_key, header FROM recordings").fetchone()
    assert status == "interrupted" and "server stopped" in reason

    rid = uuid.UUID(rid_hex)
    key = X25519KeyFiles(home / "keys" / "recording").wrapper().unwrap(WrappedKey(scheme, key_id, wrapped), rid)
    await until(lambda: (home / "recordings" / str(rid)).is_dir(), 10)  # the spool's chunks, uploaded on start
    reader = await RecordingReader.open(FolderStore(home / "recordings"), rid, key,
                                        header=RecordingHeader.from_bytes(header))
    assert reader.state.completeness is Completeness.INTERRUPTED
    webm = await reader.read_all()
    for index in range(4):  # both people's video and audio, up to the last sealed chunk
        container = av.open(io.BytesIO(webm))
        frames = [f for f in container.decode(container.streams[index]) if f.time is not None]
        span = frames[-1].time - frames[0].time
        assert recorded_for - 2.5 <= span <= recorded_for + 0.5, (index, span, recorded_for)
