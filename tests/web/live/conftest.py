"""A browser stand-in over the real session WebSocket: an aiortc peer plus its signalling."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, ClientWebSocketResponse, CookieJar, WSMsgType
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.services import Services
from tests.media.peers import Peer, until
from tests.support.org import Org, issue_link


class Caller:
    """One person's browser: cookies, the WebSocket, what arrived, and (once joined) a media peer."""

    def __init__(self, http: ClientSession, base: str, booking_id: int) -> None:
        self.http, self.base, self.booking_id = http, base, booking_id
        self.ws: ClientWebSocketResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self.peer: Peer | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed_code: int | None = None

    async def connect(self, origin: str | None = "same") -> None:
        headers = {"Origin": self.base} if origin == "same" else ({"Origin": origin} if origin else {})
        self.ws = await self.http.ws_connect(f"{self.base}/s/{self.booking_id}/ws", headers=headers)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                data = msg.json()
                self.messages.append(data)
                if data["type"] == "offer" and self.peer is not None:
                    await self.send({"type": "answer", "sdp": await self.peer.answer(data["sdp"])})
                elif data["type"] == "answer" and self.peer is not None:
                    await self.peer.apply_answer(data["sdp"])
        self.closed_code = self.ws.close_code

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def join_media(self, peer: Peer) -> None:
        await self.wait_for("welcome")
        self.peer = peer
        await self.send({"type": "offer", "sdp": await peer.offer()})
        await self.wait_for("answer")

    async def rejoin_media(self, peer: Peer, away: float = 0.0) -> None:
        """What the page does when its network path breaks: drop the old connection, (be away for a while,)
        then offer a new one."""
        old, answers = self.peer, len(self.of_type("answer"))
        assert old is not None
        await self.send({"type": "rejoin"})
        await self.wait_for("rejoin_ready")
        await old.close()
        await asyncio.sleep(away)
        self.peer = peer
        await self.send({"type": "offer", "sdp": await peer.offer()})
        await until(lambda: len(self.of_type("answer")) > answers)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    async def wait_for(self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda m: True,
                       within: float = 8.0) -> dict[str, Any]:
        await until(lambda: any(where(m) for m in self.of_type(kind)), within)
        return next(m for m in self.of_type(kind) if where(m))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        if self.peer is not None:
            await self.peer.close()


OpenCaller = Callable[..., Awaitable[Caller]]


async def tutor_and_guardian(open_caller: OpenCaller, org: Org) -> tuple[Caller, Caller]:
    """The booking's tutor and Gail, each with their browser's WebSocket open."""
    tutor = await open_caller(f"staff:{org.tutor_id}")
    guardian = await open_caller(f"guardian:{org.guardian_id}")
    await tutor.connect()
    await guardian.connect()
    return tutor, guardian


@pytest.fixture
async def open_caller(live_server: str, org: Org, services: Services, clock: FakeClock,
                      sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[OpenCaller]:
    """``await open_caller("guardian:3")``: that person's browser, link opened, inside the booked window."""
    clock.advance(3600)  # the booking starts now
    made: list[tuple[Caller, ClientSession]] = []

    async def make(subject: str, booking_id: int | None = None) -> Caller:  # noqa: S107
        booking = booking_id or org.booking_id
        http = ClientSession(cookie_jar=CookieJar(unsafe=True))
        token = await issue_link(services, sessionmaker, booking, subject)
        opened = await http.get(f"{live_server}/l/{token}", allow_redirects=False)
        assert opened.status == 303
        caller = Caller(http, live_server, booking)
        made.append((caller, http))
        return caller

    yield make
    for caller, http in made:
        await caller.close()
        await http.close()
