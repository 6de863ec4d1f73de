"""Blended plans API (policies/000_* provision type 4): staff only; families have no plan routes.

Admins and managers change any plan, a practitioner the plans they lead (server/plans/services.py decides);
the safeguarding lead reads them. Another practitioner's plan answers 404, as visits do."""

from __future__ import annotations

from aiohttp import web

from server.accounts.logins import StaffContext
from server.accounts.models import Role
from server.errors import InvalidInput
from server.plans import rules
from server.plans.models import BlendedPlan, PlanStatus
from server.plans.services import NewPlan, NewResource
from server.web.access import staff
from server.web.api.visits import timetable_entries
from server.web.http import documented, ok, path_id, read_body
from server.web.keys import DB, SERVICES, STAFF
from server.web.schemas.plans import (
    AttachBody,
    EndBody,
    PlanBody,
    PlanBrief,
    PlanOut,
    ResourceBody,
    ResourceOut,
    SummaryOut,
)

routes = web.RouteTableDef()


CHANGERS = (Role.ADMIN, Role.MANAGER, Role.PRACTITIONER)  # practitioners: their own plans (the service checks)


async def _out(request: web.Request, plan: BlendedPlan) -> PlanOut:
    plans = request.app[SERVICES].plans
    ids = await plans.booking_ids(request[DB], plan)
    rows = await request.app[SERVICES].visits.timetable(request[DB], booking_ids=ids) if ids else []
    entries = await timetable_entries(request, rows)
    resources = await plans.resources(request[DB], plan)
    summary = rules.summarise(((e.kind, e.status, e.attendance) for e in entries), len(resources))
    return PlanOut(
        id=plan.id, client_id=plan.client_id, lead_practitioner_id=plan.lead_practitioner_id, title=plan.title,
        starts_on=plan.starts_on, ends_on=plan.ends_on, status=plan.status, goals=plan.goals,
        created_by_id=plan.created_by_id, created_at=plan.created_at, ended_by_id=plan.ended_by_id,
        ended_at=plan.ended_at, ended_reason=plan.ended_reason, bookings=entries,
        resources=[ResourceOut.model_validate(r) for r in resources],
        summary=SummaryOut(total=summary.total, by_kind=summary.by_kind, held=summary.held,
                           cancelled=summary.cancelled, blended=not summary.missing, missing=summary.missing))


async def _reloaded(request: web.Request, plan_id: int) -> PlanOut:
    ctx: StaffContext = request[STAFF]
    return await _out(request, await request.app[SERVICES].plans.get(request[DB], ctx.staff, plan_id))


@routes.get("/api/v1/plans")
@staff()
@documented("Blended plans, newest first (practitioners: the plans they lead)", response=PlanBrief, many=True,
            query=(("client_id", "one client's plans"), ("status", "active or ended")))
async def list_plans(request: web.Request) -> web.Response:
    try:
        client_id = int(request.query["client_id"]) if "client_id" in request.query else None
        status = PlanStatus(request.query["status"]) if "status" in request.query else None
    except ValueError:
        raise InvalidInput("client_id is a whole number and status is active or ended.") from None
    ctx: StaffContext = request[STAFF]
    found = await request.app[SERVICES].plans.listing(request[DB], ctx.staff, client_id=client_id, status=status)
    return ok([PlanBrief.model_validate(p) for p in found])


@routes.post("/api/v1/plans")
@staff(*CHANGERS)
@documented("Start a blended plan for one client with one lead practitioner", body=PlanBody, response=PlanOut)
async def create_plan(request: web.Request) -> web.Response:
    body = await read_body(request, PlanBody)
    ctx: StaffContext = request[STAFF]
    plan = await request.app[SERVICES].plans.create(request[DB], ctx.actor, ctx.staff, NewPlan(
        client_id=body.client_id, lead_practitioner_id=body.lead_practitioner_id, title=body.title,
        goals=body.goals, starts_on=body.starts_on, ends_on=body.ends_on))
    await request[DB].commit()
    return ok(await _out(request, plan), status=201)


@routes.get("/api/v1/plans/{plan_id}")
@staff()
@documented("One blended plan: its bookings in time order with attendance, resources and a summary",
            response=PlanOut)
async def get_plan(request: web.Request) -> web.Response:
    return ok(await _reloaded(request, path_id(request, "plan_id")))


@routes.post("/api/v1/plans/{plan_id}/bookings")
@staff(*CHANGERS)
@documented("Attach one of the client's existing bookings, of any kind, to the plan", body=AttachBody,
            response=PlanOut)
async def attach_booking(request: web.Request) -> web.Response:
    body = await read_body(request, AttachBody)
    ctx: StaffContext = request[STAFF]
    plan_id = path_id(request, "plan_id")
    await request.app[SERVICES].plans.attach(request[DB], ctx.actor, ctx.staff, plan_id, body.booking_id)
    await request[DB].commit()
    return ok(await _reloaded(request, plan_id), status=201)


@routes.delete("/api/v1/plans/{plan_id}/bookings/{booking_id}")
@staff(*CHANGERS)
@documented("Detach a booking from the plan (the booking itself is unchanged)", response=PlanOut)
async def detach_booking(request: web.Request) -> web.Response:
    ctx: StaffContext = request[STAFF]
    plan_id = path_id(request, "plan_id")
    await request.app[SERVICES].plans.detach(request[DB], ctx.actor, ctx.staff, plan_id,
                                             path_id(request, "booking_id"))
    await request[DB].commit()
    return ok(await _reloaded(request, plan_id))


@routes.post("/api/v1/plans/{plan_id}/resources")
@staff(*CHANGERS)
@documented("Add a learning resource: a title with an https link or a note", body=ResourceBody, response=PlanOut)
async def add_resource(request: web.Request) -> web.Response:
    body = await read_body(request, ResourceBody)
    ctx: StaffContext = request[STAFF]
    plan_id = path_id(request, "plan_id")
    await request.app[SERVICES].plans.add_resource(request[DB], ctx.actor, ctx.staff, plan_id, NewResource(
        title=body.title, url=body.url, note=body.note))
    await request[DB].commit()
    return ok(await _reloaded(request, plan_id), status=201)


@routes.delete("/api/v1/plans/{plan_id}/resources/{resource_id}")
@staff(*CHANGERS)
@documented("Remove a learning resource from the plan", response=PlanOut)
async def remove_resource(request: web.Request) -> web.Response:
    ctx: StaffContext = request[STAFF]
    plan_id = path_id(request, "plan_id")
    await request.app[SERVICES].plans.remove_resource(request[DB], ctx.actor, ctx.staff, plan_id,
                                                      path_id(request, "resource_id"))
    await request[DB].commit()
    return ok(await _reloaded(request, plan_id))


@routes.post("/api/v1/plans/{plan_id}/end")
@staff(*CHANGERS)
@documented("End the plan: it stays readable and can no longer be changed", body=EndBody, response=PlanOut)
async def end_plan(request: web.Request) -> web.Response:
    body = await read_body(request, EndBody)
    ctx: StaffContext = request[STAFF]
    plan_id = path_id(request, "plan_id")
    await request.app[SERVICES].plans.end(request[DB], ctx.actor, ctx.staff, plan_id, body.reason)
    await request[DB].commit()
    return ok(await _reloaded(request, plan_id))
