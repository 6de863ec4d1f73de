"""Fixtures for the blended plan tests: staff signed in on their own clients (as in tests/visits)."""

from __future__ import annotations

import pyotp
import pytest
from aiohttp.test_utils import TestClient

from server.clock import FakeClock
from tests.support.org import Org
from tests.support.visits import People


@pytest.fixture
def people(client: TestClient, aiohttp_client: object, org: Org, clock: FakeClock) -> People:
    return People(client, aiohttp_client, org,
                  lambda: pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp())))
