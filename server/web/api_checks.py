"""The device and network check: page, a WebRTC probe against the relay, results, the practitioner's view.

The probe is a data channel only (``echo``): the relay echoes each message back, so round-trip time,
jitter, loss and throughput are measured over WebRTC to the real media server, and the server never sends
more than it received. Each probe room closes after ``PROBE_SECONDS``. Runs are limited per person and per
address (``CheckService.allow_run``).
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
from server.errors import InvalidInput, NotFound
from server.links.service import LinkHolder
from server.web.access import link_holder, staff
from server.web.api import Body, Out, documented, ok, path_id, read_body
from server.web.keys import DB, HOLDER, MEDIA, SERVICES, STAFF
from server.web.pages_render import render

routes = web.RouteTableDef()
PROBE_SECONDS = 60.0
CHECKS = web.AppKey[CheckService]("checks")
PROBES = web.AppKey[set[asyncio.Task[None]]]("probes")


class OfferBody(Body):
    sdp: str = Field(min_length=10, max_length=20_000)


class AnswerOut(Out):
    sdp: str
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
@link_holder
async def check_page(request: web.Request) -> web.Response:
    return render("check.html", organisation=request.app[SERVICES].settings.organisation)


@routes.post("/s/{booking_id}/check/api/offer")
@link_holder
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

    async def close_later() -> None:
        await asyncio.sleep(PROBE_SECONDS)  # media time is real time
        await room.close("the check is over")

    task = asyncio.create_task(close_later())
    request.app[PROBES].add(task)
    task.add_done_callback(request.app[PROBES].discard)
    return ok(AnswerOut(sdp=answer, seconds=PROBE_SECONDS))


@routes.post("/s/{booking_id}/check/api/results")
@link_holder
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
@staff(Role.PRACTITIONER, Role.ADMIN, Role.MANAGER, Role.SAFEGUARDING)
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
        out.append(CheckOut(subject=run.subject, checked_at=run.created_at, verdict=run.verdict,
                            reasons=json.loads(run.reasons), up_kbps=m["up_kbps"], down_kbps=m["down_kbps"],
                            rtt_ms=m["rtt_ms"], music_advisable=run.music_advisable, device=run.device,
                            shared_with=run.shared_with, safeguarding_measures=run.safeguarding_measures))
    return ok(out)
