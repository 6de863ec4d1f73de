"""Real aiortc peers that stand in for browsers in the relay tests.

A publisher's video carries its identity and a frame counter as big black and
white blocks (they survive VP8 at any bitrate); its audio is a tone whose
frequency names the publisher. Subscribers decode and read both back.
"""

from __future__ import annotations

import array
import asyncio
import fractions
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from server.media import OfferReady, Participant

W, H = 320, 240


async def until(predicate: Callable[[], bool], within: float = 8.0) -> None:
    """Wait for real media to arrive (not a deadline: returns as soon as it holds)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + within
    while not predicate():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


BITS = 16  # frame counter bits, two rows of 8 blocks in the lower half
ID_BITS = 4  # publisher tag bits, top row


def _block_picture(tag: int, counter: int) -> VideoFrame:
    y = bytearray(b"\x10" * (W * H))
    bw = W // 8
    # top band: the tag, 4 blocks of W/4 wide
    for bit in range(ID_BITS):
        if (tag >> bit) & 1:
            for row in range(0, 60):
                start = row * W + bit * (W // 4)
                y[start : start + W // 4] = b"\xeb" * (W // 4)
    for bit in range(BITS):
        if (counter >> bit) & 1:
            bx, by = bit % 8, 1 + bit // 8
            for row in range(by * 60 + 60, by * 60 + 120):
                start = row * W + bx * bw
                y[start : start + bw] = b"\xeb" * bw
    frame = VideoFrame(W, H, "yuv420p")
    frame.planes[0].update(bytes(y)) if frame.planes[0].line_size == W else _fill(frame, 0, bytes(y), W, H)
    chroma = b"\x80" * ((W // 2) * (H // 2))
    for i in (1, 2):
        if frame.planes[i].line_size == W // 2:
            frame.planes[i].update(chroma)
        else:
            _fill(frame, i, chroma, W // 2, H // 2)
    return frame


def _fill(frame: VideoFrame, index: int, data: bytes, width: int, height: int) -> None:
    stride = frame.planes[index].line_size
    padded = b"".join(data[r * width : (r + 1) * width] + b"\x00" * (stride - width) for r in range(height))
    frame.planes[index].update(padded)


def read_picture(frame: VideoFrame) -> tuple[int, int]:
    """(tag, counter) burnt in by ``_block_picture``; reads the centre of each block."""
    image = frame.reformat(width=W, height=H, format="yuv420p")
    plane = image.planes[0]
    stride = plane.line_size
    data = bytes(plane)

    def lit(x: int, y: int) -> bool:
        return data[y * stride + x] > 128

    tag = sum(1 << bit for bit in range(ID_BITS) if lit(bit * (W // 4) + W // 8, 30))
    bw = W // 8
    counter = 0
    for bit in range(BITS):
        bx, by = bit % 8, 1 + bit // 8
        if lit(bx * bw + bw // 2, by * 60 + 90):
            counter |= 1 << bit
    return tag, counter


class CounterVideoTrack(MediaStreamTrack):
    """30 fps video of block pictures: tag + frame counter."""

    kind = "video"

    def __init__(self, tag: int, fps: int = 30) -> None:
        super().__init__()
        self.tag = tag
        self.fps = fps
        self.counter = 0
        self._start: float | None = None

    async def recv(self) -> VideoFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self.counter / self.fps
        await asyncio.sleep(max(0.0, due - loop.time()))
        frame = _block_picture(self.tag, self.counter)
        frame.pts = self.counter * (90000 // self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        self.counter += 1
        return frame


class ToneTrack(MediaStreamTrack):
    """20 ms frames of a sine tone at ``freq`` Hz, 48 kHz mono s16."""

    kind = "audio"

    def __init__(self, freq: float) -> None:
        super().__init__()
        self.freq = freq
        self.n = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self.n * 0.02
        await asyncio.sleep(max(0.0, due - loop.time()))
        samples = array.array(
            "h",
            (int(12000 * math.sin(2 * math.pi * self.freq * (self.n * 960 + i) / 48000)) for i in range(960)),
        )
        frame = AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = 48000
        frame.pts = self.n * 960
        frame.time_base = fractions.Fraction(1, 48000)
        self.n += 1
        return frame


def dominant_frequency(pcm: bytes, channels: int, rate: int = 48000) -> float:
    """Zero-crossing estimate of a pure tone's frequency (first channel)."""
    samples = array.array("h")
    samples.frombytes(pcm)
    mono = samples[::channels]
    crossings = sum(1 for a, b in zip(mono, mono[1:], strict=False) if (a < 0) != (b < 0))
    return crossings * rate / (2 * len(mono)) if len(mono) > 1 else 0.0


