"""An installation from before issue 14 upgrades: its unkeyed chain is kept, continued with the key, sealed."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from server.audit.log import Actor, AuditLog, event_hash
from server.clock import FakeClock
from server.db.engine import make_engine, make_sessionmaker
from server.db.migrate import alembic_config, upgrade
from server.keys import AppKeys
from tests.support.databases import _admin, async_url, drop_database, pg_dsn, unavailable

BEFORE = ("0005", "0007", "0011")  # every head of the history before revision 0014_signin


@pytest.fixture
async def old_database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database migrated only as far as before issue 14."""
    if backend == "sqlite":
        url, name = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}", None
    else:
        name = f"duet_old_{secrets.token_hex(4)}"
        try:
            await _admin(f'CREATE DATABASE "{name}"')
        except OSError as exc:
            unavailable(f"PostgreSQL not reachable: {exc}")
        url = async_url(pg_dsn(name))
    await asyncio.to_thread(lambda: [command.upgrade(alembic_config(url), head) for head in BEFORE])
    yield url
    if name:
        await drop_database(name)


async def test_an_old_chain_and_locked_account_survive_the_upgrade(old_database: str, tmp_path: Path) -> None:
    at = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    engine = make_engine(old_database)
    async with engine.begin() as conn:
        await conn.execute(text(
            "INSERT INTO staff (id, name, email, roles, status, failed_logins, locked_until, created_at, is_therapist, "
            "home_visits_opt_in, phone, vehicle) VALUES (1, 'Ann', 'ann@school.example.org', 'admin', 'approved', 3, "
            ":at, :at, false, false, '', '')"), {"at": at})
        prev = "0" * 64
        for seq in (1, 2, 3):
            digest = event_hash(prev, seq, at, "cli", "staff.created", "staff:1", "{}", "cli")
            await conn.execute(text(
                "INSERT INTO audit_events (seq, at, actor, action, target, details, source, prev_hash, hash) "
                "VALUES (:seq, :at, 'cli', 'staff.created', 'staff:1', '{}', 'cli', :prev, :hash)"),
                {"seq": seq, "at": at, "prev": prev, "hash": digest})
            prev = digest
        await conn.execute(text("INSERT INTO audit_head (id, seq, last_hash) VALUES (1, 3, :h)"), {"h": prev})
    await engine.dispose()

    await asyncio.to_thread(upgrade, old_database)

    engine = make_engine(old_database)
    audit = AuditLog(FakeClock(at), AppKeys.ensure(tmp_path / "keys"), tmp_path / "anchors")
    async with make_sessionmaker(engine)() as s:
        before = await audit.verify(s)
        assert before.ok and before.events == 3 and before.legacy_events == 3, before.problem
        await audit.checkpoint(s)  # the daily job does this at start-up
        await audit.record(s, Actor("cli", "cli"), "x.done", "x:1")
        await s.commit()
        after = await audit.verify(s)
        assert after.ok and after.events == 4 and after.legacy_events == 3 and after.checkpoints == 1
        assert (await s.execute(text("SELECT email, totp_last_step FROM staff"))).one() == (
            "ann@school.example.org", None)
    await engine.dispose()
