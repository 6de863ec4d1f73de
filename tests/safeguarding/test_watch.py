"""The safeguarding watch runs inside the app (``duet serve``) and acts on what is due by the clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.safeguarding.models import Concern
from server.safeguarding.watch import watch_context
from server.services import Services
from tests.support.visits import People


async def test_the_app_runs_the_watch_while_it_is_up(client: TestClient) -> None:
    assert [t for t in asyncio.all_tasks() if t.get_name() == "safeguarding-watch" and not t.done()]


async def test_the_watch_loop_escalates_a_concern_when_its_time_comes(
        people: People, clock: FakeClock, services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    status, concern = await people.post("tutor", "/api/v1/concerns", {
        "category": "other", "details": "Worried about bruising seen on the video call."})
    assert status == 201
    context = watch_context(services, lambda: sessionmaker, interval=0.02)(web.Application())
    await anext(context)
    try:
        await asyncio.sleep(0.1)
        async with sessionmaker() as s:
            assert (await s.get(Concern, concern["id"])).escalated_at is None  # type: ignore[union-attr]
        clock.advance(timedelta(hours=24))
        for _ in range(100):
            await asyncio.sleep(0.05)
            async with sessionmaker() as s:
                escalated = (await s.execute(select(Concern.escalated_at).where(Concern.id == concern["id"]))
                             ).scalar_one()
            if escalated is not None:
                break
        assert escalated == clock.now()
    finally:
        await anext(context, None)
