"""The relay's frame logic on its own: assembling, bounded queues, keyframe and bitrate feedback."""

from __future__ import annotations

import pytest
from aiortc.rtp import RtpPacket

from server.clock import FakeClock
from server.media.forwarding import FrameQueue, Leg, TrackSource
from server.media.frames import AUDIO_TIME_BASE, VIDEO_TIME_BASE, EncodedFrame, Kind, VideoAssembler
from server.media.sdp import MUSIC_OPUS_PARAMS, opus_params, set_opus_params

KEY = b"\x10" + bytes(20)  # VP8 frame tag bit 0 = 0: keyframe
DELTA = b"\x11" + bytes(20)


def packets(seq: int, ts: int, frame: bytes, parts: int = 3) -> list[RtpPacket]:
    out = []
    size = -(-len(frame) // parts)
    for i in range(parts):
        p = RtpPacket(payload_type=97, sequence_number=(seq + i) & 0xFFFF, timestamp=ts)
        p.payload = bytes([0x10 if i == 0 else 0x00]) + frame[i * size : (i + 1) * size]
        p._data = frame[i * size : (i + 1) * size]  # type: ignore[attr-defined]  # what aiortc's depayload sets
        p.marker = 1 if i == parts - 1 else 0
        out.append(p)
    return out


class Collect:
    def __init__(self) -> None:
        self.frames: list[tuple[bytes, int, bool]] = []

    def __call__(self, data: bytes, ts: int, key: bool, ssrc: int) -> None:
        self.frames.append((data, ts, key))


def test_frame_is_released_on_its_marker_packet_not_on_the_next_frame() -> None:
    out, clock = Collect(), FakeClock()
    asm = VideoAssembler(out, clock.monotonic)
    for p in packets(65534, 1000, KEY):  # sequence numbers wrap inside the frame
        asm.add(p)
    assert out.frames == [(KEY, 1000, True)]


def test_reordered_packets_wait_for_the_gap_then_release_in_order() -> None:
    out, clock = Collect(), FakeClock()
    asm = VideoAssembler(out, clock.monotonic)
    first, second = packets(10, 0, KEY), packets(13, 3000, DELTA)
    for p in [first[0], first[2], *second, first[1]]:
        asm.add(p)
    assert [f[1] for f in out.frames] == [0, 3000]


def test_unrecovered_loss_skips_to_the_next_keyframe_and_asks_for_one() -> None:
    out, clock = Collect(), FakeClock()
    asm = VideoAssembler(out, clock.monotonic, max_wait=0.2)
    for p in packets(0, 0, KEY):
        asm.add(p)
    lost = packets(3, 3000, DELTA)
    asm.add(lost[0])
    asm.add(lost[2])  # lost[1] never comes
    clock.advance(0.3)
    plis = [asm.add(p) for p in packets(6, 6000, DELTA)]
    assert any(plis), "a PLI goes to the publisher"
    assert [f[1] for f in out.frames] == [0], "no delta frame after the loss"
    for p in packets(9, 9000, KEY):
        asm.add(p)
    assert [f[1] for f in out.frames] == [0, 9000]


def frame(pts: int, key: bool, kind: Kind = "video") -> EncodedFrame:
    return EncodedFrame(
        "p", kind, "VP8", b"x", pts, VIDEO_TIME_BASE if kind == "video" else AUDIO_TIME_BASE, key
    )


@pytest.mark.asyncio
async def test_full_video_queue_flushes_to_the_next_keyframe_and_counts_it() -> None:
    asked: list[int] = []
    queue = FrameQueue("video", 3, lambda: asked.append(1))
    queue.push(frame(0, True))
    queue.push(frame(1, False))
    queue.push(frame(2, False))
    queue.push(frame(3, False))  # overflow
    assert asked == [1] and queue.flushes == 1 and queue.frames_dropped == 4
    queue.push(frame(4, False))
    queue.push(frame(5, True))
    assert (await queue.get()).pts == 5
    assert len(queue) == 0


@pytest.mark.asyncio
async def test_full_audio_queue_drops_its_oldest_frame() -> None:
    queue = FrameQueue("audio", 2, lambda: None)
    for i in range(3):
        queue.push(frame(i, True, "audio"))
    assert [(await queue.get()).pts for _ in range(2)] == [1, 2]
    assert queue.frames_dropped == 1


@pytest.mark.asyncio
async def test_keyframe_requests_are_rate_limited_and_remb_is_the_minimum() -> None:
    clock = FakeClock()
    plis: list[int] = []
    rembs: list[int] = []
    source = TrackSource(
        "pub", "video", "VP8", clock.monotonic, plis.append, lambda b, s: rembs.append(b), lambda: []
    )
    source.on_frame(KEY, 0, True, 1234)
    source.request_keyframe()
    source.request_keyframe()
    assert plis == [1234]
    legs = [Leg("video", "a"), Leg("video", "b")]
    for leg in legs:
        leg.attach(source)
    legs[0].on_remb(1_500_000)
    legs[1].on_remb(400_000)
    assert rembs[-1] == 400_000
    assert source.cap_remb(2_000_000) == 400_000
    legs[1].detach()
    assert rembs[-1] == 1_500_000
    source.end()


def test_music_mode_parameters_are_merged_into_opus_fmtp() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10\r\n"
    params = opus_params(set_opus_params(sdp, MUSIC_OPUS_PARAMS))
    assert params["minptime"] == "10" and params["stereo"] == "1" and params["sprop-stereo"] == "1"
    bare = "v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 96\na=rtpmap:96 opus/48000/2\n"
    assert opus_params(set_opus_params(bare, MUSIC_OPUS_PARAMS))["maxaveragebitrate"] == "256000"
