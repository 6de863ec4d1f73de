"""Device-check probes hold a peer connection each on the relay: they are counted while they run, per link
and in all, and refused past the limit with words a family understands."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiortc import RTCPeerConnection

from server.checks.probes import Probes
from server.clock import SystemClock
from server.errors import RateLimited
from server.media import MediaRouter


@pytest.fixture
async def router() -> AsyncIterator[MediaRouter]:
    made = MediaRouter()
    yield made
    await made.close()


async def _offer(peers: list[RTCPeerConnection]) -> str:
    pc = RTCPeerConnection()
    peers.append(pc)
    pc.createDataChannel("echo")
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


async def test_probes_are_counted_per_link_and_in_all_then_released(router: MediaRouter) -> None:
    probes = Probes(router, SystemClock(), per_link=2, in_flight=3)
    peers: list[RTCPeerConnection] = []
    try:
        for _ in range(2):
            assert "a=fingerprint" in await probes.network(1, await _offer(peers))
        with pytest.raises(RateLimited) as one_link:
            await probes.network(1, await _offer(peers))
        assert "already running from this link" in one_link.value.detail
        await probes.network(2, await _offer(peers))
        with pytest.raises(RateLimited) as everyone:
            await probes.network(3, await _offer(peers))
        assert "many checks just now" in everyone.value.detail
        assert (probes.running(1), probes.running(2), probes.running()) == (2, 1, 3)
        assert len([r for r in router.rooms if r.startswith("check-")]) == 3
    finally:
        await probes.close()
        for pc in peers:
            await pc.close()
    assert probes.running() == 0 and not [r for r in router.rooms if r.startswith("check-")]
