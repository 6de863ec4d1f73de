"""Load generator: whole 1:1 sessions over the relay's WebSocket signalling and real WebRTC, at the packet level.

Each participant is an aiortc ``RTCPeerConnection`` for ICE/DTLS/SDP only (the relay's own hook hands
it the negotiated parameters), and sends pre-packetised VP8 640x480 ~500 kbit/s and 20 ms Opus straight
from memory on the same batched socket loop the relay uses (``server.media.engine``): no encoder, no
aiortc RTP path, so it costs less per packet than the relay it loads. The last packet of every video
frame ends with a trailer (``DUET``, frame number, send time on CLOCK_MONOTONIC, which every process on
the machine shares), as LiveKit's load tester does; receivers count packets and frames, check order and
completeness, and time each frame from its trailer. A PLI makes the sender jump to the next keyframe of
its loop. Several processes run sessions side by side; each reports its own CPU per packet.

    python -m bench.loadgen --port 8080 --first 0 --count 10 --media media.pkl --start T --warmup 5 \
        --duration 15 --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pickle
import struct
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.media.engine import MediaEngine  # noqa: E402
from server.media.rtp import HEADER  # noqa: E402

TRAILER = struct.Struct("!4sId")  # magic, frame number, send time (monotonic seconds)
MAGIC = b"DUET"
FPS = 30


class MonotonicClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class LoadEngine(MediaEngine):
    """The relay's batched loop, plus the senders' due frames on each batch."""

    def __init__(self, interval: float) -> None:
        super().__init__(MonotonicClock(), interval=interval)
        self.senders: list[Outgoing] = []

    def tick(self) -> None:
        super().tick()
        now = time.monotonic()
        for sender in self.senders:
            sender.pump(now)


def packetise(media: dict[str, Any]) -> dict[str, Any]:
    """VP8 frames -> RTP payloads once (aiortc's RFC 7741 packetiser; picture ids are patched per send)."""
    from aiortc.codecs.vpx import Vp8Encoder

    frames = [Vp8Encoder._packetize(data, 0) for data in media["video"]]
    return {"video": frames, "keys": media["keys"], "audio": [[a] for a in media["audio"]]}


class Outgoing:
    """One published stream, duck-typed as a relay ``Leg`` so the connection can route feedback to it."""

    def __init__(self, kind: str, frames: list[list[bytes]], keys: list[bool] | None, engine: LoadEngine,
                 log: list[float] | None) -> None:
        self.kind = kind
        self.frames = frames
        self.keys = keys
        self.engine = engine
        self.period = 1 / FPS if kind == "video" else 0.02
        self.step = 3000 if kind == "video" else 960
        self.down: Any = None
        self.log = log  # send time of every frame, in order
        self.index = 0
        self.n = 0
        self.seq = 0
        self.ts = 0
        self.next_due = 0.0
        self.packets = 0
        self.keyframe_requests = 0
        self.nacks = 0

    # -- what MediaConnection.add_leg / its RTCP dispatch call ---------------------------------------
    def connect(self, down: Any, *, mid: str | None, ssrc: int, rtx_ssrc: int, pt: int, rtx_pt: int | None,
                ext_block: bytes, ast_at: int, level_at: int) -> None:
        self.down, self.ssrc, self.pt = down, ssrc, pt
        self.ext_block, self.ast_at = ext_block, ast_at
        self.next_due = time.monotonic()
        self.engine.senders.append(self)

    def on_nack(self, seqs: list[int]) -> None:
        self.nacks += len(seqs)

    def on_keyframe_request(self) -> None:
        """A pre-encoded loop cannot make a keyframe: jump to its next one instead."""
        self.keyframe_requests += 1
        if self.keys:
            for i in range(1, len(self.keys)):
                j = (self.index + i) % len(self.keys)
                if self.keys[j]:
                    self.index = j
                    return

    def on_remb(self, bitrate: int) -> None:
        pass

    def pump(self, now: float) -> None:
        if self.down is None or self.down.path is None:
            return
        behind = 0
        while self.next_due <= now and behind < 5:
            self._send_frame()
            self.next_due += self.period
            behind += 1
        if behind == 5:
            self.next_due = now + self.period  # starved of CPU: do not burst to catch up

    def _send_frame(self) -> None:
        tx = self.down.tx
        payloads = self.frames[self.index]
        self.index = (self.index + 1) % len(self.frames)
        block = self.ext_block
        hl = 12 + len(block)
        last = len(payloads) - 1
        sent_at = time.monotonic()
        for i, payload in enumerate(payloads):
            HEADER.pack_into(tx, 0, 0x90 if block else 0x80, (0x80 if i == last else 0) | self.pt,
                             self.seq, self.ts & 0xFFFFFFFF, self.ssrc)
            if block:
                tx[12:hl] = block
                if self.ast_at:
                    tx[self.ast_at : self.ast_at + 3] = self.engine.abs_send_time
            n = len(payload)
            tx[hl : hl + n] = payload
            if self.kind == "video":
                struct.pack_into("!H", tx, hl + 2, 0x8000 | (self.n & 0x7FFF))
            if i == last:
                TRAILER.pack_into(tx, hl + n, MAGIC, self.n, sent_at)
                n += TRAILER.size
            self.seq = (self.seq + 1) & 0xFFFF
            if self.down.send_rtp(hl + n):
                self.packets += 1
        if self.log is not None:
            self.log.append(sent_at)
        self.n += 1
        self.ts += self.step


class Incoming:
    """One received stream, duck-typed as a relay ``Source``: counts, orders and times frames."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.ssrc: int | None = None
        self.nack_allowed = False
        self.upstream: Any = None
        self.legs: list[Any] = []
        self.packets = 0
        self.rtx = 0
        self.frames: list[tuple[int, float, float, bool]] = []  # (frame number, sent, arrival, complete)
        self.out_of_order = 0
        self._last_marker: int | None = None
        self._since = 0
        self._highest = -1

    def on_packet(self, payload: bytes, seq: int, ts: int, marker: int, ssrc: int, level: int, rtx: bool) -> None:
        self.packets += 1
        self.rtx += rtx
        self.ssrc = ssrc
        self._since += 1
        if not marker or self.kind != "video":
            return
        now = time.monotonic()
        complete = self._last_marker is None or ((seq - self._last_marker) & 0xFFFF) == self._since
        self._last_marker, self._since = seq, 0
        if len(payload) >= TRAILER.size:
            magic, number, sent = TRAILER.unpack_from(payload, len(payload) - TRAILER.size)
            if magic == MAGIC:
                if number <= self._highest:
                    self.out_of_order += 1
                self._highest = max(self._highest, number)
                self.frames.append((number, sent, now, complete))

    def on_sr(self, ntp: int, rtp_ts: int) -> None:
        pass

    def report(self, now: float) -> None:
        pass

    def set_recording(self, on: bool) -> None:
        pass


async def run_participant(port: int, room: str, pid: str, media: dict[str, Any], engine: LoadEngine,
                          stop_at: float, result: dict[str, Any]) -> None:
    """Join over the WebSocket, offer, answer the relay's offers, publish and receive until ``stop_at``."""
    import aiohttp
    from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription

    from server.media import hook
    from server.media.connection import MediaConnection

    pc = RTCPeerConnection()
    conn = MediaConnection(engine, f"{room}/{pid}")
    sent: list[float] = []
    result.update(sent_log=sent, incoming=[], error=None, joined=time.monotonic(), media_at=None)
    out_video = Outgoing("video", media["video"], media["keys"], engine, sent)
    out_audio = Outgoing("audio", media["audio"], None, engine, None)
    result["outgoing"] = [out_video, out_audio]

    def bind() -> bool:
        if not conn.bound:
            path = hook.media_path(pc)
            if path is None:
                return False
            conn.bind(path)
        return True

    for kind, out in (("audio", out_audio), ("video", out_video)):
        transceiver = pc.addTransceiver(kind, direction="sendonly")
        wanted = ("video/vp8", "video/rtx") if kind == "video" else ("audio/opus",)
        transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities(kind).codecs
                                         if c.mimeType.lower() in wanted])

        def started(params: Any, ssrc: int, rtx_ssrc: int, out: Outgoing = out) -> None:
            if bind():
                conn.add_leg(out, params, ssrc, rtx_ssrc)  # type: ignore[arg-type]

        hook.take_sender(transceiver.sender, started)

    @pc.on("track")
    def on_track(track: Any) -> None:
        transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
        incoming = Incoming(track.kind)
        result["incoming"].append(incoming)

        def ready(params: Any) -> None:
            if bind():
                conn.add_source(incoming, params)  # type: ignore[arg-type]

        hook.take_receiver(transceiver.receiver, ready)

    tasks: list[asyncio.Task[Any]] = []

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            tasks.append(asyncio.ensure_future(hook.start_negotiated_media(pc)))

    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(
            f"http://127.0.0.1:{port}/ws?room={room}&pid={pid}", heartbeat=None
        ) as ws:
            await pc.setLocalDescription(await pc.createOffer())
            await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})

            async def reader() -> None:
                async for msg in ws:
                    body = json.loads(msg.data)
                    if body.get("type") == "answer":
                        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "answer"))
                    elif body.get("type") == "offer":
                        await pc.setRemoteDescription(RTCSessionDescription(body["sdp"], "offer"))
                        await pc.setLocalDescription(await pc.createAnswer())
                        await ws.send_json({"type": "answer", "sdp": pc.localDescription.sdp})
                    elif body.get("type") == "error":
                        result["error"] = body.get("detail")

            task = asyncio.ensure_future(reader())
            await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
            task.cancel()
            await asyncio.gather(task, *tasks, return_exceptions=True)
    except Exception as exc:  # noqa: BLE001 - a failed participant is counted, not fatal to the run
        result["error"] = repr(exc)
    finally:
        conn.unbind()
        for out in (out_video, out_audio):
            if out in engine.senders:
                engine.senders.remove(out)
        await pc.close()


