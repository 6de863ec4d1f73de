"""Peers that misbehave: the room carries on, and nothing is left behind."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from peers import Peer, until

from server.clock import FakeClock
from server.errors import Conflict, InvalidInput
from server.media import (
    BadSessionDescription,
    ConnectionStateChanged,
    MediaRouter,
    NegotiationOutOfOrder,
    OfferReady,
    ParticipantLeft,
    ParticipantNotFound,
    RoomClosed,
    hook,
)

pytestmark = pytest.mark.asyncio


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "hello",
        "v=0\r\nthis is not sdp\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video x\r\n",
    ],
)
async def test_garbage_offer_is_refused_clearly_and_the_room_carries_on(
    router: MediaRouter, peers: Callable[..., Peer], garbage: str
) -> None:
    room = router.room("booking-bad")
    a, b = peers("a", tag=1, tone=440), peers("b", tag=2, tone=880)
    await a.connect(await room.join("a"))
    await b.connect(await room.join("b"))
    await until(lambda: len(b.video_from(1)) >= 5)

    mallory = await room.join("mallory")
    with pytest.raises(BadSessionDescription) as raised:
        await mallory.accept_offer(garbage)
    assert raised.value.status == 422 and raised.value.detail

    seen = len(b.video_from(1))
    await until(lambda: len(b.video_from(1)) > seen + 5)
    assert set(room.participants) >= {"a", "b"}


async def test_answer_without_an_offer_is_out_of_order(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("booking-order")
    a = peers("a", tone=440)
    p = await room.join("a")
    with pytest.raises(NegotiationOutOfOrder):
        await p.accept_answer(await a.offer())


async def test_joining_twice_and_unknown_participants_are_refused(router: MediaRouter) -> None:
    room = router.room("booking-twice")
    await room.join("a")
    with pytest.raises(InvalidInput):
        await room.join("a b\r\na=inject")
    with pytest.raises(InvalidInput):
        router.room("")
    with pytest.raises(Conflict):
        await room.join("a")
    with pytest.raises(ParticipantNotFound):
        room.mute("nobody")
    await room.close()
    with pytest.raises(RoomClosed):
        await room.join("b")


async def test_peer_that_vanishes_mid_negotiation_is_cleaned_up(peers: Callable[..., Peer]) -> None:
    clock = FakeClock()
    router = MediaRouter(clock=clock, connect_timeout=10)
    try:
        room = router.room("booking-vanish")
        ghost = peers("ghost", tag=1, tone=440)
        p = await room.join("ghost")
        await p.accept_offer(await ghost.offer())  # the answer never reaches the ghost
        await ghost.pc.close()
        clock.advance(11)
        await until(lambda: "ghost" not in room.participants)
        events = [e async for e in p.events()]
        assert any(isinstance(e, ParticipantLeft) and e.reason == "did not connect" for e in events)
        assert p.pc.connectionState == "closed"
    finally:
        await router.close()


async def test_unanswered_server_offer_removes_the_participant(peers: Callable[..., Peer]) -> None:
    clock = FakeClock()
    router = MediaRouter(clock=clock, answer_timeout=5, connect_timeout=1000)
    try:
        room = router.room("booking-mute-peer")
        a, b = peers("a", tag=1, tone=440), peers("b", tag=2, tone=880)
        pa = await room.join("a")
        async with pa.hold_events():
            await a.apply_answer(await pa.accept_offer(await a.offer()))  # a never answers offers
        pb = await room.join("b")
        await b.connect(pb)
        await until(lambda: pa.pc.signalingState == "have-local-offer")
        await until(lambda: bool(b.offers) and pb.pc.signalingState == "stable")
        clock.advance(6)
        await until(lambda: "a" not in room.participants)
        assert "b" in room.participants
    finally:
        await router.close()


def _threads() -> int:
    """Threads other than the event loop's shared executor (the test peers encode there)."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_"))


def _live_peer_connections() -> int:
    gc.collect()
    return sum(
        1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection) and o.connectionState != "closed"
    )


