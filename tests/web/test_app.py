"""The app's outer contract: security headers, the OpenAPI document, pages."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine

from server.app import create_app
from server.clock import FakeClock
from server.config import Settings, load_settings
from server.keys import AppKeys
from server.web.http import DOC_ATTR
from server.web.keys import SERVICES


async def test_security_headers_on_pages_and_api(client: TestClient) -> None:
    for path in ("/login", "/api/v1/openapi.json", "/api/v1/me", "/nowhere"):
        r = await client.get(path, allow_redirects=False)
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Referrer-Policy"] == "no-referrer"
        assert "Strict-Transport-Security" not in r.headers  # plain http here


async def test_hsts_when_served_over_https(
    aiohttp_client: object, settings: Settings, engine: AsyncEngine, clock: FakeClock, tmp_path: Path
) -> None:
    https = load_settings(environ={}, home=str(settings.home), database_url=settings.database_url,
                          public_url="https://duet.example.org")
    client = await aiohttp_client(create_app(https, clock=clock, engine=engine,  # type: ignore[operator]
                                             keys=AppKeys.ensure(tmp_path / "k")))
    r = await client.get("/login")
    assert r.headers["Strict-Transport-Security"].startswith("max-age=")


async def test_openapi_document_matches_the_routes(client: TestClient, app: web.Application) -> None:
    doc = await (await client.get("/api/v1/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routes = {(r.method, r.resource.canonical) for r in app.router.routes()
              if r.resource is not None and r.resource.canonical.startswith("/api/v1/") and r.method != "HEAD"}
    assert documented == routes
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    schema = doc["components"]["schemas"][login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                                          .split("/")[-1]]
    assert set(schema["required"]) == {"email", "password"}
    assert doc["paths"]["/api/v1/staff"]["post"]["x-access"] == ["admin"]


async def test_pages_need_a_sign_in_and_scripts_are_files(client: TestClient) -> None:
    r = await client.get("/dashboard", allow_redirects=False)
    assert r.status == 303 and r.headers["Location"] == "/login"
    page = await (await client.get("/login")).text()
    assert '<script type="module" src="/static/login.js">' in page and "<script>" not in page
    assert (await client.get("/static/login.js")).status == 200


async def test_an_unexpected_error_is_a_problem_with_a_reference_not_a_traceback(
    aiohttp_client: object, settings: Settings, engine: AsyncEngine, clock: FakeClock, tmp_path: Path
) -> None:
    app = create_app(settings, clock=clock, engine=engine, keys=AppKeys.ensure(tmp_path / "k"))

    class Broken:
        def now(self) -> object:
            raise RuntimeError("secret internals")

    app[SERVICES].logins._clock = Broken()  # type: ignore[assignment]  # make the service fail unexpectedly
    client = await aiohttp_client(app)  # type: ignore[operator]
    r = await client.post("/api/v1/auth/login", json={"email": "a@b.example.org", "password": "x"})
    body = await r.json()
    assert r.status == 500 and "reference" in body["detail"] and "secret internals" not in await r.text()


async def test_every_operation_is_documented_with_its_own_models_schema(
    client: TestClient, app: web.Application
) -> None:
    """Models that share a name (AgreementBody, HoldOut, CheckOut in two modules each) get one component each."""
    doc = await (await client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    wrong = []
    for route in app.router.routes():
        documented = getattr(route.handler, DOC_ATTR, None)
        if documented is None or route.resource is None or route.method == "HEAD":
            continue
        op = doc["paths"].get(route.resource.canonical, {}).get(route.method.lower())
        if op is None:
            continue
        for model, where in ((documented.body, "requestBody"), (documented.response, "responses")):
            if model is None:
                continue
            content = op["requestBody"]["content"] if where == "requestBody" else op["responses"]["2XX"]["content"]
            schema = content["application/json"]["schema"]
            ref = (schema.get("items") or schema)["$ref"].split("/")[-1]
            if set(schemas[ref].get("properties", {})) != set(model.model_json_schema().get("properties", {})):
                wrong.append(f"{route.method} {route.resource.canonical} {where}: {ref} is not {model.__qualname__}")
    assert wrong == []