def summarise(results: list[dict[str, Any]], window: tuple[float, float]) -> list[dict[str, Any]]:
    """Per received video stream: frames its sender sent in the window vs frames received, in order, timed."""
    by_key = {(r["session"], r["pid"]): r for r in results}
    streams = []
    for r in results:
        partner = by_key.get((r["session"], "b" if r["pid"] == "a" else "a"))
        if partner is None:
            continue
        sent = [t for t in partner["sent_log"] if window[0] <= t <= window[1]]
        video = [i for i in r["incoming"] if i.kind == "video"]
        audio = [i for i in r["incoming"] if i.kind == "audio"]
        frames = [f for i in video for f in i.frames if window[0] <= f[1] <= window[1]]
        numbers = {f[0] for f in frames}
        streams.append({
            "session": r["session"],
            "error": r["error"],
            "sent": len(sent),
            "received": len(numbers),
            "complete": sum(1 for f in frames if f[3]),
            "out_of_order": sum(i.out_of_order for i in video),
            "latencies": [f[2] - f[1] for f in frames],
            "video_packets": sum(i.packets for i in video),
            "audio_packets": sum(i.packets for i in audio),
            "reached_media": bool(frames) and any(i.packets for i in audio),
            "keyframe_requests": sum(o.keyframe_requests for o in partner["outgoing"]),
        })
    return streams


