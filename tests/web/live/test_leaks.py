"""Many joins and leaves through the WebSocket leave no member, peer connection or task behind."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.web.keys import HUB, SERVICES
from tests.media.peers import Peer, until
from tests.support.org import Org
from tests.web.live.conftest import OpenCaller


async def test_100_join_leave_cycles_leave_nothing_behind(open_caller: OpenCaller, org: Org,
                                                          app: web.Application) -> None:
    tutor = await open_caller(f"staff:{org.tutor_id}")
    await tutor.connect()
    await tutor.wait_for("welcome")
    hub, router = app[HUB], app[SERVICES].media
    await asyncio.sleep(0.2)
    baseline = len(asyncio.all_tasks())
    guardian = await open_caller(f"guardian:{org.guardian_id}")
    for cycle in range(100):
        await guardian.connect()
        if cycle % 10 == 0:  # every tenth with a peer connection and media
            await guardian.join_media(Peer("guardian", tag=2))
            # leaving while ICE is still connecting can leave aioice's consent task running for a while
            await guardian.wait_for("connection", lambda m: m["state"] == "connected", within=10)
        else:
            await guardian.wait_for("welcome", lambda m: True)
        await guardian.close()
        guardian.messages.clear()
        guardian.peer = None
    await until(lambda: [m.pid for m in hub.present(org.booking_id)] == [f"staff:{org.tutor_id}"], 10)
    await until(lambda: router.stats()["participants"] == 0, 10)  # the tutor never offered media
    try:
        await until(lambda: len(asyncio.all_tasks()) <= baseline, 10)
    except AssertionError:
        import collections
        print(collections.Counter(t.get_coro().__qualname__ for t in asyncio.all_tasks()), baseline)
        raise
