"""The device check's WebRTC probes against the real relay, each in a room of its own.

- the network probe is a data channel only (``echo``): the relay echoes each message back, so round-trip
  time, jitter, loss and throughput are measured over WebRTC to the real media server;
- the video loopback takes one VP8 video track and the relay sends it straight back (relayed, never
  decoded), so the page reads the frames and bitrate it receives from getStats. The browser's offer is
  answered at once together with the relay's offer of the returning track; the browser answers that.

Either way the server never sends more than it received, and each probe's room closes after
``PROBE_SECONDS``. Probes hold a peer connection each, so they are counted while they run: at most
``PER_LINK`` at once for one link and ``IN_FLIGHT`` in all (the stored check runs are limited per hour by
``CheckService.allow_run`` as well).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

from server.clock import Clock
from server.errors import DuetError, InvalidInput, NotFound, RateLimited, Unavailable
from server.media import MediaRouter, OfferReady, Participant, Room

PROBE_SECONDS = 60.0
OFFER_WAIT_SECONDS = 5.0
PER_LINK = 2  # a network probe and a loopback, as the check page runs them
IN_FLIGHT = 40  # all links together: each probe is a peer connection on the relay


@dataclass(frozen=True)
class Loopback:
    probe: str  # names this loopback in the answer that follows
    answer: str  # the relay's answer to the browser's offer
    offer: str  # the relay's offer of the returning video


class Probes:
    """Opens probe rooms on the media router and closes each one ``PROBE_SECONDS`` later."""

    def __init__(self, router: MediaRouter, media_clock: Clock, *, probe_seconds: float = PROBE_SECONDS,
                 per_link: int = PER_LINK, in_flight: int = IN_FLIGHT) -> None:
        self._router = router
        self._clock = media_clock  # probe lifetimes follow real time, like the media they carry
        self.probe_seconds = probe_seconds
        self._per_link = per_link
        self._in_flight = in_flight
        self._running: dict[asyncio.Task[None], int] = {}  # task -> link id
        self._loopbacks: dict[str, tuple[int, Participant]] = {}  # probe -> (link id, participant)

    def running(self, link_id: int | None = None) -> int:
        """Probes open now (for one link, or in all)."""
        return sum(1 for owner in self._running.values() if link_id is None or owner == link_id)

    def _admit(self, link_id: int) -> None:
        if self.running(link_id) >= self._per_link:
            raise RateLimited("A check is already running from this link. Let it finish, or wait a minute and "
                              "start again.", retry_after=int(self.probe_seconds))
        if self.running() >= self._in_flight:
            raise RateLimited("The media server is running many checks just now. Try again in a minute.",
                              retry_after=int(self.probe_seconds))

    async def network(self, link_id: int, sdp: str) -> str:
        """Answer a data-channel offer; the relay echoes what it receives."""
        if "m=audio" in sdp or "m=video" in sdp:
            raise InvalidInput("The probe takes a data channel only.", field="sdp")
        self._admit(link_id)
        room = self._router.room(f"check-{link_id}-{secrets.token_hex(4)}")
        probe = await room.join("probe", publish=False)
        try:
            answer = await probe.accept_offer(sdp)
        except DuetError:
            await room.close("the offer was refused")
            raise
        self._close_later(link_id, room)
        return answer

    async def loopback(self, link_id: int, sdp: str) -> Loopback:
        """Answer a one-video-track offer and offer the same video back."""
        if "m=audio" in sdp or "m=application" in sdp or sdp.count("m=video") != 1:
            raise InvalidInput("The video loopback takes exactly one video track and nothing else.", field="sdp")
        self._admit(link_id)
        room = self._router.room(f"check-{link_id}-{secrets.token_hex(4)}")
        participant = await room.join("loopback", loopback=True)
        first_offer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        probe_id = secrets.token_urlsafe(12)
        async with participant.hold_events():
            try:
                answer = await participant.accept_offer(sdp)
            except DuetError:
                await room.close("the offer was refused")
                raise
        self._loopbacks[probe_id] = (link_id, participant)
        self._close_later(link_id, room, probe_id, participant, first_offer)
        try:
            offer = await asyncio.wait_for(asyncio.shield(first_offer), OFFER_WAIT_SECONDS)
        except TimeoutError:
            raise Unavailable("The media server did not send your video back in time. Start the check again.") \
                from None
        return Loopback(probe_id, answer, offer)

    async def answer_loopback(self, link_id: int, probe_id: str, sdp: str) -> None:
        found = self._loopbacks.get(probe_id)
        if found is None or found[0] != link_id:
            raise NotFound("This video test has ended. Start the check again.")
        await found[1].accept_answer(sdp)

    def _close_later(self, link_id: int, room: Room, probe_id: str | None = None,
                     participant: Participant | None = None, first_offer: asyncio.Future[str] | None = None) -> None:
        """Close the probe room after ``probe_seconds``, reading the participant's events meanwhile."""

        async def serve() -> None:
            if participant is None:
                return
            async for event in participant.events():  # unread events would get the participant removed
                if isinstance(event, OfferReady) and first_offer is not None and not first_offer.done():
                    first_offer.set_result(event.sdp)

        async def run() -> None:
            reader = asyncio.create_task(serve())
            try:
                await self._clock.sleep(self.probe_seconds)
            finally:
                reader.cancel()
                if probe_id is not None:
                    self._loopbacks.pop(probe_id, None)
                await room.close("the check is over")

        task = asyncio.create_task(run(), name=f"check-probe-{link_id}")
        self._running[task] = link_id
        task.add_done_callback(lambda done: self._running.pop(done, None))

    async def close(self) -> None:
        """Server shutdown: every probe room closes now."""
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
