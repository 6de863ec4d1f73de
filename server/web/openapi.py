"""The OpenAPI 3.1 document, generated from the registered routes and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from server.web.access import public, route_rule
from server.web.http import DOC_ATTR, Doc

PROBLEM = {
    "type": "object",
    "properties": {k: {"type": "string"} for k in ("type", "title", "detail", "field")}
    | {"status": {"type": "integer"}},
    "required": ["type", "title", "status", "detail"],
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    components: dict[str, Any] = {"Problem": PROBLEM}
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
                "schema": _schema(doc.body, components)}}}
        if doc.response is not None:
            ref = _schema(doc.response, components)
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
