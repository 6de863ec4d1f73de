"""The device check's network probe, as web/static/check.js runs it, from an aiortc client.

Used in-process by the API tests and as a program (``python -m tests.support.probe_client BASE TOKEN``)
inside a shaped network namespace, where it opens the emailed check link, probes, sends the results with
a fixed declaration and good camera and microphone figures (only the network is under test), and prints
the server's verdict as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from aiohttp import ClientSession, CookieJar
from aiortc import RTCPeerConnection, RTCSessionDescription

DECLARATION = {"device": "family laptop", "shared_with": "Kit's older brother", "safeguarding_measures": "own account"}
BLOCK = 16 * 1024


async def probe(http: ClientSession, headers: dict[str, str], booking_id: int, *, drop_every: int = 0,
                blocks: int = 0, allowed_s: float = 15.0) -> dict[str, Any]:
    """RTT, jitter and loss from 20 timed messages; with ``blocks``, throughput from echoed 16 KiB blocks.

    ``drop_every`` ignores that share of replies (a lossy link without a shaped network).
    """
    pc = RTCPeerConnection()
    channel = pc.createDataChannel("echo")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    await pc.setLocalDescription(await pc.createOffer())
    answer = await http.post(f"/s/{booking_id}/check/api/offer", json={"sdp": pc.localDescription.sdp},
                             headers=headers)
    if answer.status != 200:
        raise RuntimeError(f"offer refused: {answer.status} {await answer.text()}")
    await pc.setRemoteDescription(RTCSessionDescription((await answer.json())["sdp"], "answer"))
    await asyncio.wait_for(opened.wait(), 10)
    loop = asyncio.get_running_loop()
    replies: dict[str, float] = {}
    echoed = 0
    all_echoed = asyncio.Event()
    seen = 0

    def on_message(message: str | bytes) -> None:
        nonlocal seen, echoed
        if isinstance(message, str):
            seen += 1
            if not drop_every or seen % drop_every:
                replies[message] = loop.time()
        else:
            echoed += len(message)
            if echoed >= blocks * BLOCK:
                all_echoed.set()

    channel.on("message", on_message)
    sent = {}
    for i in range(20):
        sent[f"p{i}"] = loop.time()
        channel.send(f"p{i}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    rtts = [(replies[k] - t) * 1000 for k, t in sent.items() if k in replies]
    result: dict[str, Any] = {
        "rtt_ms": sum(rtts) / len(rtts) if rtts else 60_000.0,
        "jitter_ms": sum(abs(b - a) for a, b in zip(rtts, rtts[1:], strict=False)) / max(1, len(rtts) - 1),
        "loss": 1 - len(rtts) / len(sent),
    }
    if blocks:
        start = loop.time()
        for _ in range(blocks):
            channel.send(bytes(BLOCK))
        try:
            await asyncio.wait_for(all_echoed.wait(), allowed_s)
        except TimeoutError:
            pass  # as the page does: what came back in the time allowed is the measure
        kbps = echoed * 8 / 1000 / (loop.time() - start)
        result |= {"up_kbps": kbps, "down_kbps": kbps}
    await pc.close()
    return result


def results(network: dict[str, Any], up_kbps: float = 4000) -> dict[str, Any]:
    """A results body: good device figures, the given network figures."""
    return {"webrtc": True, "camera_width": 640, "camera_height": 480, "camera_fps": 30, "mic_peak_dbfs": -10,
            "mic_floor_dbfs": -70, "speakers_heard": True, "up_kbps": up_kbps, "down_kbps": up_kbps,
            "ice_path": "host", **network, **DECLARATION}


async def open_check_link(http: ClientSession, base: str, token: str) -> tuple[int, dict[str, str]]:
    """Follow the emailed link like a browser: the booking id and the headers state changes need."""
    opened = await http.get(f"/l/{token}", allow_redirects=False)
    location = opened.headers["Location"]  # /s/{booking_id}/check
    booking_id = int(location.split("/")[2])
    ctx = await (await http.get(f"/s/{booking_id}/api/context")).json()
    return booking_id, {"X-CSRF-Token": ctx["csrf_token"], "Origin": base}


async def main(base: str, token: str) -> None:
    async with ClientSession(base_url=base, cookie_jar=CookieJar(unsafe=True)) as http:
        booking_id, headers = await open_check_link(http, base, token)
        network = await probe(http, headers, booking_id, blocks=32)
        r = await http.post(f"/s/{booking_id}/check/api/results", json=results(network, network["up_kbps"]),
                            headers=headers)
        print(json.dumps({"status": r.status, "measured": network, **await r.json()}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
