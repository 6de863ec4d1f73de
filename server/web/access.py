"""Deny by default: every route declares who may call it, or the app refuses to start.

``public``, ``signed_in`` (a live login with its second factor done, or with none enrolled),
``second_factor_step`` (a live login, second factor possibly still owed: only finishing or ending it),
``staff(*roles)`` and
``link_holder(*purposes)`` (someone holding a link of one of those purposes, or the booking's own staff,
for the booking in the URL) are the only rules. A consent or device-check link never opens the live
session: only a join link does. The access middleware reads the rule off the handler; a handler without
one is refused, and ``check_routes`` stops the app from starting with such a route at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web

from server.accounts.models import Role
from server.links.models import LinkPurpose

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])
RULE_ATTR = "__duet_rule__"
ALL_STAFF = frozenset(Role)


@dataclass(frozen=True)
class Rule:
    kind: Literal["public", "signed_in", "staff", "link"]
    roles: frozenset[Role] = field(default_factory=frozenset)
    enrolment: bool = False  # open to safeguarding staff who have not enrolled TOTP yet
    purposes: frozenset[LinkPurpose] = frozenset()  # for "link": the link purposes that may open it
    second_factor_pending: bool = False  # for "signed_in": open to a login that still owes its second factor


def _mark(rule: Rule) -> Callable[[H], H]:
    def decorate(handler: H) -> H:
        setattr(handler, RULE_ATTR, rule)
        return handler

    return decorate


def public(handler: H) -> H:
    return _mark(Rule("public"))(handler)


def signed_in(handler: H) -> H:
    return _mark(Rule("signed_in"))(handler)


def second_factor_step(handler: H) -> H:
    """For a login that may still owe its second factor: giving the code, or signing out of this browser."""
    return _mark(Rule("signed_in", second_factor_pending=True))(handler)


def staff(*roles: Role, enrolment: bool = False) -> Callable[[H], H]:
    return _mark(Rule("staff", frozenset(roles) or ALL_STAFF, enrolment))


def link_holder(*purposes: LinkPurpose) -> Callable[[H], H]:
    """For the holder of a link of one of ``purposes`` (at least one) for this booking, or its own staff."""
    if not purposes:
        raise ValueError("name the link purposes that may open this route")
    return _mark(Rule("link", purposes=frozenset(purposes)))


def rule_of(handler: Any) -> Rule | None:
    return getattr(handler, RULE_ATTR, None)


def route_rule(route: web.AbstractRoute) -> Rule | None:
    """The rule for a registered route; static files are public."""
    if isinstance(route.resource, web.StaticResource):
        return Rule("public")
    return rule_of(route.handler)


def check_routes(app: web.Application) -> None:
    """Refuse to build an app with a route that has no access rule."""
    missing = [
        f"{route.method} {route.resource.canonical if route.resource else '?'}"
        for route in app.router.routes()
        if route.method != "HEAD" and route_rule(route) is None
    ]
    if missing:
        raise RuntimeError(f"routes without an access rule: {', '.join(missing)}")
