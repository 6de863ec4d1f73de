"""/api/v1/recordings: the safeguarding lead's recordings list, a view opened with a reason, and the media of
that view, decrypted chunk by chunk (every view audited)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from aiohttp import web
from pydantic import Field

from server.accounts.models import Role
from server.errors import Forbidden, InvalidInput
from server.recording.listing import list_recordings as list_recordings_of
from server.web.access import staff
from server.web.http import Body, Out, documented, ok, read_body
from server.web.keys import DB, SERVICES, STAFF

routes = web.RouteTableDef()


VIEW_MINUTES = 30


class HoldOut(Out):
    kind: str
    reason: str
    placed_at: datetime


class RecordingOut(Out):
    id: str
    booking_id: int
    client: str
    practitioner: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int | None
    status: str
    policy: str | None
    erase_at: datetime | None
    erased_at: datetime | None
    people: list[str]
    consent_scopes: list[str]
    holds: list[HoldOut]


class ViewBody(Body):
    reason: str = Field(min_length=1, max_length=1000)


class ViewOut(Out):
    media_url: str
    complete: bool


def _view_token(request: web.Request, recording_id: str) -> str:
    services = request.app[SERVICES]
    ctx = request[STAFF]
    expiry = int(services.clock.now().timestamp()) + VIEW_MINUTES * 60
    payload = f"{recording_id}.{ctx.login.id}.{expiry}"
    return f"{expiry}.{services.keys.sign('recording-view', payload)}"


@routes.get("/api/v1/recordings")
@staff(Role.SAFEGUARDING)
@documented("Every recording with its client, practitioner, dates, duration, the uses its consents allow today, "
            "holds and erase date", response=RecordingOut, many=True)
async def list_recordings(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    listed = await list_recordings_of(request[DB], services.consent,
                                      services.clock.now().astimezone(services.settings.zone).date())
    return ok([RecordingOut.model_validate(asdict(item)) for item in listed])


@routes.post("/api/v1/recordings/{recording_id}/views")
@staff(Role.SAFEGUARDING)
@documented("Give the reason for viewing (audited); returns a short-lived playback address", body=ViewBody,
            response=ViewOut)
async def open_view(request: web.Request) -> web.Response:
    body = await read_body(request, ViewBody)
    review = request.app[SERVICES].review
    row = await review.get(request[DB], request.match_info["recording_id"])
    await review.audit_access(request[DB], request[STAFF].actor, row, "viewed", body.reason)
    await request[DB].commit()
    reader = await review.reader(row)
    token = _view_token(request, str(row.id))
    return ok(ViewOut(media_url=f"/api/v1/recordings/{row.id}/media?view={token}",
                      complete=reader.state.completeness.value == "complete"), status=201)


@routes.get("/api/v1/recordings/{recording_id}/media")
@staff(Role.SAFEGUARDING)
@documented("The decrypted WebM, by HTTP range, for a view opened with a reason",
            query=(("view", "the token from POST .../views"),))
async def media(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    review = request.app[SERVICES].review
    row = await review.get(request[DB], request.match_info["recording_id"])
    expiry_text, _, signature = request.query.get("view", "").partition(".")
    payload = f"{row.id}.{request[STAFF].login.id}.{expiry_text}"
    if not expiry_text.isdigit() or not services.keys.verify("recording-view", payload, signature) \
            or int(expiry_text) < services.clock.now().timestamp():
        raise Forbidden("Open the recording from the list and give your reason first.")
    reader = await review.reader(row)
    total = reader.index.total
    start, end = 0, total
    status = 200
    if "Range" in request.headers:
        spec = request.headers["Range"].removeprefix("bytes=")
        first, _, last = spec.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise InvalidInput("Only a single byte range like bytes=0-1023 is supported.")
        start, end = int(first), min(total, int(last) + 1 if last else total)
        if start >= end:
            return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
        status = 206
    data = await reader.read_range(start, end)  # a damaged chunk raises: reported, never served
    headers = {"Accept-Ranges": "bytes", "Content-Type": "video/webm", "Cache-Control": "no-store"}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    return web.Response(body=data, status=status, headers=headers)
