"""The recorder's side of the packet path: frames assembled from packets (recording rooms only), SDP edits."""

from __future__ import annotations

from server.clock import FakeClock
from server.media.frames import PacketUnit, VideoAssembler
from server.media.sdp import MUSIC_OPUS_PARAMS, opus_params, set_opus_params

KEY = b"\x10" + bytes(20)  # VP8 frame tag bit 0 = 0: keyframe
DELTA = b"\x11" + bytes(20)


def packets(seq: int, ts: int, frame: bytes, parts: int = 3) -> list[PacketUnit]:
    size = -(-len(frame) // parts)
    return [
        PacketUnit((seq + i) & 0xFFFF, ts, i == parts - 1, i == 0, frame[i * size : (i + 1) * size], 1234)
        for i in range(parts)
    ]


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


def test_music_mode_parameters_are_merged_into_opus_fmtp() -> None:
    sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10\r\n"
    params = opus_params(set_opus_params(sdp, MUSIC_OPUS_PARAMS))
    assert params["minptime"] == "10" and params["stereo"] == "1" and params["sprop-stereo"] == "1"
    bare = "v=0\nm=audio 9 UDP/TLS/RTP/SAVPF 96\na=rtpmap:96 opus/48000/2\n"
    assert opus_params(set_opus_params(bare, MUSIC_OPUS_PARAMS))["maxaveragebitrate"] == "256000"
