"""Fixtures for the relay tests: a router and real aiortc peers, all closed afterwards."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).parents[2]))

from peers import Peer  # noqa: E402

from server.media import MediaRouter  # noqa: E402


@pytest.fixture
async def router() -> AsyncIterator[MediaRouter]:
    router = MediaRouter()
    yield router
    await router.close()


@pytest.fixture
async def peers() -> AsyncIterator[Callable[..., Peer]]:
    made: list[Peer] = []

    def make(name: str, **kwargs: object) -> Peer:
        peer = Peer(name, **kwargs)  # type: ignore[arg-type]
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()
