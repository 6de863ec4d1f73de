"""End to end through the relay with real aiortc peers: what a participant would see and hear."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from peers import Peer, until

from server.media import MediaRouter, OfferReady, PublishingChanged
from server.media.sdp import media_kinds, opus_params

pytestmark = pytest.mark.asyncio


def strictly_increasing(values: list[int]) -> bool:
    return all(b > a for a, b in zip(values, values[1:], strict=False))


async def test_two_publishers_see_and_hear_each_other_without_decoding(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("booking-1")
    a, b = peers("a", tag=1, tone=440), peers("b", tag=2, tone=1000)
    await a.connect(await room.join("a"))
    await b.connect(await room.join("b"))

    await until(lambda: len(a.video_from(2)) >= 60 and len(b.video_from(1)) >= 60)
    await asyncio.sleep(0.5)

    for viewer, tag in ((a, 2), (b, 1)):
        counters = [c for _, c in viewer.video_from(tag)]
        assert strictly_increasing(counters), "frames arrive in order, none repeated"
        assert counters[-1] - counters[0] + 1 - len(counters) <= 1, "no frame lost on loopback"
        assert all(t == tag for t, _ in viewer.video_from(tag))
    assert not a.video_from(1) and not b.video_from(2), "nobody is sent their own video"
    heard_by_a = [f for r in a.received if r.kind == "audio" for f in r.freqs]
    heard_by_b = [f for r in b.received if r.kind == "audio" for f in r.freqs]
    assert heard_by_a and abs(sorted(heard_by_a)[len(heard_by_a) // 2] - 1000) < 60
    assert heard_by_b and abs(sorted(heard_by_b)[len(heard_by_b) // 2] - 440) < 40

    stats = router.stats()
    for pid in ("a", "b"):
        assert stats["room_detail"]["booking-1"]["participants"][pid]["srtp_profile"] == "SRTP_AEAD_AES_128_GCM"
    assert stats["decoders_created"] == 0
    assert stats["encoders_created"] == 0
    assert router.counters.all_decoders > 0, "the test peers did decode: the counter works"
    assert stats["tracks"]["booking-1/a/video"]["frames_forwarded"] >= 60
    assert stats["tracks"]["booking-1/b/audio"]["frames_forwarded"] >= 100


async def test_late_subscriber_sees_video_within_a_second(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("booking-2")
    a = peers("a", tag=3, tone=500)
    await a.connect(await room.join("a"))
    await until(lambda: router.stats()["tracks"].get("booking-2/a/video", {}).get("frames_in", 0) >= 45)

    observer = peers("observer", datachannel=True)
    loop = asyncio.get_running_loop()
    joined = loop.time()
    await observer.connect(await room.join("observer", publish=False))
    await until(lambda: len(observer.video_from(3)) >= 1, within=3)
    first = min(r.first_at for r in observer.received if r.kind == "video" and r.first_at)
    assert first - joined < 1.0
    assert router.stats()["tracks"]["booking-2/a/video"]["keyframe_requests_sent"] >= 1
    assert router.stats()["decoders_created"] == 0


async def test_observer_tracks_are_not_forwarded(router: MediaRouter, peers: Callable[..., Peer]) -> None:
    room = router.room("booking-3")
    a = peers("a", tag=1, tone=440)
    spy = peers("spy", tag=5, tone=700)
    await a.connect(await room.join("a"))
    await spy.connect(await room.join("spy", publish=False))
    await until(lambda: len(spy.video_from(1)) >= 10)
    await asyncio.sleep(0.3)
    assert not a.video_from(5)
    assert "booking-3/spy/video" not in router.stats()["tracks"]


async def test_audio_only_room_never_negotiates_video(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("phone-1", audio_only=True)
    a, b = peers("a", tone=440), peers("b", tone=880)
    await a.connect(await room.join("a"))
    await b.connect(await room.join("b"))
    await until(lambda: bool(a.offers) or bool(b.offers))
    await until(lambda: any(r.audio_frames > 20 for r in a.received))
    for offer in a.offers + b.offers:
        assert "video" not in media_kinds(offer.sdp)
    assert "video" not in media_kinds(a.pc.remoteDescription.sdp)

    from server.media import BadSessionDescription

    video_peer = peers("c", tag=1, tone=300)
    c = await room.join("c")
    with pytest.raises(BadSessionDescription, match="audio-only"):
        await c.accept_offer(await video_peer.offer())


async def test_music_mode_keeps_stereo_opus_on_every_leg(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("lesson-1", music_mode=True)
    a, b = peers("a", tone=440), peers("b", tone=880)
    pa = await room.join("a")
    async with pa.hold_events():
        answer = await pa.accept_offer(await a.offer())
        await a.apply_answer(answer)
    params = opus_params(answer)
    assert params["stereo"] == "1" and params["sprop-stereo"] == "1"
    assert int(params["maxaveragebitrate"]) >= 128000
    await b.connect(await room.join("b"))
    event = await anext(aiter(pa.events()))
    assert isinstance(event, PublishingChanged) or isinstance(event, OfferReady)
    while not isinstance(event, OfferReady):
        event = await anext(aiter(pa.events()))
    assert opus_params(event.sdp)["stereo"] == "1"
    assert opus_params(event.sdp)["sprop-stereo"] == "1"
    await pa.accept_answer(await a.answer(event.sdp))


async def test_mute_stops_forwarding_audio_and_tells_everyone(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    seen: list[tuple[str, object]] = []
    router.on_event = lambda room_id, event: seen.append((room_id, event))
    room = router.room("booking-4")
    a, b = peers("a", tag=1, tone=440), peers("b", tag=2, tone=880)
    await a.connect(await room.join("a"))
    await b.connect(await room.join("b"))
    await until(lambda: any(r.audio_frames > 10 for r in b.received))

    room.mute("a", kind="audio", muted=True)
    await asyncio.sleep(0.2)
    before = router.stats()["tracks"]["booking-4/a/audio"]["frames_forwarded"]
    await asyncio.sleep(0.5)
    assert router.stats()["tracks"]["booking-4/a/audio"]["frames_forwarded"] == before
    assert any(isinstance(e, PublishingChanged) and e.publisher_id == "a" and e.muted for _, e in seen)
    video_before = len(b.video_from(1))
    await asyncio.sleep(0.3)
    assert len(b.video_from(1)) > video_before, "muting audio leaves video alone"

    room.mute("a", kind="audio", muted=False)
    await until(lambda: router.stats()["tracks"]["booking-4/a/audio"]["frames_forwarded"] > before)


async def test_leaving_parks_the_m_line_and_the_next_joiner_reuses_it(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("booking-5")
    a, b = peers("a", tag=1, tone=440), peers("b", tag=2, tone=880)
    await a.connect(await room.join("a"))
    await b.connect(await room.join("b"))
    await until(lambda: len(a.video_from(2)) >= 5)
    m_lines = len(media_kinds(a.pc.remoteDescription.sdp))

    await room.leave("b")
    await until(lambda: "a=inactive" in a.pc.remoteDescription.sdp)
    events = [e for e in a.offers]
    assert events and "a=inactive" in events[-1].sdp

    c = peers("c", tag=4, tone=600)
    await c.connect(await room.join("c"))
    await until(lambda: len(a.video_from(4)) >= 5)
    assert len(media_kinds(a.pc.remoteDescription.sdp)) == m_lines, "the parked m-lines were reused"
    assert a.offers[-1].tracks and {t["publisher"] for t in a.offers[-1].tracks.values()} == {"c"}
    counters = [n for _, n in a.video_from(4)]
    assert strictly_increasing(counters)


async def test_loopback_returns_own_video_and_echoes_data(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("device-check-1")
    me = peers("me", tag=6, tone=440, datachannel=True)
    echoes: list[str] = []
    assert me.channel is not None
    me.channel.on("message", echoes.append)
    await me.connect(await room.join("me", loopback=True))
    await until(lambda: len(me.video_from(6)) >= 10)
    await until(lambda: me.channel is not None and me.channel.readyState == "open")
    me.channel.send("ping 1")
    await until(lambda: echoes == ["ping 1"])
    assert router.stats()["decoders_created"] == 0


async def test_recording_tap_gets_every_forwarded_frame(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("booking-6")
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
    audio = [f for f in frames if f.kind == "audio"]
    assert video[0].keyframe, "a recording starts decodable"
    assert video[0].codec == "VP8" and audio and audio[0].codec == "opus"
    assert strictly_increasing([f.pts for f in video])
    assert video[0].time_base.denominator == 90000 and audio[0].time_base.denominator == 48000
    packet = video[0].to_packet()
    assert bytes(packet) == video[0].data  # type: ignore[call-overload]


async def test_lost_packets_are_repaired_by_the_legs_nack_history(
    router: MediaRouter, peers: Callable[..., Peer]
) -> None:
    room = router.room("booking-7")
    a, b = peers("a", tag=1, tone=440), peers("b", tone=880)
    await a.connect(await room.join("a"))
    await b.connect(await room.join("b"))
    await until(lambda: len(b.video_from(1)) >= 10)
    dropped = b.drop_incoming_video(every=15)  # ~7 % of b's video packets lost on the way in
    before = len(b.video_from(1))
    key_requests = router.stats()["tracks"]["booking-7/a/video"]["keyframe_requests_sent"]
    await until(lambda: len(b.video_from(1)) >= before + 60)

    assert len(dropped) >= 3, "packets were really lost"
    counters = [n for _, n in b.video_from(1)[before:]]
    assert strictly_increasing(counters)
    assert counters[-1] - counters[0] + 1 - len(counters) <= 2, "lost packets came back (RTX), frames kept"
    assert router.stats()["tracks"]["booking-7/a/video"]["keyframe_requests_sent"] - key_requests <= 1
