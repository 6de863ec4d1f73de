"""Relay benchmark: N concurrent 1:1 VGA sessions through Duet's relay vs aiortc's transcoding path.

Usage: .venv/bin/python bench/relay_bench.py [--sessions 1,2,5,10,20] [--baseline 1,2] [--duration 15]
       [--out docs/benchmarks-relay.json]

Processes: one relay (aiohttp WebSocket signalling on 127.0.0.1 + MediaRouter, or the baseline: aiortc
MediaRelay with decode and re-encode), and client processes, each running whole sessions (both
participants). Clients send PRE-ENCODED VP8 640x480 30 fps ~500 kbit/s (a frame counter burnt into the
picture) and Opus as av.Packets, so they cost little CPU; they receive through the relay hook too (no
decoding), identify each frame by its bytes and time it against its send time (one monotonic clock for
all processes on Linux). Relay CPU is read from /proc/<pid>/stat (user+sys, all threads).
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

W, H, FPS, BITRATE, LOOP_FRAMES, GOP = 640, 480, 30, 500_000, 300, 90
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- pre-encoding


def _picture(counter: int) -> Any:
    from av import VideoFrame

    y = bytearray(b"\x10" * (W * H))
    bw, bh = W // 8, H // 4
    for bit in range(16):
        if (counter >> bit) & 1:
            bx, by = bit % 8, 1 + bit // 8
            for row in range(by * bh, (by + 1) * bh):
                start = row * W + bx * bw
                y[start : start + bw] = b"\xeb" * bw
    # moving texture so the encoder has real work and real packet sizes
    for row in range(0, bh, 2):
        off = (counter * 7 + row * 13) % (W - 64)
        y[row * W + off : row * W + off + 64] = bytes((i * 37 + counter) & 0xFF for i in range(64))
    frame = VideoFrame(W, H, "yuv420p")
    for index, (data, width) in enumerate(
        ((bytes(y), W), (b"\x80" * (W * H // 4), W // 2), (b"\x80" * (W * H // 4), W // 2))
    ):
        plane = frame.planes[index]
        if plane.line_size == width:
            plane.update(data)
        else:
            rows = len(data) // width
            plane.update(
                b"".join(data[r * width : (r + 1) * width].ljust(plane.line_size, b"\0") for r in range(rows))
            )
    return frame


def pre_encode(path: Path) -> None:
    """Encode LOOP_FRAMES of VGA VP8 and 10 s of Opus once; clients replay the packets."""
    import array

    import av

    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = W, H, "yuv420p"
    codec.bit_rate = BITRATE
    codec.time_base = fractions.Fraction(1, FPS)
    codec.gop_size = GOP
    codec.options = {
        "deadline": "realtime",
        "cpu-used": "8",
        "lag-in-frames": "0",
        "minrate": str(BITRATE),
        "maxrate": str(BITRATE),
        "bufsize": str(BITRATE),
    }
    video: list[bytes] = []
    keys: list[bool] = []
    for i in range(LOOP_FRAMES):
        frame = _picture(i)
        frame.pts = i
        for packet in codec.encode(frame):
            video.append(bytes(packet))
            keys.append(bool(packet.is_keyframe))
    for packet in codec.encode(None):
        video.append(bytes(packet))
        keys.append(bool(packet.is_keyframe))
    opus = av.CodecContext.create("libopus", "w")
    opus.sample_rate, opus.format, opus.layout, opus.bit_rate = 48000, "s16", "mono", 32000
    audio: list[bytes] = []
    for n in range(500):
        samples = array.array(
            "h", (int(8000 * math.sin(2 * math.pi * 440 * (n * 960 + i) / 48000)) for i in range(960))
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate, frame.pts, frame.time_base = 48000, n * 960, fractions.Fraction(1, 48000)
        audio.extend(bytes(p) for p in opus.encode(frame))
    path.write_bytes(pickle.dumps({"video": video, "keys": keys, "audio": audio}))
    kbps = sum(len(v) for v in video) * 8 * FPS / len(video) / 1000
    print(f"pre-encoded {len(video)} VGA frames ({kbps:.0f} kbit/s, keyframe every {GOP})")
    print(f"pre-encoded {len(audio)} Opus frames")


# --------------------------------------------------------------------------- relay process


async def relay_main(port: int, mode: str) -> None:
    from aiohttp import WSMsgType, web

    stats_extra: dict[str, Any] = {}
    if mode == "sfu":
        from server.media import MediaRouter, OfferReady

        router = MediaRouter(
            connect_timeout=60, estimate_upstream=os.environ.get("RELAY_ESTIMATE", "0") == "1"
        )

        async def ws_handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            room = router.room(request.query["room"])
            pid = request.query["pid"]
            p = await room.join(pid)

            async def pump() -> None:
                async for event in p.events():
                    if isinstance(event, OfferReady):
                        await ws.send_json({"offer": event.sdp})

            pump_task: asyncio.Task[None] | None = None
            try:
                async for msg in ws:
                    if msg.type != WSMsgType.TEXT:
                        break
                    body = json.loads(msg.data)
                    if "offer" in body:
                        async with p.hold_events():
                            await ws.send_json({"answer": await p.accept_offer(body["offer"])})
                        pump_task = asyncio.ensure_future(pump())
                    elif "answer" in body:
                        await p.accept_answer(body["answer"])
            finally:
                await room.leave(pid)
                if pump_task:
                    pump_task.cancel()
            return ws

        def relay_stats() -> dict[str, Any]:
            s = router.stats()
            packets = 0
            for r in router.rooms.values():
                for participant in r.participants.values():
                    for leg in participant.legs:
                        packets += leg.transceiver.sender._RTCRtpSender__packet_count
            return {
                "decoders": s["decoders_created"],
                "encoders": s["encoders_created"],
                "frames_forwarded": s["frames_forwarded"],
                "packets_out": packets,
            }
    else:
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.contrib.media import MediaRelay

        from server.media import hook

        counters_all = hook.CodecCounters()
        pending: dict[str, list[tuple[str, str, asyncio.Future[str]]]] = {}
        pcs: list[Any] = []
        senders: list[Any] = []

        async def pair(room_id: str) -> None:
            (pa, offer_a, fa), (pb, offer_b, fb) = pending.pop(room_id)
            relay = MediaRelay()
            pc_a, pc_b = RTCPeerConnection(), RTCPeerConnection()
            pcs.extend([pc_a, pc_b])
            got: dict[int, list[Any]] = {0: [], 1: []}
            pc_a.on("track", lambda t: got[0].append(t))
            pc_b.on("track", lambda t: got[1].append(t))
            await pc_a.setRemoteDescription(RTCSessionDescription(offer_a, "offer"))
            await pc_b.setRemoteDescription(RTCSessionDescription(offer_b, "offer"))
            for track in got[0]:
                senders.append(pc_b.addTrack(relay.subscribe(track)))
            for track in got[1]:
                senders.append(pc_a.addTrack(relay.subscribe(track)))
            for pc, fut in ((pc_a, fa), (pc_b, fb)):
                await pc.setLocalDescription(await pc.createAnswer())
                fut.set_result(pc.localDescription.sdp)

        async def ws_handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            room_id, pid = request.query["room"], request.query["pid"]
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                body = json.loads(msg.data)
                if "offer" in body:
                    fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
                    pending.setdefault(room_id, []).append((pid, body["offer"], fut))
                    if len(pending[room_id]) == 2:
                        await pair(room_id)
                    await ws.send_json({"answer": await fut})
            return ws

        def relay_stats() -> dict[str, Any]:
            from aiortc import rtcrtpreceiver, rtcrtpsender  # noqa: F401 - counted below by frames only

            packets = sum(s._RTCRtpSender__packet_count for s in senders)
            return {
                "decoders": "n/a (decodes by design)",
                "encoders": "n/a",
                "packets_out": packets,
                "frames_forwarded": None,
                "_": counters_all.decoders,
            }

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({**relay_stats(), **stats_extra})

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


# --------------------------------------------------------------------------- client process


class PacketTrack:  # built lazily as a MediaStreamTrack subclass (aiortc import inside the process)
    pass


def make_track_classes() -> Any:
    import av
    from aiortc.mediastreams import MediaStreamTrack

    class ReplayTrack(MediaStreamTrack):
        def __init__(
            self, kind: str, packets: list[bytes], rate: int, period: float, sent: list[float] | None
        ):
            super().__init__()
            self.kind = kind
            self._packets = packets
            self._rate = rate
            self._period = period
            self._sent = sent
            self.n = 0
            self._start: float | None = None

        async def recv(self) -> Any:
            if self._start is None:
                self._start = time.monotonic()
            due = self._start + self.n * self._period
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            idx = self.n % len(self._packets)
            packet = av.Packet(self._packets[idx])
            packet.pts = int(self.n * self._period * self._rate)
            packet.time_base = fractions.Fraction(1, self._rate)
            if self._sent is not None:
                self._sent.append(time.monotonic())  # frame n was sent at _sent[n]
            self.n += 1
            return packet

    return ReplayTrack


async def run_participant(
    port: int,
    room: str,
    pid: str,
    media: dict[str, Any],
    index: dict[bytes, int],
    window: tuple[float, float],
    result: dict[str, Any],
    stop_at: float,
    loss: float = 0.0,
) -> None:
    import random

    import aiohttp
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from server.media import hook
    from server.media.frames import AudioAssembler, VideoAssembler

    ReplayTrack = make_track_classes()
    pc = RTCPeerConnection()
    sent: list[float] = []
    result["sent_log"] = sent
    video = ReplayTrack("video", media["video"], 90000, 1 / FPS, sent)
    audio = ReplayTrack("audio", media["audio"], 48000, 0.02, None)
    pc.addTrack(audio)
    pc.addTrack(video)
    result["loop"] = len(media["video"])
    received: list[tuple[int, float]] = []
    result["received"] = received
    result["audio_frames"] = 0

    def on_video(data: bytes, ts: int, key: bool, ssrc: int) -> None:
        idx = index.get(data)
        if idx is not None:
            received.append((idx, time.monotonic()))
        else:
            received.append((-1, time.monotonic()))

    def on_audio(data: bytes, ts: int, key: bool, ssrc: int) -> None:
        result["audio_frames"] += 1

    def on_track(track: Any) -> None:
        transceiver = next(t for t in pc.getTransceivers() if t.receiver.track is track)
        if track.kind == "video":
            hook.tap_receiver(transceiver.receiver, VideoAssembler(on_video, time.monotonic), lambda: None)
        else:
            hook.tap_receiver(transceiver.receiver, AudioAssembler(on_audio), lambda: None)

    pc.on("track", on_track)

    rng = random.Random(f"{room}/{pid}")  # noqa: S311 - loss simulation, not security
    lossy: set[int] = set()

    def make_lossy(transport: Any) -> None:
        """Drop ``loss`` of the RTP packets this client sends and receives (RTCP is kept)."""
        if not loss or id(transport) in lossy:
            return
        lossy.add(id(transport))
        send, handle = transport._send_rtp, transport._handle_rtp_data

        async def lossy_send(data: bytes) -> None:
            if not (192 <= data[1] <= 223) and rng.random() < loss:
                return
            await send(data)

        async def lossy_handle(data: bytes, arrival_time_ms: int) -> None:
            if rng.random() < loss:
                return
            await handle(data, arrival_time_ms)

        transport._send_rtp = lossy_send
        transport._handle_rtp_data = lossy_handle

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            for t in pc.getTransceivers():
                make_lossy(t.sender.transport)
            asyncio.ensure_future(pc._RTCPeerConnection__connect())  # type: ignore[attr-defined]

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws?room={room}&pid={pid}") as ws:
            await pc.setLocalDescription(await pc.createOffer())
            await ws.send_json({"offer": pc.localDescription.sdp})

            async def reader() -> None:
                async for msg in ws:
                    body = json.loads(msg.data)
                    if "answer" in body:
                        await pc.setRemoteDescription(RTCSessionDescription(body["answer"], "answer"))
                    elif "offer" in body:
                        await pc.setRemoteDescription(RTCSessionDescription(body["offer"], "offer"))
                        await pc.setLocalDescription(await pc.createAnswer())
                        await ws.send_json({"answer": pc.localDescription.sdp})

            task = asyncio.ensure_future(reader())
            await asyncio.sleep(max(0.0, stop_at - time.monotonic()))
            task.cancel()
    await pc.close()


async def client_main(
    port: int,
    first: int,
    count: int,
    media_path: Path,
    start: float,
    warmup: float,
    duration: float,
    out: Path,
    loss: float = 0.0,
) -> None:
    from server.media import hook

    hook.install()
    media = pickle.loads(media_path.read_bytes())  # noqa: S301,ASYNC240 - our own file, read once at start
    index = {data: i for i, data in enumerate(media["video"])}
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    window = (start + warmup, start + warmup + duration)
    stop_at = window[1] + 1.0
    results: list[dict[str, Any]] = []
    tasks = []
    for s in range(first, first + count):
        pair: list[dict[str, Any]] = [{"session": s, "pid": "a"}, {"session": s, "pid": "b"}]
        results.extend(pair)
        for r in pair:
            tasks.append(run_participant(port, f"s{s}", r["pid"], media, index, window, r, stop_at, loss))
    cpu0 = os.times()
    await asyncio.gather(*tasks)
    cpu1 = os.times()
    # Match what each participant received against what its partner sent inside the window.
    summary = []
    for s in range(first, first + count):
        a, b = [r for r in results if r["session"] == s]
        for receiver, sender in ((a, b), (b, a)):
            summary.append(_match(receiver, sender, window))
    out.write_text(  # noqa: ASYNC240 - the run is over; one small file
        json.dumps({"streams": summary, "client_cpu": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)})
    )


def _match(receiver: dict[str, Any], sender: dict[str, Any], window: tuple[float, float]) -> dict[str, Any]:
    """Frames sent inside the window vs those the partner assembled; latency = arrival - send time."""
    import bisect

    sent: list[float] = sender["sent_log"]
    loop = sender["loop"]
    latencies = []
    got: set[int] = set()
    unknown = 0
    for idx, arrival in receiver["received"]:
        if idx < 0:
            unknown += window[0] <= arrival <= window[1]  # re-encoded (baseline): counted, not timed
            continue
        last = bisect.bisect_right(sent, arrival) - 1  # the newest frame sent before this arrival
        if last < 0:
            continue
        n = last - ((last - idx) % loop)
        if n < 0:
            continue
        if window[0] <= sent[n] <= window[1]:
            got.add(n)
            latencies.append(arrival - sent[n])
    expected = sum(1 for t in sent if window[0] <= t <= window[1])
    return {
        "sent": expected,
        "received": len(got),
        "latencies": latencies,
        "audio_frames": receiver["audio_frames"],
        "unknown": unknown,
    }


# --------------------------------------------------------------------------- orchestration


def proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process, all threads (proc(5): utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_level(
    mode: str, sessions: int, media_path: Path, warmup: float, duration: float, tmp: Path, loss: float = 0.0
) -> dict[str, Any]:
    import urllib.request

    port = free_port()
    relay = subprocess.Popen(  # noqa: S603 - our own script
        [sys.executable, __file__, "relay", "--mode", mode, "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert relay.stdout is not None
    relay.stdout.readline()  # "ready"
    procs = min(sessions, 4)
    start = time.monotonic() + 2.0
    clients = []
    per = [sessions // procs + (1 if i < sessions % procs else 0) for i in range(procs)]
    first = 0
    outs = []
    for i, count in enumerate(per):
        out = tmp / f"{mode}-{sessions}-{i}.json"
        outs.append(out)
        clients.append(
            subprocess.Popen(  # noqa: S603 - our own script
                [
                    sys.executable,
                    __file__,
                    "client",
                    "--port",
                    str(port),
                    "--first",
                    str(first),
                    "--count",
                    str(count),
                    "--media",
                    str(media_path),
                    "--start",
                    repr(start),
                    "--warmup",
                    str(warmup),
                    "--duration",
                    str(duration),
                    "--out",
                    str(out),
                    "--loss",
                    str(loss),
                ]
            )
        )
        first += count
    time.sleep(max(0.0, start + warmup - time.monotonic()))
    cpu0, t0 = proc_cpu(relay.pid), time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:  # noqa: S310 - loopback
        s0 = json.loads(r.read())
    time.sleep(duration)
    cpu1, t1 = proc_cpu(relay.pid), time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats") as r:  # noqa: S310 - loopback
        s1 = json.loads(r.read())
    for c in clients:
        c.wait(timeout=120)
    relay.terminate()
    relay.wait(timeout=30)
    streams: list[dict[str, Any]] = []
    client_cpu = 0.0
    for out in outs:
        data = json.loads(out.read_text())
        streams.extend(data["streams"])
        client_cpu += data["client_cpu"]
    relay_cpu = sum(cpu1) - sum(cpu0)
    relay_sys = cpu1[1] - cpu0[1]
    elapsed = t1 - t0
    video_streams = 2 * sessions
    sent = sum(s["sent"] for s in streams)
    received = sum(s["received"] for s in streams)
    latencies = [x for s in streams for x in s["latencies"]]
    packets = s1["packets_out"] - s0["packets_out"]
    return {
        "mode": mode,
        "sessions": sessions,
        "video_streams": video_streams,
        "relay_cpu_s": round(relay_cpu, 2),
        "relay_sys_share_pct": round(100 * relay_sys / relay_cpu, 1) if relay_cpu else None,
        "relay_cpu_pct_of_core": round(100 * relay_cpu / elapsed, 1),
        "sessions_per_relay_core": round(sessions / (relay_cpu / elapsed), 1) if relay_cpu else None,
        "cpu_ms_per_stream_second": round(1000 * relay_cpu / (video_streams * elapsed), 2),
        "packets_out": packets,
        "cpu_us_per_packet": round(1e6 * relay_cpu / packets, 1) if packets else None,
        "delivered_fps": round(
            (received or sum(s["unknown"] for s in streams)) / max(1, len(streams)) / duration, 1
        ),
        "delivered_pct": round(100 * received / sent, 2) if sent else None,
        "latency_p50_ms": round(1000 * pct(latencies, 0.5), 1),
        "latency_p95_ms": round(1000 * pct(latencies, 0.95), 1),
        "decoders": s1.get("decoders"),
        "encoders": s1.get("encoders"),
        "client_cpu_s": round(client_cpu, 1),
    }


def direct_latency(media_path: Path, seconds: float = 6.0) -> dict[str, float]:
    """The same send-to-assembled timing over a direct aiortc connection: the reference for 'added'."""

    async def main() -> dict[str, float]:
        from aiortc import RTCPeerConnection

        from server.media import hook
        from server.media.frames import VideoAssembler

        hook.install()
        media = pickle.loads(media_path.read_bytes())  # noqa: S301,ASYNC240 - our own file, read once
        index = {data: i for i, data in enumerate(media["video"])}
        ReplayTrack = make_track_classes()
        sent: list[float] = []
        lat: list[float] = []
        loop = len(media["video"])
        a, b = RTCPeerConnection(), RTCPeerConnection()
        a.addTrack(ReplayTrack("video", media["video"], 90000, 1 / FPS, sent))

        def on_video(data: bytes, ts: int, key: bool, ssrc: int) -> None:
            idx = index.get(data)
            if idx is not None and sent:
                last = len(sent) - 1
                n = last - ((last - idx) % loop)
                if n >= 0:
                    lat.append(time.monotonic() - sent[n])

        @b.on("track")
        def on_track(track: Any) -> None:
            t = next(t for t in b.getTransceivers() if t.receiver.track is track)
            hook.tap_receiver(t.receiver, VideoAssembler(on_video, time.monotonic), lambda: None)

        await a.setLocalDescription(await a.createOffer())
        await b.setRemoteDescription(a.localDescription)
        await b.setLocalDescription(await b.createAnswer())
        await a.setRemoteDescription(b.localDescription)
        await asyncio.sleep(seconds)
        await a.close()
        await b.close()
        lat = lat[len(lat) // 4 :]
        return {"p50_ms": round(1000 * pct(lat, 0.5), 1), "p95_ms": round(1000 * pct(lat, 0.95), 1)}

    return asyncio.run(main())


def netem_level(
    loss_pct: float, sessions: int, media_path: Path, warmup: float, duration: float
) -> dict[str, Any]:
    """One relay level inside a fresh network namespace whose loopback drops ``loss_pct`` % of packets."""
    ns = f"duetbench{os.getpid()}"
    ip = ["ip", "netns", "exec", ns]
    subprocess.run(["ip", "netns", "add", ns], check=True)  # noqa: S603,S607 - fixed arguments
    try:
        subprocess.run([*ip, "ip", "link", "set", "lo", "up"], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603 - fixed arguments
            [*ip, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "loss", f"{loss_pct}%"],
            check=True,
        )
        done = subprocess.run(  # noqa: S603 - our own script
            [
                *ip,
                sys.executable,
                __file__,
                "level",
                "--mode",
                "sfu",
                "--count",
                str(sessions),
                "--media",
                str(media_path),
                "--warmup",
                str(warmup),
                "--duration",
                str(duration),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        row["netem_loss_pct"] = loss_pct
        return row
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)  # noqa: S603,S607 - fixed arguments


def netem_available() -> bool:
    """True when this kernel has sch_netem (a throwaway namespace is made and removed to find out)."""
    ns = f"duetprobe{os.getpid()}"
    if subprocess.run(["ip", "netns", "add", ns], check=False, capture_output=True).returncode:  # noqa: S603,S607
        return False
    try:
        netem = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "loss", "1%"]
        probe = subprocess.run(["ip", "netns", "exec", ns, *netem], check=False, capture_output=True)  # noqa: S603,S607
        return probe.returncode == 0
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)  # noqa: S603,S607


MD_START = "<!-- relay-bench:start (written by bench/relay_bench.py) -->"
MD_END = "<!-- relay-bench:end -->"


def _loss(row: dict[str, Any]) -> str:
    if "netem_loss_pct" in row:
        return f"{row['netem_loss_pct']} % (netem)"
    if "client_side_loss_pct" in row:
        return f"{row['client_side_loss_pct']} % (client-side)"
    return "0"


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """Replace the generated table in docs/benchmarks.md (the text around it is written by hand)."""
    rows = results["levels"]
    lines = [
        MD_START,
        "",
        f"Run: {results.get('when', '')}, {os.cpu_count()} CPUs (shared with other work: numbers are noisy). "
        f"Direct aiortc connection, same timing method: p50 {results['direct']['p50_ms']} ms, "
        f"p95 {results['direct']['p95_ms']} ms.",
        "",
        "| path | sessions | video streams | loss | relay CPU (% of a core) | CPU ms per stream-second "
        "| CPU µs per packet out | sessions per relay core | delivered fps | delivered % "
        "| latency p50 / p95 ms | decoders / encoders |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        baseline = r["mode"] != "sfu"
        sustained = baseline or (r["delivered_pct"] or 0) >= 99
        per_core = (
            r.get("sessions_per_relay_core")
            if sustained
            else f"({r.get('sessions_per_relay_core')}: not sustained)"
        )
        delivered = "n/a (re-encoded)" if baseline else r["delivered_pct"]
        latency = "n/a" if baseline else f"{r['latency_p50_ms']} / {r['latency_p95_ms']}"
        codecs = "decodes + encodes" if baseline else f"{r['decoders']} / {r['encoders']}"
        lines.append(
            f"| {'baseline (decode+re-encode)' if baseline else 'relay (forward encoded)'} "
            f"| {r['sessions']} | {r['video_streams']} | {_loss(r)} "
            f"| {r['relay_cpu_pct_of_core']} | {r['cpu_ms_per_stream_second']} | {r['cpu_us_per_packet']} "
            f"| {per_core} | {r['delivered_fps']} | {delivered} | {latency} | {codecs} |"
        )
    base = [r for r in rows if r["mode"] == "transcode" and r["sessions"] == 1]
    relay = [r for r in rows if r["mode"] == "sfu" and r["sessions"] == 1 and _loss(r) == "0"]
    if base and relay:
        ratio = base[0]["cpu_ms_per_stream_second"] / relay[0]["cpu_ms_per_stream_second"]
        lines += [
            "",
            f"CPU per forwarded VGA stream-second, baseline / relay at 1 session: **{ratio:.1f}x**.",
        ]
    lines += ["", MD_END]
    block = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n## Media relay\n\n"
    if MD_START in text and MD_END in text:
        head, rest = text.split(MD_START, 1)
        text = head + block + rest.split(MD_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "role", nargs="?", default="bench", choices=["bench", "relay", "client", "level", "markdown"]
    )
    parser.add_argument("--mode", default="sfu")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--media", type=Path)
    parser.add_argument("--start", type=float, default=0.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--sessions", default="1,2,5,10,20")
    parser.add_argument("--baseline", default="1,2")
    parser.add_argument(
        "--netem", default="1,5", help="loss percentages to run inside a network namespace, e.g. 1,5"
    )
    parser.add_argument("--netem-sessions", type=int, default=2)
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--loss", type=float, default=0.0, help="client-side RTP loss (fraction)")
    args = parser.parse_args()
    if args.role == "relay":
        if os.environ.get("RELAY_PROFILE"):
            import cProfile
            import signal

            profiler = cProfile.Profile(time.process_time)
            profiler.enable()

            def dump(*_: Any) -> None:
                profiler.disable()
                profiler.dump_stats(os.environ["RELAY_PROFILE"])
                os._exit(0)

            signal.signal(signal.SIGTERM, dump)
        asyncio.run(relay_main(args.port, args.mode))
        return
    if args.role == "markdown":  # rewrite the table from a results file without re-running
        write_markdown(
            json.loads((args.out or ROOT / "bench" / "relay_results.json").read_text()), args.markdown
        )
        return
    if args.role == "level":
        with tempfile.TemporaryDirectory() as tmpdir:
            print(
                json.dumps(
                    run_level(args.mode, args.count, args.media, args.warmup, args.duration, Path(tmpdir))
                )
            )
        return
    if args.role == "client":
        os.nice(5)  # the relay under test gets the CPU first; the load generator takes what is left
        asyncio.run(
            client_main(
                args.port,
                args.first,
                args.count,
                args.media,
                args.start,
                args.warmup,
                args.duration,
                args.out,
                args.loss,
            )
        )
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        media_path = tmp / "media.pkl"
        pre_encode(media_path)
        results: dict[str, Any] = {"direct": direct_latency(media_path), "levels": []}
        print("direct connection latency:", results["direct"], flush=True)
        plan = [("transcode", int(n)) for n in args.baseline.split(",") if n] + [
            ("sfu", int(n)) for n in args.sessions.split(",") if n
        ]
        for mode, n in plan:
            # tens of DTLS handshakes at once take a while on 2 shared cores: let them settle first
            row = run_level(mode, n, media_path, max(args.warmup, 3 + 0.4 * n), args.duration, tmp)
            results["levels"].append(row)
            print(json.dumps(row), flush=True)
        for loss in [float(x) for x in args.netem.split(",") if x]:
            if netem_available():
                row = netem_level(loss, args.netem_sessions, media_path, args.warmup, args.duration)
            else:
                # No sch_netem in this kernel: drop packets in the clients instead (both directions of
                # every client's link, RTP only), which exercises the same NACK/PLI recovery.
                row = run_level(
                    "sfu", args.netem_sessions, media_path, args.warmup, args.duration, tmp, loss / 100
                )
                row["client_side_loss_pct"] = loss
            results["levels"].append(row)
            print(json.dumps(row), flush=True)
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = args.out or ROOT / "bench" / "relay_results.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out}")
    if args.markdown:
        write_markdown(results, args.markdown)
        print(f"updated {args.markdown}")


if __name__ == "__main__":
    main()
