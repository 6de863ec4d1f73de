"""The relay under test: aiohttp WebSocket signalling on 127.0.0.1 in front of a ``MediaRouter``.

The message flow is the one ``server/signalling`` implements (docs/media.md "Message flow"): the browser
offers once, the relay answers, then only the relay offers (``hold_events`` keeps a server offer behind
the answer). ``--mode frame`` runs the frame relay this one replaced: the same script with ``server`` on
``PYTHONPATH`` taken from the commit before the packet path (bench/relay_bench.py extracts it), so both
are driven by the same load in the same run. ``--record`` opens a recording tap on every room and drains
it (what the recorder would read); ``--workers N`` puts rooms on N media worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import threading
from typing import Any

from aiohttp import WSMsgType, web


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def serve(port: int, record: bool, workers: int, capacity: int | None) -> None:
    from server.media import MediaRouter, OfferReady

    kwargs: dict[str, Any] = {"connect_timeout": 60}
    if workers:
        from server.media.pool import WorkerPool

        router: Any = WorkerPool(workers, capacity=capacity, **kwargs)
        await router.start()
    else:
        try:
            router = MediaRouter(empty_room_seconds=2.0, max_participants=capacity, **kwargs)
        except TypeError:  # the frame relay predates these settings
            router = MediaRouter(**kwargs)
    drains: set[asyncio.Task[None]] = set()
    recorded = {"frames": 0}

    async def drain(tap: Any) -> None:
        async for _frame in tap:
            recorded["frames"] += 1

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        room_id, pid = request.query["room"], request.query["pid"]
        try:
            room = router.room(room_id)
            if record and not getattr(room, "_bench_tap", None):
                room._bench_tap = True
                task = asyncio.ensure_future(drain(room.tap()))
                drains.add(task)
                task.add_done_callback(drains.discard)
            p = await room.join(pid)
        except Exception as exc:  # noqa: BLE001 - admission control: say why, as the signalling would
            await ws.send_json({"type": "error", "detail": getattr(exc, "detail", str(exc))})
            await ws.close()
            return ws

        async def pump() -> None:
            async for event in p.events():
                if isinstance(event, OfferReady):
                    await ws.send_json({"type": "offer", "sdp": event.sdp})

        pump_task: asyncio.Task[None] | None = None
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                body = json.loads(msg.data)
                try:
                    if body["type"] == "offer":
                        async with p.hold_events():
                            await ws.send_json({"type": "answer", "sdp": await p.accept_offer(body["sdp"])})
                        pump_task = asyncio.ensure_future(pump())
                    elif body["type"] == "answer":
                        await p.accept_answer(body["sdp"])
                except ConnectionError:
                    break  # the client has gone (the churn level leaves mid-negotiation on purpose)
                except Exception as exc:  # noqa: BLE001 - a negotiation error is reported to the client
                    with contextlib.suppress(ConnectionError):
                        await ws.send_json({"type": "error", "detail": f"signalling: {exc!r}"})
        finally:
            await room.leave(pid)
            if pump_task:
                pump_task.cancel()
        return ws

    def packets_out() -> int:
        stats = router.stats()
        if "packets_out" in stats:
            return int(stats["packets_out"])
        total = 0  # the frame relay: aiortc's senders count their packets
        for r in router.rooms.values():
            for participant in r.participants.values():
                for leg in participant.legs:
                    total += leg.transceiver.sender._RTCRtpSender__packet_count
        return total

    async def stats(request: web.Request) -> web.Response:
        s = router.stats()
        live = None
        if request.query.get("gc"):  # costly: only for the churn check, never inside a measuring window
            from aiortc import RTCPeerConnection

            gc.collect()
            live = sum(1 for o in gc.get_objects()
                       if isinstance(o, RTCPeerConnection) and o.connectionState != "closed")
        return web.json_response({
            "packets_out": packets_out(), "decoders": s.get("decoders_created"), "encoders": s.get("encoders_created"),
            "rooms": s.get("rooms"), "participants": s.get("participants"), "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(), "live_peer_connections": live, "rss_mb": round(rss_mb(), 1),
            "recorded_frames": recorded["frames"], "worker_pids": s.get("worker_pids", []),
            "workers": s.get("workers"),
        })

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await router.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--record", action="store_true")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--capacity", type=int, default=None)
    args = parser.parse_args()
    if os.environ.get("RELAY_PROFILE"):
        import cProfile
        import signal
        import time

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()

        def dump(*_: Any) -> None:
            profiler.disable()
            profiler.dump_stats(os.environ["RELAY_PROFILE"])
            os._exit(0)

        signal.signal(signal.SIGTERM, dump)
    asyncio.run(serve(args.port, args.record, args.workers, args.capacity))


if __name__ == "__main__":
    main()
