"""The device and network check: page, WebRTC probes against the relay, results, the practitioner's view.

Two probes, each in a room of its own that closes after ``PROBE_SECONDS``:
- the network probe is a data channel only (``echo``): the relay echoes each message back, so round-trip
  time, jitter, loss and throughput are measured over WebRTC to the real media server;
- the video loopback takes one VP8 video track and the relay sends it straight back (relayed, never
  decoded), so the page reads the frames and bitrate it receives from getStats. The browser's offer is
  answered at once together with the relay's offer of the returning track; the browser answers that.
Either way the server never sends more than it received. Runs are limited per person and per address
(``CheckService.allow_run``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from datetime import datetime

from aiohttp import web
from pydantic import Field

from server.accounts.models import Role
from server.checks.models import CheckRun
from server.checks.service import CheckService
from server.checks.verdict import Measurements
from server.errors import DuetError, InvalidInput, NotFound, Unavailable
from server.links.models import LinkPurpose
from server.links.service import LinkHolder
from server.media.events import OfferReady
from server.media.participant import Participant
from server.media.room import Room
from server.web.access import link_holder, staff
from server.web.api import Body, Out, documented, ok, path_id, read_body
from server.web.keys import DB, HOLDER, MEDIA, SERVICES, STAFF
from server.web.pages_render import render

routes = web.RouteTableDef()
PROBE_SECONDS = 60.0
OFFER_WAIT_SECONDS = 5.0
CHECKS = web.AppKey[CheckService]("checks")
PROBES = web.AppKey[set[asyncio.Task[None]]]("probes")
LOOPBACKS = web.AppKey[dict[str, tuple[int, Participant]]]("loopbacks")  # probe -> (link id, participant)


class OfferBody(Body):
    sdp: str = Field(min_length=10, max_length=20_000)


class AnswerOut(Out):
    sdp: str
    seconds: float


class LoopbackOut(Out):
    probe: str  # names this loopback in the answer that follows
    answer: str  # the relay's answer to the browser's offer
    offer: str  # the relay's offer of the returning video, to be answered at .../answer
    seconds: float


class ResultsBody(Body):
    webrtc: bool
    camera_width: int = Field(ge=0, le=8000)
    camera_height: int = Field(ge=0, le=8000)
    camera_fps: float = Field(ge=0, le=240)
    mic_peak_dbfs: float = Field(ge=-200, le=10)
    mic_floor_dbfs: float = Field(ge=-200, le=10)
    speakers_heard: bool
    rtt_ms: float = Field(ge=0, le=60_000)
    jitter_ms: float = Field(ge=0, le=60_000)
    loss: float = Field(ge=0, le=1)
    loopback_fps: float | None = Field(default=None, ge=0, le=240)
    loopback_kbps: float | None = Field(default=None, ge=0, le=10_000_000)
    up_kbps: float = Field(ge=0, le=10_000_000)
    down_kbps: float = Field(ge=0, le=10_000_000)
    ice_path: str = Field(pattern="^(host|srflx|prflx|relay|none)$")
    headphones: bool = False
    device: str = Field(min_length=1, max_length=200)
    shared_with: str = Field(default="", max_length=500)
    safeguarding_measures: str = Field(default="", max_length=500)


class VerdictOut(Out):
    verdict: str
    reasons: list[str]
    music_advisable: bool
    music_reasons: list[str]


class CheckOut(Out):
    subject: str
    checked_at: datetime
    days_ago: int  # by the server's clock: the dashboard must not trust the viewer's
    verdict: str
    reasons: list[str]
    up_kbps: float
    down_kbps: float
    rtt_ms: float
    music_advisable: bool
    device: str
    shared_with: str
    safeguarding_measures: str


def _holder(request: web.Request) -> LinkHolder:
    holder = request.get(HOLDER)
    if holder is None:
        raise NotFound("The device check is for the person the link was sent to. Open the link from the email.")
    return holder


@routes.get("/s/{booking_id}/check")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
async def check_page(request: web.Request) -> web.Response:
    return render("check.html", organisation=request.app[SERVICES].settings.organisation)


@routes.post("/s/{booking_id}/check/api/offer")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
@documented("Start a network probe: a data-channel offer, answered by the media server", body=OfferBody,
            response=AnswerOut)
async def probe_offer(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, OfferBody)
    if "m=audio" in body.sdp or "m=video" in body.sdp:
        raise InvalidInput("The probe takes a data channel only.", field="sdp")
    await request.app[CHECKS].allow_run(request[DB], holder.booking.id, holder.link.subject, request.remote or "")
    room = request.app[MEDIA].room(f"check-{holder.link.id}-{secrets.token_hex(4)}")
    probe = await room.join("probe", publish=False)
    answer = await probe.accept_offer(body.sdp)
    _close_later(request.app, room)
    return ok(AnswerOut(sdp=answer, seconds=PROBE_SECONDS))


def _close_later(app: web.Application, room: Room, probe_id: str | None = None,
                 participant: Participant | None = None, first_offer: asyncio.Future[str] | None = None) -> None:
    """Close the probe room after ``PROBE_SECONDS``, reading the participant's events meanwhile."""

    async def serve() -> None:
        if participant is None:
            return
        async for event in participant.events():  # unread events would get the participant removed
            if isinstance(event, OfferReady) and first_offer is not None and not first_offer.done():
                first_offer.set_result(event.sdp)

    async def run() -> None:
        reader = asyncio.create_task(serve())
        try:
            await asyncio.sleep(PROBE_SECONDS)  # media time is real time
        finally:
            reader.cancel()
            if probe_id is not None:
                app[LOOPBACKS].pop(probe_id, None)
            await room.close("the check is over")

    task = asyncio.create_task(run())
    app[PROBES].add(task)
    task.add_done_callback(app[PROBES].discard)


