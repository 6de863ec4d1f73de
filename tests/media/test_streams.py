"""The packet path's traps, on bytes: what a subscriber would see go wrong if the relay got them wrong."""

from __future__ import annotations

from packets import FakeContext, FakeDownstream, FakeUpstream, vp8_payload

from server.media.rtp import FB_NACK, FB_PLI, FB_REMB, RTCP_PSFB, RTCP_RTPFB, nack_sequence_numbers, remb_bitrate
from server.media.streams import MAX_JUMP, NACK_TRIES, RTX_BURST, Leg, Source

VP8_PT, RTX_PT = 100, 101


def video_source(ctx: FakeContext, up: FakeUpstream | None = None) -> Source:
    source = Source("pub", "video", "VP8", ctx)
    source.upstream = up or FakeUpstream()
    return source


def connected_leg(ctx: FakeContext, source: Source | None, *, rtx: bool = True) -> tuple[Leg, FakeDownstream]:
    leg = Leg("video", "sub", ctx)
    if source is not None:
        leg.attach(source)
    down = FakeDownstream()
    leg.connect(down, mid="1", ssrc=0x5151, rtx_ssrc=0x5252, pt=VP8_PT, rtx_pt=RTX_PT if rtx else None,
                ext_block=b"", ast_at=0, level_at=0)
    return leg, down


def frame(source: Source, seq: int, ts: int, picture_id: int, *, key: bool, packets: int = 3,
          ssrc: int = 0x1111) -> int:
    """Feed one VP8 frame as ``packets`` packets; returns the next sequence number."""
    for i in range(packets):
        payload = vp8_payload(picture_id, picture_id & 0xFF, start=i == 0, key=key)
        source.on_packet(payload, seq & 0xFFFF, ts, int(i == packets - 1), ssrc, -1, False)
        seq += 1
    return seq


def plis(up: FakeUpstream) -> int:
    return len(up.of_type(RTCP_PSFB, FB_PLI))


def test_keyframe_forwarded_before_the_subscribers_srtp_is_ready_is_asked_for_again() -> None:
    ctx, up = FakeContext(), FakeUpstream()
    source = video_source(ctx, up)
    leg = Leg("video", "sub", ctx)
    leg.attach(source)
    seq = frame(source, 100, 0, 7, key=True)  # the subscriber's DTLS is still connecting: lost to it
    seq = frame(source, seq, 3000, 8, key=False)
    ctx.run(1.0)
    before = plis(up)

    down = FakeDownstream()
    leg.connect(down, mid="1", ssrc=0x5151, rtx_ssrc=0x5252, pt=VP8_PT, rtx_pt=RTX_PT, ext_block=b"", ast_at=0,
                level_at=0)
    ctx.run()
    assert plis(up) == before + 1, "the relay asks for a keyframe itself: the subscriber saw no loss to report"
    seq = frame(source, seq, 6000, 9, key=False)
    assert down.packets == [], "no delta frame before the keyframe (it would decode to garbage)"
    frame(source, seq, 9000, 10, key=True)
    assert [p.seq for p in down.packets] == [(down.packets[0].seq + i) & 0xFFFF for i in range(3)]
    assert down.packets[0].payload[-len(vp8_payload(0, 0, start=True, key=True)) + 5] == 0x10  # key frame tag


def test_a_legs_numbering_moves_forward_in_small_steps_across_a_change_of_source() -> None:
    ctx = FakeContext()
    a, b = video_source(ctx), video_source(ctx)
    leg, down = connected_leg(ctx, a)
    seq = frame(a, 65000, 1_000_000, 30000, key=True)
    frame(a, seq, 1_003_000, 30001, key=False)
    last = down.packets[-1]

    leg.attach(b)  # the next publisher of this kind reuses the m-line
    ctx.now += 0.5
    frame(b, 17, 4_000_000_000, 5, key=True, ssrc=0x2222)
    first = down.packets[len(down.packets) - 3]
    assert first.seq == (last.seq + 1) & 0xFFFF, "one step: the receiver's rollover guess holds"
    assert 0 < (first.ts - last.ts) & 0xFFFFFFFF <= 90000, "timestamps move on by the time that passed"
    assert first.picture_id == (last.picture_id + 1) & 0x7FFF, "VP8 picture ids stay continuous"
    assert first.tl0 == (last.tl0 + 1) & 0xFF
    assert {p.ssrc for p in down.packets} == {0x5151}

    sent = len(down.packets)
    frame(b, 17 + 3 + MAX_JUMP + 10, 4_000_090_000, 6, key=False, ssrc=0x2222)  # the source jumps ahead
    assert len(down.packets) == sent, "a jump is never passed on: the leg waits for the next keyframe"