async def test_100_join_leave_cycles_leave_nothing_behind(peers: Callable[..., Peer]) -> None:
    router = MediaRouter()
    room = router.room("booking-churn")
    host = peers("host", tag=1, tone=440)
    await host.connect(await room.join("host"))
    await until(lambda: router.stats()["tracks"].get("booking-churn/host/video", {}).get("frames_in", 0) > 5)

    async def cycle(i: int) -> None:
        guest = Peer(f"g{i}", tag=2, tone=880)
        participant = await room.join("guest")
        if i % 10 == 0:  # every tenth guest connects fully and receives media
            await guest.connect(participant)
            await until(lambda: len(guest.video_from(1)) >= 1)  # noqa: B023 - awaited in this iteration
        else:
            await participant.accept_offer(await guest.offer())
        await room.leave("guest")
        await guest.close()

    await cycle(0)  # warm-up: the host's own client starts its receivers for guests once
    await asyncio.sleep(0.5)
    tasks_before = len(asyncio.all_tasks())
    threads_before = _threads()
    pcs_before = _live_peer_connections()
    for i in range(1, 101):
        await cycle(i)

    await until(lambda: host.pc.signalingState == "stable")  # the host answered the last parking offer
    await asyncio.sleep(0.5)  # let closed transports' tasks finish
    assert _live_peer_connections() == pcs_before
    assert _threads() <= threads_before, threading.enumerate()
    assert len(asyncio.all_tasks()) <= tasks_before + 2
    assert router.stats()["participants"] == 1
    assert router.stats()["decoders_created"] == 0
    await router.close()
    assert _live_peer_connections() == pcs_before - 1  # only the host's own client peer is left


async def test_a_connection_aiortc_closes_by_itself_removes_the_participant(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    problems: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: problems.append(context))
    room = router.room("booking-consent")
    a = peers("a", tag=1, tone=440)
    p = await room.join("a")
    async with p.hold_events():
        await a.apply_answer(await p.accept_offer(await a.offer()))  # nobody else: no server offer to answer
    await until(lambda: p.pc.connectionState == "connected")
    ice = p.pc.getTransceivers()[0].receiver.transport.transport
    await ice._connection.close()  # what aioice does when consent checks time out
    await until(lambda: "a" not in room.participants)
    events = [e async for e in p.events()]
    assert any(isinstance(e, ConnectionStateChanged) and e.state == "closed" for e in events)
    assert any(isinstance(e, ParticipantLeft) and e.reason == "connection closed" for e in events)
    await hook.start_negotiated_media(p.pc)  # the connect step on a closed ICE transport: no error left behind
    gc.collect()
    await asyncio.sleep(0.1)
    assert not [c for c in problems if "exception" in c], problems
    loop.set_exception_handler(None)


async def test_a_departed_participant_is_freed_without_the_cycle_collector(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("booking-free")
    host = peers("host", tag=1, tone=440)
    await host.connect(await room.join("host"))
    await until(lambda: router.stats()["tracks"].get("booking-free/host/video", {}).get("frames_in", 0) > 5)
    gc.collect()
    gc.disable()
    try:
        guest = peers("guest", tag=2, tone=880)
        p = await room.join("guest")
        async with p.hold_events():
            await guest.apply_answer(await p.accept_offer(await guest.offer()))
        events = p.events()
        async for event in events:  # answer the server's offer of the host's tracks, without a pump task
            if isinstance(event, OfferReady):
                await p.accept_answer(await guest.answer(event.sdp))
                break
        await events.aclose()
        await until(lambda: len(guest.video_from(1)) >= 1)
        departed = weakref.ref(p)
        await room.leave("guest")
        del p, event, events
        await asyncio.sleep(0.2)
        assert departed() is None, "no reference cycle keeps a departed participant"
    finally:
        gc.enable()


async def test_an_empty_room_is_let_go_within_a_minute_and_reopens_on_the_next_join(
    peers: Callable[..., Peer],
) -> None:
    clock = FakeClock()
    router = MediaRouter(clock=clock)
    try:
        room = router.room("booking-empty")
        a = peers("a", tag=1, tone=440)
        await a.connect(await room.join("a"))
        await room.leave("a")
        clock.advance(59)
        assert router.stats()["rooms"] == 1, "not at once: someone may be rejoining"
        clock.advance(2)
        assert router.stats()["rooms"] == 0 and not room.closed, "let go, not ended"

        b = peers("b", tag=2, tone=880)
        await b.connect(await room.join("b"))  # the same session, still in its window
        assert router.rooms["booking-empty"] is room
        await until(lambda: router.stats()["tracks"].get("booking-empty/b/video", {}).get("frames_in", 0) > 5)
    finally:
        await router.close()
