"""Alembic, driven from code: ``duet migrate`` and the test fixtures call ``upgrade``.

Revisions may branch (one per domain issue) and are all applied: the target is ``heads``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["database_url"] = url
    return cfg


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (blocking; runs its own event loop)."""
    command.upgrade(alembic_config(url), "heads")


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)


async def pending(engine: AsyncEngine) -> bool:
    """True when the database is behind the code: ``duet serve`` refuses to start then."""
    heads = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    async with engine.connect() as conn:
        current = await conn.run_sync(lambda sync: set(MigrationContext.configure(sync).get_current_heads()))
    return current != heads
