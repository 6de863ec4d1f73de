"""Media in worker processes: the same API through the pool, rooms placed by load, a dead worker's rooms only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from peers import Peer, until

from server.media import BadSessionDescription, MediaFull, ParticipantLeft
from server.media.pool import RESTARTED, WorkerPool

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(2, connect_timeout=30)
    await pool.start()
    yield pool
    await pool.close()


def strictly_increasing(values: list[int]) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


async def test_a_session_on_a_worker_sees_and_hears_each_other_without_decoding(
    pool: WorkerPool, peers: Callable[..., Peer]
) -> None:
    room = pool.room("booking-w1")
    a, b = peers("a", tag=1, tone=440), peers("b", tag=2, tone=880)
    await a.connect(await room.join("a"))
    await b.connect(await room.join("b"))
    await until(lambda: len(a.video_from(2)) >= 30 and len(b.video_from(1)) >= 30, within=15)
    counters = [n for _, n in b.video_from(1)]
    assert strictly_increasing(counters)
    assert any(r.audio_frames > 10 for r in a.received)
    await until(lambda: pool.stats()["packets_out"] > 0)
    assert pool.stats()["decoders_created"] == 0 and pool.stats()["encoders_created"] == 0
    assert set(room.participants) == {"a", "b"}


async def test_rooms_go_to_the_least_loaded_worker(pool: WorkerPool, peers: Callable[..., Peer]) -> None:
    first, second = pool.room("booking-w2"), pool.room("booking-w3")
    a, b = peers("a", tone=440), peers("b", tone=880)
    await a.connect(await first.join("a"))
    await b.connect(await second.join("b"))
    assert first.worker is not None and second.worker is not None
    assert first.worker is not second.worker


async def test_a_worker_that_dies_takes_only_its_rooms_and_they_come_back(
    pool: WorkerPool, peers: Callable[..., Peer]
) -> None:
    doomed, safe = pool.room("booking-w4"), pool.room("booking-w5")
    a1, a2 = peers("a1", tag=1, tone=440), peers("a2", tag=2, tone=500)
    b1, b2 = peers("b1", tag=3, tone=600), peers("b2", tag=4, tone=700)
    pa1 = await doomed.join("a1")
    await a1.connect(pa1)
    await a2.connect(await doomed.join("a2"))
    await b1.connect(await safe.join("b1"))
    await b2.connect(await safe.join("b2"))
    await until(lambda: len(a2.video_from(1)) >= 5 and len(b2.video_from(3)) >= 5, within=15)
    assert doomed.worker is not safe.worker and doomed.worker is not None and doomed.worker.proc is not None
    left: list[str] = []
    seen = asyncio.get_running_loop().create_future()

    async def watch() -> None:
        async for event in pa1.events():
            if isinstance(event, ParticipantLeft):
                left.append(event.reason)
                seen.set_result(None)

    for task in a1._tasks:  # the test peer's own event pump: this test reads the events instead
        if task.get_coro().__qualname__ == "Peer._pump":
            task.cancel()
    watcher = asyncio.ensure_future(watch())
    doomed.worker.proc.kill()
    await asyncio.wait_for(seen, 10)
    await watcher
    assert left == [RESTARTED] and not doomed.participants
    before = len(b2.video_from(3))
    await until(lambda: len(b2.video_from(3)) > before + 15)  # the other worker's room carries on

    c = peers("c", tag=5, tone=800)
    await until(lambda: all(w.alive for w in pool.workers), within=15)  # a new worker was started
    await c.connect(await doomed.join("c"))  # the room comes back, as after a node failure
    assert doomed.worker is not None and doomed.worker.alive


async def test_past_capacity_a_join_is_refused_with_a_clear_message(peers: Callable[..., Peer]) -> None:
    pool = WorkerPool(1, capacity=1)
    await pool.start()
    try:
        await pool.room("booking-w6").join("a")
        with pytest.raises(MediaFull) as refused:
            await pool.room("booking-w7").join("b")
        assert refused.value.status == 503 and "capacity" in refused.value.detail
    finally:
        await pool.close()


async def test_errors_come_back_with_their_type(pool: WorkerPool) -> None:
    p = await pool.room("booking-w8").join("m")
    with pytest.raises(BadSessionDescription) as raised:
        await p.accept_offer("v=0\r\nthis is not sdp\r\n")
    assert raised.value.status == 422


async def test_recording_through_a_worker_gets_complete_frames_assembled_here(
    pool: WorkerPool, peers: Callable[..., Peer]
) -> None:
    room = pool.room("booking-w9")
    tap = room.tap()
    a = peers("a", tag=1, tone=440)
    await a.connect(await room.join("a"))
    frames = []
    async for frame in tap:
        frames.append(frame)
        if sum(1 for f in frames if f.kind == "video") >= 20:
            break
    tap.close()
    video = [f for f in frames if f.kind == "video"]
    assert video[0].keyframe and video[0].codec == "VP8"
    assert strictly_increasing([f.pts for f in video])
    assert any(f.kind == "audio" and f.codec == "opus" for f in frames)


async def test_a_rejoin_while_recording_through_a_worker_starts_a_track_with_its_own_clock(
    pool: WorkerPool, peers: Callable[..., Peer]
) -> None:
    room = pool.room("booking-w10")
    tap = room.tap()
    first = peers("a", tag=1, tone=440)
    await first.connect(await room.join("a"))
    before = []
    async for frame in tap:
        if frame.kind == "video":
            before.append(frame)
        if len(before) >= 30:
            break
    again = peers("a-again", tag=1, tone=440)
    await again.connect(await room.rejoin("a"))
    async for frame in tap:  # the new connection's stream, timed from its own start like a new track
        if frame.kind == "video" and frame.pts < before[-1].pts:
            assert frame.keyframe
            break
    tap.close()
