"""The WebM muxer on its own, with real VP8 and Opus frames: the session chat as a subtitle track, a rejoin
placed where it happened, and media handed on promptly even when nobody chats."""

from __future__ import annotations

import io
from dataclasses import replace

import av

from server.media.frames import TEXT_TIME_BASE, EncodedFrame, voice_cue
from server.recording.muxer import Track, WebmMuxer
from tests.support.frames import opus_frames, vp8_frames

TRACKS = [Track("guardian:3", "video"), Track("guardian:3", "audio")]


def _chat(cue: str, arrival: float) -> EncodedFrame:
    return EncodedFrame("guardian:3", "text", "webvtt", cue.encode(), 0, TEXT_TIME_BASE, True, arrival=arrival)


def _mux(frames: list[EncodedFrame]) -> bytes:
    muxer = WebmMuxer(TRACKS)
    out = b"".join(muxer.add(f) for f in sorted(frames, key=lambda f: f.arrival))
    return out + muxer.close()


def _stream(webm: bytes, kind: str) -> tuple[av.container.InputContainer, av.stream.Stream]:
    container = av.open(io.BytesIO(webm))
    return container, next(s for s in container.streams if s.type == kind)


def test_chat_lines_are_cues_at_the_moment_they_were_sent_naming_the_writer() -> None:
    frames = vp8_frames("guardian:3", 0.0, 10, 4) + opus_frames("guardian:3", 0.0, 4)
    frames += [_chat(voice_cue("Sam's mum", "Can you hear <b>me</b>?"), 1.5),
               _chat(voice_cue("Ann Tutor", "Yes\n\nloud & clear"), 3.0)]
    container, chat = _stream(_mux(frames), "subtitle")
    assert chat.metadata.get("title") == "chat" and chat.codec_context.name == "webvtt"
    cues = [(float(p.pts * p.time_base), float(p.duration * p.time_base), bytes(p).decode())
            for p in container.demux(chat) if p.size]
    assert [text for _, _, text in cues] == ["<v Sam's mum>Can you hear &lt;b&gt;me&lt;/b&gt;?",
                                             "<v Ann Tutor>Yes\nloud &amp; clear"]
    assert [round(at, 1) for at, _, _ in cues] == [1.5, 3.0] and all(shown == 5.0 for _, shown, _ in cues)


def test_a_rejoin_lands_where_it_happened_instead_of_being_squeezed_after_the_first_stretch() -> None:
    # 3 s, then the network drops; the guardian rejoins 2 s later with a new track whose clock starts at 0.
    first = vp8_frames("guardian:3", 0.0, 10, 3) + opus_frames("guardian:3", 0.0, 3)
    second = vp8_frames("guardian:3", 5.0, 90, 3) + opus_frames("guardian:3", 5.0, 3)
    webm = _mux(first + second)
    for kind in ("video", "audio"):
        container, stream = _stream(webm, kind)
        times = [float(f.time) for f in container.decode(stream) if f.time is not None]
        gap_at = max(range(1, len(times)), key=lambda i: times[i] - times[i - 1])
        assert abs(times[gap_at - 1] - 3.0) < 0.1 and abs(times[gap_at] - 5.0) < 0.1, (kind, times[gap_at - 1:])
        assert abs(times[-1] - 8.0) < 0.1, kind


def test_a_late_burst_after_a_stall_keeps_its_own_timing() -> None:
    # The relay stalled for a second: frames 1.0-2.0 s arrive together at 2.0 s; not a restart.
    frames = vp8_frames("guardian:3", 0.0, 10, 4)
    frames = [replace(f, arrival=max(f.arrival, 2.0)) if 1.0 <= f.arrival <= 2.0 else f for f in frames]
    muxer = WebmMuxer([Track("guardian:3", "video")])
    webm = b"".join(muxer.add(f) for f in frames) + muxer.close()
    container, stream = _stream(webm, "video")
    times = [float(f.time) for f in container.decode(stream) if f.time is not None]
    assert max(b - a for a, b in zip(times, times[1:], strict=False)) < 0.05 and abs(times[-1] - 4.0) < 0.1


def test_media_is_handed_on_within_two_seconds_though_the_chat_track_stays_empty() -> None:
    """The sealed writer must get media promptly (a crash loses at most about 2 s): the empty chat track
    must not hold the interleaver back."""
    frames = sorted(vp8_frames("guardian:3", 0.0, 10, 6) + opus_frames("guardian:3", 0.0, 6),
                    key=lambda f: f.arrival)
    muxer = WebmMuxer(TRACKS)
    handed_on: list[tuple[float, int]] = []
    total = 0
    for frame in frames:
        total += len(muxer.add(frame))
        handed_on.append((frame.arrival, total))
    at = {round(t): size for t, size in handed_on}
    assert at[3] > at[1] and at[5] > at[3], at