@routes.post("/s/{booking_id}/check/api/loopback")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
@documented("Start the video loopback: one VP8 video track, sent straight back by the media server",
            body=OfferBody, response=LoopbackOut)
async def loopback_offer(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, OfferBody)
    if "m=audio" in body.sdp or "m=application" in body.sdp or body.sdp.count("m=video") != 1:
        raise InvalidInput("The video loopback takes exactly one video track and nothing else.", field="sdp")
    await request.app[CHECKS].allow_run(request[DB], holder.booking.id, holder.link.subject, request.remote or "")
    room = request.app[MEDIA].room(f"check-{holder.link.id}-{secrets.token_hex(4)}")
    participant = await room.join("loopback", loopback=True)
    first_offer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    probe_id = secrets.token_urlsafe(12)
    async with participant.hold_events():
        try:
            answer = await participant.accept_offer(body.sdp)
        except DuetError:
            await room.close("the offer was refused")
            raise
    request.app[LOOPBACKS][probe_id] = (holder.link.id, participant)
    _close_later(request.app, room, probe_id, participant, first_offer)
    try:
        offer = await asyncio.wait_for(asyncio.shield(first_offer), OFFER_WAIT_SECONDS)
    except TimeoutError:
        raise Unavailable("The media server did not send your video back in time. Start the check again.") from None
    return ok(LoopbackOut(probe=probe_id, answer=answer, offer=offer, seconds=PROBE_SECONDS))


@routes.post("/s/{booking_id}/check/api/loopback/{probe}/answer")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
@documented("Answer the media server's offer of the returning video", body=OfferBody)
async def loopback_answer(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, OfferBody)
    found = request.app[LOOPBACKS].get(request.match_info["probe"])
    if found is None or found[0] != holder.link.id:
        raise NotFound("This video test has ended. Start the check again.")
    await found[1].accept_answer(body.sdp)
    return web.Response(status=204)


@routes.post("/s/{booking_id}/check/api/results")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
@documented("Send the measurements and the device declaration; the server decides the verdict", body=ResultsBody,
            response=VerdictOut)
async def results(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, ResultsBody)
    checks = request.app[CHECKS]
    source = request.remote or ""
    await checks.allow_run(request[DB], holder.booking.id, holder.link.subject, source)
    fields = body.model_dump(exclude={"device", "shared_with", "safeguarding_measures"})
    _, result = await checks.record(request[DB], holder.actor, holder.booking.id, holder.link.subject, source,
                                    Measurements(**fields), body.device, body.shared_with,
                                    body.safeguarding_measures)
    await request[DB].commit()
    return ok(VerdictOut(verdict=result.overall, reasons=result.reasons, music_advisable=result.music_advisable,
                         music_reasons=result.music_reasons), status=201)


@routes.get("/api/v1/bookings/{booking_id}/checks")
@staff()  # every role; the handler shows the booking only to its practitioner and the office roles
@documented("Device checks for a booking, newest first (the booking's practitioner and office roles)",
            response=CheckOut, many=True)
async def booking_checks(request: web.Request) -> web.Response:
    from sqlalchemy import select

    services = request.app[SERVICES]
    booking = await services.bookings.get(request[DB], path_id(request, "booking_id"))
    ctx = request[STAFF]
    office = {Role.ADMIN, Role.MANAGER, Role.SAFEGUARDING}
    if not ctx.staff.role_set & office and booking.practitioner_id != ctx.staff.id:
        raise NotFound(f"There is no booking with id {booking.id}.")
    runs = (await request[DB].execute(select(CheckRun).where(CheckRun.booking_id == booking.id)
                                      .order_by(CheckRun.created_at.desc(), CheckRun.id.desc()))).scalars().all()
    out = []
    for run in runs:
        m = json.loads(run.measurements)
        days = (services.clock.now() - run.created_at).days
        out.append(CheckOut(subject=run.subject, checked_at=run.created_at, days_ago=days, verdict=run.verdict,
                            reasons=json.loads(run.reasons), up_kbps=m["up_kbps"], down_kbps=m["down_kbps"],
                            rtt_ms=m["rtt_ms"], music_advisable=run.music_advisable, device=run.device,
                            shared_with=run.shared_with, safeguarding_measures=run.safeguarding_measures))
    return ok(out)
