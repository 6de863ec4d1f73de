"""Typed application keys (aiohttp ``web.AppKey``) and the per-request keys set by the middlewares."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

if TYPE_CHECKING:  # named in the keys' type parameters only
    from server.accounts.logins import StaffContext  # noqa: F401
    from server.links.services import LinkHolder  # noqa: F401
    from server.services import Services  # noqa: F401
    from server.web.live.guard import SessionGuard  # noqa: F401
    from server.web.live.hub import SessionHub  # noqa: F401
    from server.web.live.recording import LiveRecording  # noqa: F401

SERVICES = web.AppKey["Services"]("services")
HUB = web.AppKey["SessionHub"]("hub")
RECORDING = web.AppKey["LiveRecording"]("recording")
GUARD = web.AppKey["SessionGuard"]("guard")
SESSIONMAKER = web.AppKey[async_sessionmaker[AsyncSession]]("sessionmaker")

# request-scoped values (request[...])
DB = web.RequestKey[AsyncSession]("db")
STAFF = web.RequestKey["StaffContext"]("staff")
HOLDER = web.RequestKey["LinkHolder"]("holder")

SESSION_COOKIE = "duet_session"
LINK_COOKIE = "duet_link"
CSRF_HEADER = "X-CSRF-Token"
