"""The periodic work runs inside ``duet serve`` and acts on what is due by the injected clock."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from server.app import TASKS, create_app
from server.clock import FakeClock
from server.config import Settings
from server.keys import AppKeys
from server.safeguarding.models import Concern
from server.safeguarding.tasks import ESCALATION_INTERVAL
from server.services import Services
from tests.support.visits import People

EVERY_TASK = {"audit-daily", "overdue-visit-alerts", "concern-escalation", "mail-sender", "booking-reminders",
              "retention"}


async def test_serving_runs_every_domains_periodic_work_and_stops_it(
        aiohttp_client: object, settings: Settings, clock: FakeClock, engine: AsyncEngine, tmp_path: Path) -> None:
    app = create_app(settings, clock=clock, engine=engine, keys=AppKeys.ensure(tmp_path / "k"),
                     background_jobs=True)
    await aiohttp_client(app)  # type: ignore[operator]
    calls = app[TASKS]
    try:
        assert set(calls) == EVERY_TASK and all(call.running for call in calls.values())
    finally:  # stopped before the test's database goes
        await app.shutdown()
        await app.cleanup()
    assert not any(call.running for call in calls.values())


async def test_tests_drive_the_periodic_work_themselves(app: web.Application, client: object) -> None:
    assert app[TASKS] == {}


async def test_the_escalation_loop_escalates_a_concern_when_its_24_hours_pass(
        people: People, clock: FakeClock, services: Services, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    status, concern = await people.post("tutor", "/api/v1/concerns", {
        "category": "other", "details": "Worried about bruising seen on the video call."})
    assert status == 201
    [work] = [p for p in services.periodic(sessionmaker) if p.name == "concern-escalation"]
    call = clock.every(work.interval, work.run, name=work.name)
    try:
        clock.advance(ESCALATION_INTERVAL)
        await call.wait_runs(1)
        async with sessionmaker() as s:
            assert (await s.get(Concern, concern["id"])).escalated_at is None  # type: ignore[union-attr]
        clock.advance(timedelta(hours=24))
        await call.wait_runs(2)
        async with sessionmaker() as s:
            assert (await s.get(Concern, concern["id"])).escalated_at == clock.now()  # type: ignore[union-attr]
        assert call.failures == 0
    finally:
        await call.stop()
