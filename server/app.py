"""The application factory: the only place where the parts are wired together (STYLE.md #7)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from sqlalchemy.ext.asyncio import AsyncEngine

from server.bookings.notify import BookingNotifier
from server.bookings.reminders import Reminders, reminders_context
from server.checks.service import CheckService, device_checked
from server.clock import Clock, SystemClock
from server.config import Settings
from server.db.engine import make_engine, make_sessionmaker
from server.keys import AppKeys
from server.mail.running import sender_context
from server.media import MediaRouter
from server.media.pool import WorkerPool
from server.recording.live import LiveRecording
from server.recording.review import ReviewService
from server.recording.service import RecordingService
from server.recording.setup import spool_from_settings, store_from_settings, wrapper_from_settings
from server.retention.running import retention_context
from server.safeguarding.watch import watch_context
from server.services import Services
from server.signalling import socket as signalling_socket
from server.signalling.hub import SessionHub
from server.web import (
    api_auth,
    api_bookings,
    api_checks,
    api_consent,
    api_mail,
    api_media,
    api_people,
    api_plans,
    api_recordings,
    api_safeguarding,
    api_staff,
    api_visits,
    openapi,
    pages,
)
from server.web.access import check_routes
from server.web.keys import HUB, MEDIA, REVIEW, SERVICES, SESSIONMAKER
from server.web.middlewares import access, database, errors, loggable_path, security_headers
from server.web.pages_render import WEB_ROOT

ENGINE = web.AppKey[AsyncEngine]("engine")
RECORDING = web.AppKey[LiveRecording]("recording")
class AccessLogger(AbstractAccessLogger):
    """One line per request, with link tokens cut out: a token in a log is a key left on the table."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        path = loggable_path(request.rel_url.path)
        self.logger.info("%s %s %s %d %.1fms", request.remote, request.method, path, response.status, time * 1000)

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


def create_app(settings: Settings, *, clock: Clock | None = None, engine: AsyncEngine | None = None,
               keys: AppKeys | None = None, background_jobs: bool = False) -> web.Application:
    """Build the Duet web application.

    Args:
        settings: the loaded settings.
        clock: injected time (tests pass a FakeClock).
        engine: an already open engine (tests share one); otherwise one is opened from the settings
            and closed on shutdown.
        keys: the app secret; otherwise read or generated under ``<home>/keys``.
        background_jobs: run the outbox sender, reminders and the daily retention job (``duet serve``);
            tests drive their own instead.
    """
    clock = clock or SystemClock()
    keys = keys or AppKeys.ensure(settings.keys_dir)
    app = web.Application(middlewares=[security_headers, errors, database, access], client_max_size=1024 * 1024)
    app[SERVICES] = Services.build(settings, clock, keys)
    app[api_checks.CHECKS] = CheckService(clock, app[SERVICES].audit)
    app[api_checks.PROBES] = set()
    app[api_checks.LOOPBACKS] = {}

    async def open_database(app: web.Application) -> AsyncIterator[None]:
        own = engine is None
        app[ENGINE] = engine or make_engine(settings.resolved_database_url)
        app[SESSIONMAKER] = make_sessionmaker(app[ENGINE])
        yield
        if own:
            await app[ENGINE].dispose()

    async def open_media(app: web.Application) -> AsyncIterator[None]:
        # Media timing (connect deadlines, keyframe rate limits) follows real time even under a FakeClock.
        if settings.media_workers:  # rooms in worker processes, one per core by default
            pool = WorkerPool(settings.media_workers, settings.ice_server_list(), clock=SystemClock())
            await pool.start()
            app[MEDIA] = cast(MediaRouter, pool)  # the MediaRouter API, proxied (tests/media/test_workers.py)
        else:
            app[MEDIA] = MediaRouter(settings.ice_server_list(), clock=SystemClock(), media_clock=SystemClock())
        app[HUB] = SessionHub(app[MEDIA], app[SERVICES], app[SESSIONMAKER])
        yield
        await app[HUB].close()
        await app[MEDIA].close()

    async def open_recording(app: web.Application) -> AsyncIterator[None]:
        # Sealing every 2 s and upload retries follow real time, like the media they carry.
        media_clock = SystemClock()
        store = store_from_settings(settings)
        spool = spool_from_settings(settings, store, media_clock)
        spool.start()
        service = RecordingService(media_clock, app[SERVICES].audit, app[SERVICES].consent,
                                   wrapper_from_settings(settings), spool, app[SERVICES].erase_dates)
        await service.recover(app[SESSIONMAKER])  # a crash left nothing "active"
        app[REVIEW] = ReviewService(store, wrapper_from_settings(settings, can_unwrap=True), app[SERVICES].audit)
        app[RECORDING] = LiveRecording(app[HUB], service, app[SERVICES].consent, app[SESSIONMAKER], clock, settings)
        yield
        await app[RECORDING].close()
        await service.close()
        await spool.close()

    app.cleanup_ctx.append(open_database)
    app.cleanup_ctx.append(open_media)
    app.cleanup_ctx.append(open_recording)

    async def end_sessions(app: web.Application) -> None:  # before aiohttp waits for open WebSockets
        await app[HUB].close()
        probes: set[asyncio.Task[None]] = app[api_checks.PROBES]
        for probe in list(probes):  # device-check rooms close with the server
            probe.cancel()

    app.on_shutdown.append(end_sessions)
    app.cleanup_ctx.append(watch_context(app[SERVICES], lambda: app[SESSIONMAKER]))  # overdue visits, concerns
    if background_jobs:
        app.cleanup_ctx.append(retention_context(settings, clock, app[SERVICES].audit, lambda: app[SESSIONMAKER]))
        app.cleanup_ctx.append(sender_context(settings, clock, app[SERVICES].audit, lambda: app[SESSIONMAKER]))
        reminders = Reminders(clock, BookingNotifier(settings, clock, app[SERVICES].links, app[SERVICES].consent),
                              device_checked=device_checked)
        app.cleanup_ctx.append(reminders_context(reminders, lambda: app[SESSIONMAKER]))
    for table in (pages.routes, api_auth.routes, api_people.routes, api_staff.routes, api_bookings.routes,
                  api_visits.routes, api_plans.routes, api_safeguarding.routes, api_media.routes,
                  signalling_socket.routes, api_consent.routes, api_mail.routes, api_recordings.routes,
                  api_checks.routes, openapi.routes):
        app.add_routes(table)
    app.router.add_static("/static/", Path(WEB_ROOT) / "static", append_version=False)
    check_routes(app)
    return app