@dataclass
class Received:
    """What one subscriber decoded from one remote track."""

    kind: str
    stream_id: str
    pictures: list[tuple[int, int]] = field(default_factory=list)
    first_at: float | None = None
    audio_frames: int = 0
    freqs: list[float] = field(default_factory=list)


class Peer:
    """A browser stand-in: offers first, answers the server's offers, decodes what it gets."""

    def __init__(
        self, name: str, *, tag: int | None = None, tone: float | None = None, datachannel: bool = False
    ):
        self.name = name
        self.pc = RTCPeerConnection()
        self.video = CounterVideoTrack(tag) if tag is not None else None
        self.audio = ToneTrack(tone) if tone is not None else None
        self.received: list[Received] = []
        self.offers: list[OfferReady] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.channel = self.pc.createDataChannel("echo") if datachannel else None
        if self.audio:
            self.pc.addTrack(self.audio)
        if self.video:
            self.pc.addTrack(self.video)
        self.pc.on("track", self._on_track)
        self.pc.on("connectionstatechange", self._on_state)

    def drop_incoming_video(self, every: int) -> list[int]:
        """Lose every ``every``-th incoming video RTP packet once (its retransmission gets through)."""
        dropped: list[int] = []
        seen: set[tuple[int, int]] = set()
        transport = self.pc.getTransceivers()[0].receiver.transport
        handle = transport._handle_rtp_data
        count = 0

        async def lossy(data: bytes, arrival_time_ms: int) -> None:
            nonlocal count
            is_video_vp8 = len(data) > 12 and (data[1] & 0x7F) == 97  # aiortc's VP8 payload type
            if is_video_vp8:
                key = (int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big"))
                count += 1
                if count % every == 0 and key not in seen:
                    seen.add(key)
                    dropped.append(key[1])
                    return
            await handle(data, arrival_time_ms)

        transport._handle_rtp_data = lossy  # type: ignore[method-assign]
        return dropped

    def _on_state(self) -> None:
        # aiortc starts receivers of m-lines negotiated while DTLS was still connecting only on
        # the next description; browsers do not have this gap. Re-run its connect step.
        if self.pc.connectionState == "connected":
            self._tasks.append(asyncio.ensure_future(self.pc._RTCPeerConnection__connect()))  # type: ignore[attr-defined]

    def _on_track(self, track: MediaStreamTrack) -> None:
        transceiver = next(t for t in self.pc.getTransceivers() if t.receiver.track is track)
        stream_id = transceiver.mid or ""
        record = Received(track.kind, stream_id)
        self.received.append(record)
        self._tasks.append(asyncio.ensure_future(self._consume(track, record)))

    async def _consume(self, track: MediaStreamTrack, record: Received) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                frame = await track.recv()
                if record.first_at is None:
                    record.first_at = loop.time()
                if isinstance(frame, VideoFrame):
                    record.pictures.append(read_picture(frame))
                elif isinstance(frame, AudioFrame):
                    record.audio_frames += 1
                    if record.audio_frames % 10 == 0:
                        channels = len(frame.layout.channels)
                        pcm = bytes(frame.planes[0])[: frame.samples * channels * 2]  # the plane is padded
                        record.freqs.append(dominant_frequency(pcm, channels))
        except MediaStreamError:
            pass

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def apply_answer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))

    async def answer(self, sdp: str) -> str:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription.sdp

    async def connect(self, participant: Participant) -> None:
        """First exchange, then keep answering the server's offers in the background."""
        async with participant.hold_events():
            await self.apply_answer(await participant.accept_offer(await self.offer()))
        self._tasks.append(asyncio.ensure_future(self._pump(participant)))

    async def _pump(self, participant: Participant) -> None:
        async for event in participant.events():
            if isinstance(event, OfferReady):
                self.offers.append(event)
                try:
                    await participant.accept_answer(await self.answer(event.sdp))
                except Exception:  # noqa: BLE001 - the participant may have left meanwhile
                    return

    def video_from(self, tag: int) -> list[tuple[int, int]]:
        return [p for r in self.received if r.kind == "video" for p in r.pictures if p[0] == tag]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()
