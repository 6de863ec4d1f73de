"""Fixtures for the booking tests: a real aiosmtpd server from tests/support/smtp.py, staff signed in, and the
live sessions ended before the test database goes."""

from collections.abc import AsyncIterator

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.web.keys import HUB
from server.web.live.hub import SessionHub
from tests.support.org import Org
from tests.support.smtp import smtp_server, smtp_server_factory
from tests.support.visits import People

__all__ = ["smtp_server", "smtp_server_factory"]


@pytest.fixture
def people(client: TestClient, aiohttp_client: object, org: Org, clock: FakeClock) -> People:
    return People(client, aiohttp_client, org,
                  lambda: pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp())))


@pytest.fixture
async def hub(client: TestClient, app: web.Application,
              sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[SessionHub]:
    """The app's session hub. Its sessions end here, before the database they write to on ending is dropped
    (the test server itself closes later)."""
    yield app[HUB]
    await app[HUB].close()