def test_upstream_loss_stays_a_gap_the_subscriber_can_see() -> None:
    ctx = FakeContext()
    source = video_source(ctx)
    _, down = connected_leg(ctx, source)
    frame(source, 10, 0, 1, key=True)
    source.on_packet(vp8_payload(2, 2, start=True, key=False), 13, 3000, 0, 0x1111, -1, False)
    source.on_packet(vp8_payload(2, 2, start=False, key=False), 15, 3000, 1, 0x1111, -1, False)  # 14 was lost
    seqs = [p.seq for p in down.packets]
    assert (seqs[-1] - seqs[-2]) & 0xFFFF == 2, "the subscriber sees the hole and NACKs it"


def test_retransmissions_go_out_on_rtx_only() -> None:
    ctx = FakeContext()
    source = video_source(ctx)
    leg, down = connected_leg(ctx, source)
    frame(source, 500, 0, 1, key=True)
    lost = down.packets[1]

    leg.on_nack([lost.seq])
    rtx = down.packets[-1]
    assert (rtx.pt, rtx.ssrc) == (RTX_PT, 0x5252)
    assert rtx.payload[:2] == lost.seq.to_bytes(2, "big") and rtx.payload[2:] == lost.payload
    assert [p.seq for p in down.packets if p.ssrc == 0x5151].count(lost.seq) == 1, "no SRTP index used twice"

    plain_leg, plain_down = connected_leg(ctx, source, rtx=False)
    frame(source, 503, 3000, 2, key=True)
    plain_leg.on_nack([plain_down.packets[0].seq])
    assert len(plain_down.packets) == 3, "without RTX negotiated nothing is resent"
    assert plain_leg.nacks_unanswered == 1


def test_retransmissions_are_bounded() -> None:
    ctx = FakeContext()
    source = video_source(ctx)
    leg, down = connected_leg(ctx, source)
    for i in range(40):
        frame(source, 1000 + 3 * i, 3000 * i, i, key=i == 0)
    sent = [p.seq for p in down.packets]
    leg.on_nack(sent[:5])
    leg.on_nack(sent[:5])
    leg.on_nack(sent[:5])
    assert sum(1 for p in down.packets if p.ssrc == 0x5252) == 10, "each packet at most twice"

    for _ in range(3):
        leg.on_nack(sent[5:])
    assert leg.rtx_sent <= RTX_BURST, "a leg cannot be made to flood its subscriber"
    assert leg.waiting, "past the budget it drops to the next keyframe instead"


def test_video_loss_is_nacked_upstream_a_bounded_number_of_times_then_a_keyframe_is_asked_for() -> None:
    ctx, up = FakeContext(), FakeUpstream()
    source = video_source(ctx, up)
    source.nack_allowed = True
    connected_leg(ctx, source)
    frame(source, 10, 0, 1, key=True)
    ctx.run(1.0)
    source.on_packet(vp8_payload(2, 2, start=True, key=False), 15, 3000, 1, 0x1111, -1, False)  # 13, 14 lost
    for _ in range(NACK_TRIES + 2):
        ctx.run(0.05)
    nacks = up.of_type(RTCP_RTPFB, FB_NACK)
    assert len(nacks) == NACK_TRIES
    assert all(sorted(nack_sequence_numbers(n.body)) == [13, 14] for n in nacks)
    ctx.run(0.5)
    assert plis(up) >= 2, "given up: a keyframe is asked for, never left to chance"
    assert not ctx.due, "nothing left to retry"