async def main(args: argparse.Namespace) -> None:
    media = packetise(pickle.loads(args.media.read_bytes()))  # noqa: S301,ASYNC240 - our own file, once
    engine = LoadEngine(args.tick)
    await asyncio.sleep(max(0.0, args.start - time.monotonic()))
    window = (args.start + args.warmup, args.start + args.warmup + args.duration)
    stop_at = window[1] + 1.0
    results: list[dict[str, Any]] = []
    jobs = []
    for s in range(args.first, args.first + args.count):
        for pid in ("a", "b"):
            r: dict[str, Any] = {"session": s, "pid": pid}
            results.append(r)
            jobs.append(run_participant(args.port, f"s{s}", pid, media, engine, stop_at, r))
    cpu0 = os.times()
    runner = asyncio.ensure_future(asyncio.gather(*jobs))
    await asyncio.sleep(max(0.0, window[0] - time.monotonic()))
    w0, p0 = os.times(), engine.packets_in + engine.packets_out
    await asyncio.sleep(max(0.0, window[1] - time.monotonic()))
    w1, p1 = os.times(), engine.packets_in + engine.packets_out
    await runner
    cpu1 = os.times()
    window_cpu = (w1.user + w1.system) - (w0.user + w0.system)
    args.out.write_text(json.dumps({  # noqa: ASYNC240 - the run is over; one small file
        "streams": summarise(results, window),
        "client_cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "window_cpu": window_cpu,
        "window_packets": p1 - p0,
    }))
    await engine.close()


async def direct(media_path: Path, seconds: float, tick: float) -> dict[str, float]:
    """The same send-to-receive timing over a direct connection (no relay): the reference for 'added'."""
    from aiortc import RTCPeerConnection, RTCRtpSender

    from server.media import hook
    from server.media.connection import MediaConnection

    media = packetise(pickle.loads(media_path.read_bytes()))  # noqa: S301,ASYNC240 - our own file, once
    engine = LoadEngine(tick)
    a, b = RTCPeerConnection(), RTCPeerConnection()
    conn_a, conn_b = MediaConnection(engine, "direct/a"), MediaConnection(engine, "direct/b")
    out = Outgoing("video", media["video"], media["keys"], engine, None)
    incoming = Incoming("video")
    transceiver = a.addTransceiver("video", direction="sendonly")
    transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                     if c.mimeType.lower() in ("video/vp8", "video/rtx")])

    def sender_ready(params: Any, ssrc: int, rtx_ssrc: int) -> None:
        path = hook.media_path(a)
        if path is not None:
            conn_a.bind(path)
            conn_a.add_leg(out, params, ssrc, rtx_ssrc)  # type: ignore[arg-type]

    hook.take_sender(transceiver.sender, sender_ready)

    @b.on("track")
    def on_track(track: Any) -> None:
        t = next(t for t in b.getTransceivers() if t.receiver.track is track)

        def ready(params: Any) -> None:
            path = hook.media_path(b)
            if path is not None:
                conn_b.bind(path)
                conn_b.add_source(incoming, params)  # type: ignore[arg-type]

        hook.take_receiver(t.receiver, ready)

    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    await asyncio.sleep(seconds)
    latencies = sorted(f[2] - f[1] for f in incoming.frames[len(incoming.frames) // 4 :])
    conn_a.unbind()
    conn_b.unbind()
    await a.close()
    await b.close()
    await engine.close()
    if not latencies:
        return {"p50_ms": float("nan"), "p95_ms": float("nan")}
    return {"p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
            "p95_ms": round(1000 * latencies[int(0.95 * len(latencies))], 2)}


def cli() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--direct", action="store_true", help="time a direct connection instead, print JSON")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--media", type=Path, required=True)
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--tick", type=float, default=0.002)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.direct:
        print(json.dumps(asyncio.run(direct(args.media, args.duration, args.tick))))
        return
    os.nice(5)  # the relay under test gets the CPU first
    asyncio.run(main(args))


if __name__ == "__main__":
    cli()
