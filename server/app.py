"""The application factory: the web application over the services the composition root built.

``create_app`` asks ``server.services.Services`` for every service (built once), adds the web layer's own
parts (the live session hub and its recording toggle, the routes and middlewares) and runs the lifecycle:
the database, the recording spool and crash recovery, the domains' periodic work, and on shutdown the
sessions ended and every service closed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy.ext.asyncio import AsyncEngine

from server.clock import Clock, LoopingCall, SystemClock
from server.config import Settings
from server.db.engine import make_engine, make_sessionmaker
from server.keys import AppKeys
from server.services import Services
from server.web import openapi, pages
from server.web.access import check_routes
from server.web.api import (
    auth,
    bookings,
    clients,
    concerns,
    consents,
    guardians,
    holds,
    mail,
    media,
    plans,
    recordings,
    staff,
    studios,
    visits,
)
from server.web.family import check, concern, consent, lobby
from server.web.keys import GUARD, HUB, RECORDING, SERVICES, SESSIONMAKER
from server.web.live import socket as live_socket
from server.web.live.guard import SessionGuard
from server.web.live.hub import SessionHub
from server.web.live.recording import LiveRecording
from server.web.middlewares import access, database, errors, loggable_path, security_headers
from server.web.pages_render import WEB_ROOT

ENGINE = web.AppKey[AsyncEngine]("engine")
TASKS = web.AppKey[dict[str, LoopingCall]]("tasks")  # the running periodic work, by name


class AccessLogger(AbstractAccessLogger):
    """One line per request, with link tokens cut out: a token in a log is a key left on the table."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = loggable_path(request.rel_url.path)
        self.logger.info("%s %s %s %d %.1fms", request.remote, request.method, path, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


ROUTES = (
    pages.routes, openapi.routes,
    # /api/v1/<prefix>: one module each
    auth.routes, bookings.routes, clients.routes, concerns.routes, consents.routes, guardians.routes,
    holds.routes, mail.routes, media.routes, plans.routes, recordings.routes, staff.routes, studios.routes,
    visits.routes,
    # /s/{booking_id}/...: the family's side of a booking, and the live session's WebSocket
    lobby.routes, consent.routes, check.routes, concern.routes, live_socket.routes,
)


def create_app(settings: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None,
               keys: AppKeys | None = None, background_jobs: bool = False) -> web.Application:
    """Build the Duet web application.

    Args:
        settings: the loaded settings.
        clock: injected time (tests pass a FakeClock); media always runs on real time.
        engine: an already open engine (tests share one); otherwise one is opened from the settings
            and closed on shutdown.
        keys: the app secret; otherwise read or generated under ``<home>/keys``.
        background_jobs: run every domain's periodic work (``duet serve``): overdue-visit alerts, concern
            escalation, the outbox sender, reminders, the daily retention run. Tests drive their own.
    """
    clock = clock or SystemClock()
    keys = keys or AppKeys.ensure(settings.keys_dir)
    app = web.Application(middlewares=[security_headers, errors, database, access], client_max_size=1024 * 1024)
    services = app[SERVICES] = Services.build(settings, clock, keys)

    async def open_database(app: web.Application) -> AsyncIterator[None]:
        own = engine is None
        app[ENGINE] = engine or make_engine(settings.resolved_database_url)
        app[SESSIONMAKER] = make_sessionmaker(app[ENGINE])
        yield
        if own:
            await app[ENGINE].dispose()

    async def open_live_sessions(app: web.Application) -> AsyncIterator[None]:
        sessionmaker = app[SESSIONMAKER]
        await services.start()  # media worker processes, the spool's uploads
        await services.recording.recover(sessionmaker)  # a crash left nothing "active"
        app[HUB] = SessionHub(services.media, sessionmaker, clock=clock, media_clock=services.media_clock,
                              audit=services.audit, attendance=services.attendance, chat=services.chat,
                              bookings=services.bookings, late_grace_minutes=settings.late_grace_minutes)
        app[RECORDING] = LiveRecording(app[HUB], services.recording, services.events, sessionmaker, clock,
                                       settings)
        app[GUARD] = SessionGuard(app[HUB], services.events, services.links, services.logins,
                                  services.media_clock)
        app[GUARD].start()
        yield
        await app[GUARD].close()
        await app[RECORDING].close()
        await app[HUB].close()
        await services.close()

    async def run_periodic_work(app: web.Application) -> AsyncIterator[None]:
        work = services.periodic(app[SESSIONMAKER]) if background_jobs else []
        app[TASKS] = {p.name: clock.every(p.interval, p.run, name=p.name, run_now=p.run_now) for p in work}
        yield
        for call in app[TASKS].values():
            await call.stop()
        if background_jobs:  # the audit head is anchored outside the database once more as the node stops
            async with app[SESSIONMAKER]() as session:
                await services.audit.checkpoint(session)

    app.cleanup_ctx.append(open_database)
    app.cleanup_ctx.append(open_live_sessions)
    app.cleanup_ctx.append(run_periodic_work)

    async def end_sessions(app: web.Application) -> None:  # before aiohttp waits for open WebSockets
        await app[HUB].close()
        await services.probes.close()  # device-check rooms close with the server

    app.on_shutdown.append(end_sessions)
    for table in ROUTES:
        app.add_routes(table)
    app.router.add_static("/static/", Path(WEB_ROOT) / "static", append_version=False)
    check_routes(app)
    return app
