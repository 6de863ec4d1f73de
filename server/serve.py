"""``duet serve``: check the schema, then run the app until interrupted."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from server.app import AccessLogger, create_app
from server.config import Settings
from server.db.engine import make_engine
from server.db.migrate import pending
from server.errors import CommandError
from server.keys import AppKeys
from server.storage_policies.loader import load_policies

log = logging.getLogger("duet")


def serve(settings: Settings) -> int:
    async def schema_ok() -> bool:
        engine = make_engine(settings.resolved_database_url)
        try:
            return not await pending(engine)
        finally:
            await engine.dispose()

    load_policies(settings.storage_policies)  # a bad policy file stops start-up, naming file and field
    if not asyncio.run(schema_ok()):
        raise CommandError("the database schema is not up to date: run `duet migrate` first")
    keys = AppKeys.ensure(settings.keys_dir)
    app = create_app(settings, keys=keys, background_jobs=True)

    def announce(_: object) -> None:
        print(f"Duet is running at {settings.public_url}  (listening on {settings.host}:{settings.port})")
        print(f"Sign in at {settings.public_url}/login. No staff yet? Run `duet demo` or `duet user create`.")
        print("Stop with Ctrl+C.", flush=True)

    web.run_app(app, host=settings.host, port=settings.port, access_log_class=AccessLogger,
                print=announce, handle_signals=True)
    return 0
