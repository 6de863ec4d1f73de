"""The device check over really slow links: a client in a network namespace shaped with tc.

The client follows check.js's protocol (tests/support/probe_client.py) from inside the namespace, against
the app served on the host end of the link. At 250 kbit/s the verdict must be "audio only", naming the
slow upload; at 64 kbit/s "not ready", naming the connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.app import AccessLogger
from server.checks.models import CheckRun
from server.links.models import LinkPurpose
from server.services import Services
from tests.conftest import ServedLikeProduction
from tests.support.org import Org, issue_link
from tests.support.shaped_link import NoShapedLink, ShapedLink, shaped_link

# What is under test is media and the browser, not storage: one database (the production one) is enough
# here, and both backends are covered by every other test. Keeps the suite well under 20 minutes.
pytestmark = pytest.mark.parametrize("backend", ["postgres"])

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def slow_link(request: pytest.FixtureRequest) -> Iterator[ShapedLink]:
    try:
        with shaped_link(request.param) as link:
            yield link
    except NoShapedLink as exc:
        if os.environ.get("CI") == "true":
            raise  # in CI the shaped link is part of the suite: fail, do not skip
        pytest.skip(f"no shaped link here ({exc}); CI runs this as root")


@pytest.fixture
def listen_socket(slow_link: ShapedLink) -> Iterator[socket.socket]:
    """The server's socket on the shaped link's address, so DUET_PUBLIC_URL (the Origin pages send) names it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((slow_link.host_ip, 0))
    yield sock
    sock.close()


@pytest.mark.parametrize(("slow_link", "verdict", "reason"), [
    (250, "audio only", "Upload was 0."),  # enough for speech, not for video
    (64, "not ready", "The connection carried only"),  # not even for speech
], indirect=["slow_link"])
async def test_a_slow_link_gives_the_verdict_and_the_reason(
        slow_link: ShapedLink, verdict: str, reason: str, app: web.Application, engine: AsyncEngine, org: Org,
        services: Services, sessionmaker: async_sessionmaker[AsyncSession], listen_socket: socket.socket) -> None:
    server = ServedLikeProduction(app, host=slow_link.host_ip, socket_factory=lambda *_: listen_socket)
    await server.start_server(access_log_class=AccessLogger)
    try:
        base = services.settings.public_url
        token = await issue_link(services, sessionmaker, org.booking_id, f"guardian:{org.guardian_id}",
                                 LinkPurpose.CHECK)
        client = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", slow_link.namespace, sys.executable, "-m", "tests.support.probe_client", base,
            token, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(client.communicate(), 120)
    finally:
        await server.close()
    assert client.returncode == 0, err.decode()[-2000:]
    result = json.loads(out)
    measured = result["measured"]
    rate = int(slow_link.rate_kbit)
    assert result["status"] == 201 and result["verdict"] == verdict, result
    assert rate / 5 < measured["up_kbps"] < rate * 1.2  # the link, not the machine, set the pace
    assert any(r.startswith(reason) for r in result["reasons"]), result["reasons"]
    assert not result["music_advisable"]  # stereo Opus at 128 kbit/s needs more than either link carries
    async with sessionmaker() as s:
        stored = (await s.scalars(select(CheckRun).where(CheckRun.booking_id == org.booking_id))).one()
    assert stored.verdict == verdict and stored.device == "family laptop"