def test_audio_is_nacked_upstream_only_where_negotiated() -> None:
    ctx, up = FakeContext(), FakeUpstream()
    audio = Source("pub", "audio", "opus", ctx)
    audio.upstream = up
    audio.nack_allowed = False  # Opus without rtcp-fb nack (what browsers offer)
    for seq in (1, 2, 5):
        audio.on_packet(b"\xfc" + bytes(40), seq, seq * 960, 1, 0x3333, -1, False)
    ctx.run(0.1)
    assert up.of_type(RTCP_RTPFB, FB_NACK) == [], "a plain resend of a packet would be refused as a replay"
    assert audio.lost_unrepaired == 2


def test_keyframe_requests_are_rate_limited_and_coalesced() -> None:
    ctx, up = FakeContext(), FakeUpstream()
    source = video_source(ctx, up)
    frame(source, 1, 0, 1, key=True)
    for _ in range(5):
        source.request_keyframe()
    ctx.run()
    assert plis(up) == 1
    source.request_keyframe()
    ctx.run(0.1)
    assert plis(up) == 1, "at most one PLI per interval"
    ctx.run(0.5)
    assert plis(up) == 2, "the coalesced request goes out when the interval is over"


def test_bitrate_feedback_to_the_publisher_is_the_lowest_of_its_subscribers() -> None:
    ctx, up = FakeContext(), FakeUpstream()
    source = video_source(ctx, up)
    frame(source, 1, 0, 1, key=True)
    fast, _ = connected_leg(ctx, source)
    slow, _ = connected_leg(ctx, source)
    fast.on_remb(1_500_000)
    slow.on_remb(400_000)
    rembs = [remb_bitrate(p.body) for p in up.of_type(RTCP_PSFB, FB_REMB)]
    assert rembs[-1] is not None and abs(rembs[-1][0] - 400_000) < 400_000 * 0.01 and rembs[-1][1] == [0x1111]
    slow.detach()
    last = remb_bitrate(up.of_type(RTCP_PSFB, FB_REMB)[-1].body)
    assert last is not None and abs(last[0] - 1_500_000) < 1_500_000 * 0.01


def test_a_subscriber_that_falls_behind_drops_to_the_next_keyframe_and_asks_for_it() -> None:
    ctx, up = FakeContext(), FakeUpstream()
    source = video_source(ctx, up)
    leg, down = connected_leg(ctx, source)
    seq = frame(source, 1, 0, 1, key=True)
    ctx.run(1.0)
    down.blocked = True  # its socket buffer is full
    seq = frame(source, seq, 3000, 2, key=False)
    down.blocked = False
    ctx.run()
    assert leg.flushes == 1 and plis(up) == 1, "never silently: the drop is counted and a keyframe asked for"
    sent = len(down.packets)
    seq = frame(source, seq, 6000, 3, key=False)
    assert len(down.packets) == sent, "no delta frame after the drop"
    frame(source, seq, 9000, 4, key=True)
    assert len(down.packets) == sent + 3
    assert leg.frames_dropped >= 1


def test_sender_reports_are_moved_onto_each_legs_timestamps() -> None:
    ctx = FakeContext()
    source = video_source(ctx)
    _, down = connected_leg(ctx, source)
    frame(source, 1, 1_000_000, 1, key=True)
    offset = (down.packets[0].ts - 1_000_000) & 0xFFFFFFFF
    source.on_sr((3_900_000_000 << 32) | 12345, 1_000_000 + 4500)
    (sr,) = down.rtcp
    assert sr.sender == 0x5151
    ntp_hi, ntp_lo, rtp_ts, packets = (int.from_bytes(sr.body[i : i + 4], "big") for i in range(0, 16, 4))
    assert (ntp_hi, ntp_lo) == (3_900_000_000, 12345), "the publisher's wall clock, for lip sync"
    assert rtp_ts == (1_000_000 + 4500 + offset) & 0xFFFFFFFF and packets == 3
