"""Shared fixtures: a migrated database on both backends, a fake clock, the app on loopback, an org."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.app import AccessLogger, create_app
from server.clock import FakeClock
from server.config import Settings, load_settings
from server.db.engine import make_engine, make_sessionmaker
from server.keys import AppKeys
from server.services import Services
from server.web.keys import SERVICES
from tests.support.databases import Templates, drop_database, fresh_database
from tests.support.org import Org, make_org, sign_in

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    built = Templates(tmp_path_factory.mktemp("templates"))
    yield built
    built.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def db_url(templates: Templates, backend: str, tmp_path: Path) -> AsyncIterator[str]:
    url, pg_name = await fresh_database(templates, backend, tmp_path)
    yield url
    if pg_name:
        await drop_database(pg_name)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def listen_socket() -> Iterator[socket.socket]:
    """The live server's socket, bound before the settings are made so DUET_PUBLIC_URL names its real port
    (the Origin check compares with the public URL, never with the Host header)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    yield sock
    sock.close()


@pytest.fixture
def settings(tmp_path: Path, db_url: str, listen_socket: socket.socket) -> Settings:
    host, port = listen_socket.getsockname()[:2]
    return load_settings(environ={}, home=str(tmp_path / "home"), database_url=db_url,
                         public_url=f"http://{host}:{port}", media_workers=0)  # media in process (tests/media: workers)


@pytest.fixture
def app(settings: Settings, clock: FakeClock, engine: AsyncEngine, tmp_path: Path) -> web.Application:
    return create_app(settings, clock=clock, engine=engine, keys=AppKeys.ensure(tmp_path / "keys"))


@pytest.fixture
def services(app: web.Application) -> Services:
    return app[SERVICES]


@pytest.fixture
async def client(aiohttp_client: object, aiohttp_server: object, app: web.Application) -> TestClient:
    # The production access logger (server.app.AccessLogger), which cuts link tokens out of paths.
    server = await aiohttp_server(app, access_log_class=AccessLogger)  # type: ignore[operator]
    return await aiohttp_client(server)  # type: ignore[operator,no-any-return]


@pytest.fixture
async def org(services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> Org:
    return await make_org(services, sessionmaker)


@pytest.fixture
def login(client: TestClient, org: Org, clock: FakeClock):  # type: ignore[no-untyped-def]
    """``await login("admin")`` signs the test client in as that org member and returns the CSRF token."""

    async def sign(key: str) -> str:
        code = pyotp.TOTP(org.totp_secret).at(int(clock.now().timestamp())) if key == "safeguarding" else None
        return await sign_in(client, org.email(key), totp_code=code)

    return sign


class ServedLikeProduction(TestServer):
    """As ``duet serve`` runs it: a client that disconnects does not cancel its handler mid-way."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return web.AppRunner(self.app, **kwargs)


@pytest.fixture
async def live_server(app: web.Application, engine: AsyncEngine, settings: Settings,
                      listen_socket: socket.socket) -> AsyncIterator[str]:
    """The app on a real loopback port (for browsers and WebRTC peers), at DUET_PUBLIC_URL; yields its base URL.

    Closed here, before the database it writes to on shutdown is dropped.
    """
    server = ServedLikeProduction(app, host="127.0.0.1", socket_factory=lambda *_: listen_socket)
    await server.start_server(access_log_class=AccessLogger)
    assert f"http://{server.host}:{server.port}" == settings.public_url
    yield settings.public_url
    await server.close()


from tests.support.browser import browser  # noqa: E402  (fixture re-export)

__all__ = ["browser"]
