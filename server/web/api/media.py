"""Relay counters for operations: forwarded frames per track, and codecs created (must stay 0)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from server.accounts.models import Role
from server.web.access import staff
from server.web.http import documented
from server.web.keys import HUB, SERVICES

routes = web.RouteTableDef()


@routes.get("/api/v1/media/stats")
@staff(Role.ADMIN, Role.MANAGER)
@documented("Relay counters: rooms, participants, frames forwarded, decoders and encoders created")
async def media_stats(request: web.Request) -> web.Response:
    stats: dict[str, Any] = request.app[SERVICES].media.stats()
    stats["sessions"] = {str(b): [m.presence() for m in s.members.values()]
                         for b, s in request.app[HUB].sessions.items()}
    return web.json_response(stats)
