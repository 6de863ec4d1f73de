"""The device and network check: page, WebRTC probes against the relay, results, the practitioner's view.

The probes themselves (a data-channel echo and a video loopback, each in a room of its own) are
``server/checks/probes.py``. Runs are limited per person and per address (``CheckService.allow_run``) and
probes in flight per link and in all (``Probes``)."""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from server.checks.verdict import Measurements
from server.errors import NotFound
from server.links.models import LinkPurpose
from server.links.services import LinkHolder
from server.web.access import link_holder
from server.web.http import Body, Out, documented, ok, read_body
from server.web.keys import DB, HOLDER, SERVICES
from server.web.pages_render import render

routes = web.RouteTableDef()


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
    services = request.app[SERVICES]
    await services.checks.allow_run(request[DB], holder.booking.id, holder.link.subject, request.remote or "")
    answer = await services.probes.network(holder.link.id, body.sdp)
    return ok(AnswerOut(sdp=answer, seconds=services.probes.probe_seconds))


@routes.post("/s/{booking_id}/check/api/loopback")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
@documented("Start the video loopback: one VP8 video track, sent straight back by the media server",
            body=OfferBody, response=LoopbackOut)
async def loopback_offer(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, OfferBody)
    services = request.app[SERVICES]
    await services.checks.allow_run(request[DB], holder.booking.id, holder.link.subject, request.remote or "")
    loop = await services.probes.loopback(holder.link.id, body.sdp)
    return ok(LoopbackOut(probe=loop.probe, answer=loop.answer, offer=loop.offer,
                          seconds=services.probes.probe_seconds))


@routes.post("/s/{booking_id}/check/api/loopback/{probe}/answer")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
@documented("Answer the media server's offer of the returning video", body=OfferBody)
async def loopback_answer(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, OfferBody)
    await request.app[SERVICES].probes.answer_loopback(holder.link.id, request.match_info["probe"], body.sdp)
    return web.Response(status=204)


@routes.post("/s/{booking_id}/check/api/results")
@link_holder(LinkPurpose.CHECK, LinkPurpose.JOIN)
@documented("Send the measurements and the device declaration; the server decides the verdict", body=ResultsBody,
            response=VerdictOut)
async def results(request: web.Request) -> web.Response:
    holder = _holder(request)
    body = await read_body(request, ResultsBody)
    checks = request.app[SERVICES].checks
    source = request.remote or ""
    await checks.allow_run(request[DB], holder.booking.id, holder.link.subject, source)
    fields = body.model_dump(exclude={"device", "shared_with", "safeguarding_measures"})
    _, result = await checks.record(request[DB], holder.actor, holder.booking.id, holder.link.subject, source,
                                    Measurements(**fields), body.device, body.shared_with,
                                    body.safeguarding_measures)
    await request[DB].commit()
    return ok(VerdictOut(verdict=result.overall, reasons=result.reasons, music_advisable=result.music_advisable,
                         music_reasons=result.music_reasons), status=201)
