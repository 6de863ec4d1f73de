"""The OpenAPI 3.1 document, generated from the registered routes and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from server.web.access import public, route_rule
from server.web.http import DOC_ATTR, Doc

PROBLEM = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("type", "title", "detail", "field")}
    | {"status": {"type": "integer"}},
    "required": ["type", "title", "status", "detail"],
}


def _schemas(docs: list[Doc]) -> tuple[dict[type[BaseModel], dict[str, str]], dict[str, Any]]:
    """Every body and response model's schema in one pass, so that two models with one name (ReasonBody in
    three modules) get distinct component names instead of the last one overwriting the others."""
    models = sorted({m for d in docs for m in (d.body, d.response) if m is not None},
                    key=lambda m: (m.__module__, m.__qualname__))
    refs, document = models_json_schema([(m, "validation") for m in models],
                                        ref_template="#/components/schemas/{model}")
    by_model = {m: ref for (m, _), ref in refs.items() if isinstance(m, type) and issubclass(m, BaseModel)}
    return by_model, document.get("$defs", {})


def build(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    docs = [d for r in app.router.routes() if (d := getattr(r.handler, DOC_ATTR, None)) is not None]
    refs, schemas = _schemas(docs)
    components: dict[str, Any] = {"Problem": PROBLEM} | schemas
    for route in app.router.routes():
        resource = route.resource
        if resource is None or not resource.canonical.startswith("/api/v1/") or route.method == "HEAD":
            continue
        doc: Doc | None = getattr(route.handler, DOC_ATTR, None)
        if doc is None:
            raise RuntimeError(f"{route.method} {resource.canonical} has no @documented summary")
        rule = route_rule(route)
        op: dict[str, Any] = {
            "summary": doc.summary,
            "x-access": "none" if rule is None else (
                sorted(r.value for r in rule.roles) if rule.kind == "staff" else rule.kind),
            "responses": {
                "4XX": {"description": "Problem", "content": {"application/problem+json": {
                    "schema": {"$ref": "#/components/schemas/Problem"}}}},
            },
        }
        params = [{"name": n, "in": "path", "required": True, "schema": {"type": "integer"}}
                  for n in re.findall(r"{(\w+)}", resource.canonical)]
        params += [{"name": n, "in": "query", "required": False, "description": d, "schema": {"type": "string"}}
                   for n, d in doc.query]
        if params:
            op["parameters"] = params
        if doc.body is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": refs[doc.body]}}}
        if doc.response is not None:
            ref = refs[doc.response]
            schema = {"type": "array", "items": ref} if doc.many else ref
            op["responses"]["2XX"] = {"description": "OK", "content": {"application/json": {"schema": schema}}}
        else:
            op["responses"]["2XX"] = {"description": "OK", "content": {"application/json": {"schema": {}}}}
        paths.setdefault(resource.canonical, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Duet API", "version": "1"},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components},
    }


routes = web.RouteTableDef()


@routes.get("/api/v1/openapi.json")
@public
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build(request.app))


setattr(openapi, DOC_ATTR, Doc("This document"))
