"""Relay benchmark: the packet relay and the frame relay it replaced, side by side under the same load.

Usage: .venv/bin/python -m bench.relay_bench [--quick] [--duration 10] [--out bench/relay_results.json]

Processes: one relay (``bench/relay_server.py``: WebSocket signalling on 127.0.0.1 + ``MediaRouter``, in
process or on media worker processes), and load-generator processes (``bench/loadgen.py``), each running
whole 1:1 sessions (both participants) at the packet level. The frame relay is the ``server`` package of
``FRAME_RELAY_COMMIT`` (the last commit before the packet path), extracted with ``git archive`` and run by
the same server script. Relay CPU is user+sys of the relay process and its media workers from
/proc/<pid>/stat over the measuring window, divided by the RTP packets the relay sent in it.
"""

from __future__ import annotations

import argparse
import fractions
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import time
import urllib.request
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


# --------------------------------------------------------------------------- orchestration

FRAME_RELAY_COMMIT = "d9e56ed"  # main before the packet path: the frame relay (reassemble + repacketise)


def proc_cpu(pid: int) -> float:
    """User+system CPU seconds of a process, all threads (proc(5): utime, stime); 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


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


def relay_stats(port: int, gc: bool = False) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/stats" + ("?gc=1" if gc else "")
    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 - loopback
        result: dict[str, Any] = json.loads(r.read())
        return result


def start_relay(mode: str, port: int, tmp: Path, *, record: bool = False, workers: int = 0,
                capacity: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    if mode == "frame":
        old = tmp / "frame-relay"
        if not old.exists():
            old.mkdir()
            archive = subprocess.run(["git", "archive", FRAME_RELAY_COMMIT, "server"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        env["PYTHONPATH"] = str(old)
    else:
        env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, str(ROOT / "bench" / "relay_server.py"), "--port", str(port)]
    if record:
        cmd.append("--record")
    if workers:
        cmd += ["--workers", str(workers)]
    if capacity:
        cmd += ["--capacity", str(capacity)]
    relay = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=str(tmp))  # noqa: S603
    assert relay.stdout is not None
    relay.stdout.readline()  # "ready"
    return relay


def run_level(mode: str, sessions: int, media_path: Path, warmup: float, duration: float, tmp: Path, *,
              record: bool = False, workers: int = 0, capacity: int | None = None,
              procs: int = 4) -> dict[str, Any]:
    port = free_port()
    relay = start_relay(mode, port, tmp, record=record, workers=workers, capacity=capacity)
    procs = max(1, min(sessions, procs))
    start = time.monotonic() + 1.5
    per = [sessions // procs + (1 if i < sessions % procs else 0) for i in range(procs)]
    clients, outs, first = [], [], 0
    for i, count in enumerate(per):
        out = tmp / f"{mode}-{sessions}-{i}.json"
        outs.append(out)
        clients.append(subprocess.Popen([  # noqa: S603 - our own script
            sys.executable, "-m", "bench.loadgen", "--port", str(port), "--first", str(first), "--count", str(count),
            "--media", str(media_path), "--start", repr(start), "--warmup", str(warmup), "--duration", str(duration),
            "--out", str(out)], cwd=ROOT))
        first += count
    time.sleep(max(0.0, start + warmup - time.monotonic()))
    # the relay's cost: its media workers when it has them (the web process only proxies), else the process
    pids = relay_stats(port).get("worker_pids") or [relay.pid]
    web0 = proc_cpu(relay.pid) if workers else 0.0
    cpu0, t0, s0 = sum(proc_cpu(p) for p in pids), time.monotonic(), relay_stats(port)
    time.sleep(duration)
    cpu1, t1 = sum(proc_cpu(p) for p in pids), time.monotonic()
    web1 = proc_cpu(relay.pid) if workers else 0.0
    s1 = relay_stats(port)
    for c in clients:
        c.wait(timeout=180)
    relay.terminate()
    relay.wait(timeout=30)
    streams: list[dict[str, Any]] = []
    client_cpu = client_packets = 0.0
    for out in outs:
        data = json.loads(out.read_text())
        streams.extend(data["streams"])
        client_cpu += data["window_cpu"]
        client_packets += data["window_packets"]
    relay_cpu, elapsed = cpu1 - cpu0, t1 - t0
    sent = sum(s["sent"] for s in streams)
    received = sum(s["received"] for s in streams)
    complete = sum(s["complete"] for s in streams)
    latencies = [x for s in streams for x in s["latencies"]]
    packets = s1["packets_out"] - s0["packets_out"]
    errors = sorted({s["error"] for s in streams if s["error"]})
    return {
        "mode": mode, "sessions": sessions, "workers": workers, "record": record, "capacity": capacity,
        "relay_cpu_pct": round(100 * relay_cpu / elapsed, 1),
        "web_cpu_pct": round(100 * (web1 - web0) / elapsed, 1) if workers else None,
        "packets_out": packets,
        "packets_per_s": round(packets / elapsed),
        "cpu_us_per_packet": round(1e6 * relay_cpu / packets, 1) if packets else None,
        "sessions_per_core": round(sessions / (relay_cpu / elapsed), 1) if relay_cpu else None,
        "delivered_pct": round(100 * received / sent, 2) if sent else None,
        "complete_in_order_pct": round(100 * complete / sent, 2) if sent else None,
        "out_of_order": sum(s["out_of_order"] for s in streams),
        "reached_media": sum(1 for s in streams if s["reached_media"]) // 2,
        "latency_p50_ms": round(1000 * pct(latencies, 0.5), 2),
        "latency_p95_ms": round(1000 * pct(latencies, 0.95), 2),
        "client_us_per_packet": round(1e6 * client_cpu / client_packets, 1) if client_packets else None,
        "keyframe_requests": sum(s["keyframe_requests"] for s in streams),
        "errors": errors[:3],
        "refused": sum(1 for s in streams if s["error"] and "capacity" in str(s["error"])) // 2,
        "decoders": s1.get("decoders"), "encoders": s1.get("encoders"),
    }


def churn(media_path: Path, tmp: Path, cycles: int = 100) -> dict[str, Any]:
    """``cycles`` sessions join, exchange media briefly and leave, one after another: what stays behind?"""
    port = free_port()
    relay = start_relay("packet", port, tmp)
    before = relay_stats(port, gc=True)
    for i in range(0, cycles, 10):
        out = tmp / f"churn-{i}.json"
        subprocess.run([  # noqa: S603 - our own script
            sys.executable, "-m", "bench.loadgen", "--port", str(port), "--first", str(i), "--count", "10",
            "--media", str(media_path), "--start", repr(time.monotonic() + 0.5), "--warmup", "3",
            "--duration", "1", "--out", str(out)], cwd=ROOT, check=True)
    reached = sum(s["reached_media"] for i in range(0, cycles, 10)
                  for s in json.loads((tmp / f"churn-{i}.json").read_text())["streams"]) // 2
    time.sleep(1.0)
    after = relay_stats(port, gc=True)
    time.sleep(3.0)  # the bench relay lets an empty room go after 2 s (the product: 60 s)
    later = relay_stats(port, gc=True)
    relay.terminate()
    relay.wait(timeout=30)
    return {"cycles": cycles, "reached_media": reached, "before": before, "after": after, "later": later}


MD_START = "<!-- relay-bench:start (written by bench/relay_bench.py) -->"
MD_END = "<!-- relay-bench:end -->"


def write_markdown(results: dict[str, Any], path: Path) -> None:
    """Replace the generated tables in docs/benchmarks.md (the text around them is written by hand)."""
    direct = results["direct"]
    lines = [
        MD_START, "",
        f"Run: {results.get('when', '')}, {os.cpu_count()} CPUs (shared with other work: numbers are noisy; "
        "compare rows of one run). Direct connection between two load clients, same timing method: "
        f"p50 {direct['p50_ms']} ms, p95 {direct['p95_ms']} ms.", "",
        "| relay | sessions | workers | recording | relay CPU (% of a core) | packets out/s | CPU µs per packet out "
        "| sessions per relay core | frames delivered % | complete, in order % | latency p50 / p95 ms "
        "| sessions reaching media | load gen µs per packet | decoders / encoders |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["levels"]:
        lines.append(
            f"| {r['mode']} | {r['sessions']} | {r['workers'] or 'in-process'} | {'yes' if r['record'] else 'no'} "
            f"| {r['relay_cpu_pct']} | {r['packets_per_s']} | {r['cpu_us_per_packet']} | {r['sessions_per_core']} "
            f"| {r['delivered_pct']} | {r['complete_in_order_pct']} | {r['latency_p50_ms']} / {r['latency_p95_ms']} "
            f"| {r['reached_media']} / {r['sessions']}{' (' + str(r['refused']) + ' refused)' if r['refused'] else ''} "
            f"| {r['client_us_per_packet']} | {r['decoders']} / {r['encoders']} |")
    pairs = {(r["mode"], r["sessions"]): r for r in results["levels"] if not r["record"] and not r["workers"]}
    ratios = []
    for mode, n in pairs:
        frame, packet = pairs[(mode, n)], pairs.get(("packet", n))
        if mode == "frame" and packet and packet["cpu_us_per_packet"] and frame["cpu_us_per_packet"]:
            ratios.append(f"{n} sessions: **{frame['cpu_us_per_packet'] / packet['cpu_us_per_packet']:.1f}x**")
    if ratios:
        lines += ["", "CPU per forwarded packet, frame relay / packet relay, same run: " + ", ".join(ratios) + "."]
    rec = [r for r in results["levels"] if r["record"]]
    plain = {(r["sessions"], r["workers"]): r for r in results["levels"]
             if r["mode"] == "packet" and not r["record"] and not r.get("capacity")}
    for r in rec:
        base = plain.get((r["sessions"], r["workers"]))
        if base and base["cpu_us_per_packet"] and r["cpu_us_per_packet"]:
            extra = r["cpu_us_per_packet"] / base["cpu_us_per_packet"] - 1
            where = f"{r['workers']} worker" if r["workers"] else "in process (assembled in the same process)"
            lines += ["", f"Recording every room at {r['sessions']} sessions, {where}: {100 * extra:+.1f} % relay "
                      f"CPU per packet ({r['cpu_us_per_packet']} vs {base['cpu_us_per_packet']} µs)."]
    c = results.get("churn")
    if c:
        keys = ("participants", "rooms", "live_peer_connections", "tasks", "threads", "rss_mb")
        lines += ["", f"Churn: {c['cycles']} sessions joined, reached media ({c['reached_media']}) and left, one after "
                  "another. Relay before / right after / 3 s later: " + "; ".join(
                      f"{k} {c['before'][k]} / {c['after'][k]} / {c['later'][k]}" for k in keys) + "."]
    lines += ["", MD_END]
    block = "\n".join(lines)
    text = path.read_text() if path.exists() else "# Benchmarks\n\n## Media relay\n\n"
    if MD_START in text and MD_END in text:
        head, rest = text.split(MD_START, 1)
        text = head + block + rest.split(MD_END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def plan(quick: bool) -> list[dict[str, Any]]:
    """What one run measures: each frame relay level beside the packet relay level it is compared with."""
    if quick:
        return [{"mode": "frame", "sessions": 5}, {"mode": "packet", "sessions": 5},
                {"mode": "packet", "sessions": 5, "record": True}]
    return [
        {"mode": "frame", "sessions": 10}, {"mode": "packet", "sessions": 10},
        {"mode": "frame", "sessions": 20}, {"mode": "packet", "sessions": 20},
        {"mode": "packet", "sessions": 20, "record": True},
        {"mode": "packet", "sessions": 20, "workers": 1},
        {"mode": "packet", "sessions": 20, "workers": 1, "record": True},
        {"mode": "packet", "sessions": 40},
        {"mode": "packet", "sessions": 40, "workers": 1},
        {"mode": "packet", "sessions": 40, "workers": 2},
        {"mode": "packet", "sessions": 60, "workers": 1, "capacity": 80},  # overload: 20 sessions past capacity
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "markdown"])
    parser.add_argument("--quick", action="store_true", help="three small levels, for a smoke run")
    parser.add_argument("--only", default="", help="comma-separated level numbers of the plan to run")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--no-churn", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "relay_results.json")
    parser.add_argument("--markdown", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    if args.role == "markdown":  # rewrite the tables from a results file without re-running
        write_markdown(json.loads(args.out.read_text()), args.markdown)
        return
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        media_path = tmp / "media.pkl"
        pre_encode(media_path)
        direct = subprocess.run([sys.executable, "-m", "bench.loadgen", "--direct", "--media", str(media_path),  # noqa: S603
                                 "--duration", "6"], cwd=ROOT, check=True, capture_output=True, text=True)
        results: dict[str, Any] = {"direct": json.loads(direct.stdout.strip().splitlines()[-1]), "levels": []}
        print("direct connection latency:", results["direct"], flush=True)
        levels = plan(args.quick)
        if args.only:
            levels = [levels[int(i)] for i in args.only.split(",")]
        for level in levels:
            n = level["sessions"]
            row = run_level(level["mode"], n, media_path, args.warmup + 0.08 * n, args.duration, tmp,
                            record=level.get("record", False), workers=level.get("workers", 0),
                            capacity=level.get("capacity"))
            results["levels"].append(row)
            print(json.dumps(row), flush=True)
        if not args.no_churn and not args.quick:
            results["churn"] = churn(media_path, tmp)
            print(json.dumps(results["churn"]), flush=True)
    results["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    write_markdown(results, args.markdown)
    print(f"updated {args.markdown}")


if __name__ == "__main__":
    main()
