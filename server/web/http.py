"""JSON in and out of the API: request bodies checked by pydantic models, each route documented.

Bodies are parsed by ``server.web.inputs.parse_json`` (limits on numbers, depth and text) before pydantic.

``@documented`` records the summary and the body/response models on the handler; ``server.web.openapi``
builds /api/v1/openapi.json from the registered routes, so the document cannot drift from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from server.errors import InvalidInput
from server.web import inputs
from server.web.inputs import parse_json

M = TypeVar("M", bound=BaseModel)
H = TypeVar("H", bound=Callable[..., Any])
DOC_ATTR = "__duet_doc__"
MAX_BODY = 64 * 1024


class Body(BaseModel):
    """Base of request bodies: unknown fields are refused, text is trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ReasonBody(Body):
    """Why something is done: kept in the audit log with it."""

    reason: str = Field(min_length=3, max_length=2000)


@dataclass(frozen=True)
class Doc:
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    many: bool = False
    query: tuple[tuple[str, str], ...] = ()  # (name, description)


def documented(summary: str, *, body: type[BaseModel] | None = None, response: type[BaseModel] | None = None,
               many: bool = False, query: tuple[tuple[str, str], ...] = ()) -> Callable[[H], H]:
    def decorate(handler: H) -> H:
        setattr(handler, DOC_ATTR, Doc(summary, body, response, many, query))
        return handler

    return decorate


_NOT_ONE_LINE = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")


def _one_line(value: str) -> str:
    if _NOT_ONE_LINE.search(value):
        raise ValueError("must be one line of text, without line breaks or control characters")
    return value


# Names go into email headers and calendar files: refused at entry, not when the first email is built.
OneLine = Annotated[str, AfterValidator(_one_line)]


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not a time zone such as Europe/London") from None
    return value


# Emails give times in the recipient's own zone (IANA name); omitted means the organisation's DUET_TIME_ZONE.
TimeZone = Annotated[str, AfterValidator(_time_zone)]


def _describe(error: ErrorDetails) -> tuple[str, str]:
    where = ".".join(str(part) for part in error["loc"]) or "body"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "is not a field this request accepts"
    elif error["type"] == "missing":
        message = "is required"
    elif error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    return where, f"{where}: {message}"


async def read_body(request: web.Request, model: type[M]) -> M:
    """Parse and check a JSON body; every problem becomes InvalidInput naming the field."""
    if request.content_type != "application/json":
        raise InvalidInput("Send the request body as JSON (Content-Type: application/json).")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise InvalidInput(f"The request body is larger than {MAX_BODY // 1024} KiB.")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise InvalidInput(f"The request body is larger than {MAX_BODY // 1024} KiB.")
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidInput("The request body must be a JSON object.")
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        field, detail = validation_detail(exc)
        raise InvalidInput(detail, field=field) from None
    inputs.check_text(data)
    inputs.check_dates(body.model_dump())
    return body


def validation_detail(exc: ValidationError) -> tuple[str, str]:
    """The first field at fault and every problem in words, e.g. ``email: is required``."""
    described = [_describe(e) for e in exc.errors(include_url=False)]
    return described[0][0], "; ".join(d for _, d in described)


def path_id(request: web.Request, name: str) -> int:
    """The numeric id ``name`` from the path (``server.web.inputs``: ASCII digits, within 64 bits)."""
    return inputs.path_id(request.match_info, name)


def query_date(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a date like 2026-11-23.", field=name) from None
    inputs.check_date(value, name)
    return value


def ok(model: BaseModel | list[Any] | dict[str, Any], status: int = 200) -> web.Response:
    if isinstance(model, BaseModel):
        return web.json_response(text=model.model_dump_json(), status=status)
    if isinstance(model, list):
        return web.json_response(
            text="[" + ",".join(m.model_dump_json() if isinstance(m, BaseModel) else json.dumps(m) for m in model)
            + "]", status=status)
    return web.json_response(model, status=status, dumps=lambda o: json.dumps(o, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")
