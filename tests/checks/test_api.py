"""The check endpoints: an aiortc client probes the relay like the page does; abuse is refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiohttp import ClientSession, CookieJar, web
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.clock import FakeClock
from server.links.models import LinkPurpose
from server.services import Services
from server.web.keys import SERVICES
from tests.support.org import Org, issue_link, sign_in
from tests.support.probe_client import open_check_link, probe, results


async def _holder(live_server: str, services: Services, sm: async_sessionmaker[AsyncSession],
                  org: Org) -> tuple[ClientSession, dict[str, str]]:
    http = ClientSession(base_url=live_server, cookie_jar=CookieJar(unsafe=True))
    token = await issue_link(services, sm, org.booking_id, f"guardian:{org.guardian_id}", LinkPurpose.CHECK)
    booking_id, headers = await open_check_link(http, live_server, token)
    assert booking_id == org.booking_id
    return http, headers


async def test_a_probe_through_the_relay_gives_a_stored_verdict_the_practitioner_sees(
    live_server: str, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession],
    clock: FakeClock,
) -> None:
    http, headers = await _holder(live_server, services, sessionmaker, org)
    async with http:
        network = await probe(http, headers, org.booking_id)
        assert network["loss"] == 0 and network["rtt_ms"] < 200
        r = await http.post(f"/s/{org.booking_id}/check/api/results", json=results(network), headers=headers)
        assert r.status == 201 and (await r.json())["verdict"] == "video ready"
        lossy = await probe(http, headers, org.booking_id, drop_every=12)  # a degraded link (see docs)
        r = await http.post(f"/s/{org.booking_id}/check/api/results", json=results(lossy, 300), headers=headers)
        body = await r.json()
        assert body["verdict"] == "audio only" and any("lost" in x for x in body["reasons"])
    async with ClientSession(base_url=live_server, cookie_jar=CookieJar(unsafe=True)) as tutor:
        await sign_in(tutor, org.email("tutor"))  # type: ignore[arg-type]
        checks = await (await tutor.get(f"/api/v1/bookings/{org.booking_id}/checks")).json()
        assert [c["verdict"] for c in checks] == ["audio only", "video ready"]
        assert checks[0]["days_ago"] == 0
        assert checks[0]["device"] == "family laptop" and checks[0]["shared_with"] == "Kit's older brother"
    async with ClientSession(base_url=live_server, cookie_jar=CookieJar(unsafe=True)) as other:
        await sign_in(other, org.email("tutor2"))  # type: ignore[arg-type]
        assert (await other.get(f"/api/v1/bookings/{org.booking_id}/checks")).status == 404


async def test_abuse_is_refused_with_clear_errors(
    live_server: str, org: Org, services: Services, sessionmaker: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    http, headers = await _holder(live_server, services, sessionmaker, org)
    async with http:
        session = await http.get(f"/s/{org.booking_id}")  # the live session's page: a page, in words
        assert session.status == 403 and "open the join link in your email" in await session.text()
        big = await http.post(f"/s/{org.booking_id}/check/api/offer", json={"sdp": "v=0" + "x" * 30_000},
                              headers=headers)
        assert big.status == 422 and "sdp" in (await big.json())["detail"]
        media = await http.post(f"/s/{org.booking_id}/check/api/offer", json={"sdp": "v=0\r\nm=video 9 x"},
                                headers=headers)
        assert media.status == 422 and "data channel only" in (await media.json())["detail"]
        for _ in range(6):
            r = await http.post(f"/s/{org.booking_id}/check/api/results", json=results({"rtt_ms": 20, "jitter_ms": 1,
                                                                                       "loss": 0}), headers=headers)
            assert r.status == 201
        many = await http.post(f"/s/{org.booking_id}/check/api/results", json=results({"rtt_ms": 20,
                                                                                      "jitter_ms": 1, "loss": 0}),
                               headers=headers)
        assert many.status == 429 and "many times" in (await many.json())["detail"]
        clock.advance(timedelta(days=2))  # the link ended with the booking
        expired = await http.post(f"/s/{org.booking_id}/check/api/results", json=results({}), headers=headers)
        assert expired.status in (401, 410)


async def test_the_video_loopback_returns_the_clients_own_video_relayed_not_decoded(
    live_server: str, app: web.Application, org: Org, services: Services,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    http, headers = await _holder(live_server, services, sessionmaker, org)
    pc = RTCPeerConnection()
    frames: list[object] = []
    readers: list[asyncio.Task[None]] = []

    async def read(track: MediaStreamTrack) -> None:
        while True:
            frames.append(await track.recv())

    pc.on("track", lambda track: readers.append(asyncio.ensure_future(read(track))))
    async with http:
        audio = RTCPeerConnection()
        audio.addTransceiver("audio", direction="sendonly")
        await audio.setLocalDescription(await audio.createOffer())
        refused = await http.post(f"/s/{org.booking_id}/check/api/loopback",
                                  json={"sdp": audio.localDescription.sdp}, headers=headers)
        assert refused.status == 422 and "exactly one video track" in (await refused.json())["detail"]
        await audio.close()

        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        started = await http.post(f"/s/{org.booking_id}/check/api/loopback", json={"sdp": pc.localDescription.sdp},
                                  headers=headers)
        assert started.status == 200, await started.text()
        body = await started.json()
        await pc.setRemoteDescription(RTCSessionDescription(body["answer"], "answer"))
        await pc.setRemoteDescription(RTCSessionDescription(body["offer"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        stranger = await http.post(f"/s/{org.booking_id}/check/api/loopback/not-a-probe/answer",
                                   json={"sdp": pc.localDescription.sdp}, headers=headers)
        assert stranger.status == 404 and "video test has ended" in (await stranger.json())["detail"]
        answered = await http.post(f"/s/{org.booking_id}/check/api/loopback/{body['probe']}/answer",
                                   json={"sdp": pc.localDescription.sdp}, headers=headers)
        assert answered.status == 204, await answered.text()
        for _ in range(200):
            if len(frames) >= 10:
                break
            await asyncio.sleep(0.05)
    for task in readers:
        task.cancel()
    await pc.close()
    assert len(frames) >= 10  # our own video came back
    assert app[SERVICES].media.stats()["decoders_created"] == 0  # relayed, never decoded on the server
