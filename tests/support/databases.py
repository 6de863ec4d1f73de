"""Migrated test databases: an SQLite file or a PostgreSQL database per test, cloned from a template.

The schema is built once per run with the real Alembic migrations (so the migrations are what is tested),
then copied for each test: a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

import asyncpg
import pytest

from server.db.migrate import upgrade

PG_URL = os.environ.get("DUET_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI") == "true"


def pg_dsn(database: str) -> str:
    base = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    return base.rsplit("/", 1)[0] + "/" + database


def async_url(dsn: str) -> str:
    return dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


def unavailable(reason: str) -> None:
    """A missing server fails the run in CI and skips locally."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing server is a failure)")
    pytest.skip(reason)


class Templates:
    """Per-run templates, built on first use."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.sqlite: Path | None = None
        self.pg_name: str | None = None
        self.pg_error: str | None = None

    def sqlite_template(self) -> Path:
        if self.sqlite is None:
            path = self.folder / "template.db"
            upgrade(f"sqlite+aiosqlite:///{path}")
            self.sqlite = path
        return self.sqlite

    def pg_template(self) -> str:
        if self.pg_name is None and self.pg_error is None:
            name = f"duet_tpl_{os.getpid()}_{secrets.token_hex(3)}"
            try:
                asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
            except (OSError, asyncpg.PostgresError) as exc:
                self.pg_error = f"PostgreSQL not reachable at {PG_URL}: {exc}"
            else:
                upgrade(async_url(pg_dsn(name)))
                self.pg_name = name
        if self.pg_error:
            unavailable(self.pg_error)
        assert self.pg_name is not None
        return self.pg_name

    def close(self) -> None:
        if self.pg_name:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG_URL.replace("postgresql+asyncpg://", "postgresql://"), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def fresh_database(templates: Templates, backend: str, tmp_path: Path) -> tuple[str, str | None]:
    """A migrated, empty database: (SQLAlchemy URL, PostgreSQL database name to drop afterwards)."""
    if backend == "sqlite":
        path = tmp_path / "duet.db"
        shutil.copyfile(await asyncio.to_thread(templates.sqlite_template), path)
        return f"sqlite+aiosqlite:///{path}", None
    template = await asyncio.to_thread(templates.pg_template)
    name = f"duet_t_{secrets.token_hex(5)}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return async_url(pg_dsn(name)), name


async def drop_database(name: str) -> None:
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
