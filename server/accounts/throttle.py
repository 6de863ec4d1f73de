"""Attempt limits that hold under concurrency and across nodes: sign-in passwords and second-factor codes.

An attempt is *reserved* before the slow or secret check runs and the reservation is committed first, so a
burst of requests sees its own attempts in flight: with a limit of five, at most five checks run however
many requests arrive at once. A failed check keeps its reservation (it is the failure count); a success
gives it back. Each limit's row is taken with an ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` that
locks it (the row lock on PostgreSQL, the write lock on SQLite) until the transaction ends, so two requests
never read the same count. Limits are always taken in the order given, so two requests cannot deadlock.

The window of a limit starts with its first attempt and ends ``window`` later; the attempt that uses the
last place restarts it, so the lock lasts a full window after the last allowed attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from server.accounts.models import LoginThrottle


@dataclass(frozen=True)
class Limit:
    """At most ``max_attempts`` reserved attempts under ``key`` per ``window``."""

    key: str
    max_attempts: int
    window: timedelta


@dataclass(frozen=True)
class Refused:
    """The first limit that is used up, and how long until it has room again."""

    limit: Limit
    retry_after: timedelta


@dataclass(frozen=True)
class Reservation:
    """One attempt taken under every limit; ``filled`` are those this attempt used the last place of."""

    limits: tuple[Limit, ...]
    filled: tuple[Limit, ...]


async def _lock_row(session: AsyncSession, key: str, now: datetime) -> tuple[int, datetime]:
    """Create the row if absent and lock it until the transaction ends; return (attempts, window start)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(LoginThrottle).values(key=key, attempts=0, window_started_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=[LoginThrottle.key],
                                      set_={"attempts": LoginThrottle.attempts})
    row = (await session.execute(
        stmt.returning(LoginThrottle.attempts, LoginThrottle.window_started_at),
        execution_options={"synchronize_session": False})).one()
    return int(row[0]), row[1]


async def reserve(session: AsyncSession, limits: Sequence[Limit], now: datetime) -> Reservation | Refused:
    """Take one attempt under every limit, or none when any is used up (the caller commits either way)."""
    state: list[tuple[Limit, int, datetime]] = []
    for limit in limits:
        attempts, started = await _lock_row(session, limit.key, now)
        if now >= started + limit.window:  # the window is over: start afresh
            attempts, started = 0, now
        state.append((limit, attempts, started))
    for limit, attempts, started in state:
        if attempts >= limit.max_attempts:
            return Refused(limit, started + limit.window - now)
    filled: list[Limit] = []
    for limit, attempts, started in state:
        attempts += 1
        if attempts == limit.max_attempts:
            started = now
            filled.append(limit)
        await session.execute(update(LoginThrottle).where(LoginThrottle.key == limit.key)
                              .values(attempts=attempts, window_started_at=started))
    return Reservation(tuple(limits), tuple(filled))


async def give_back(session: AsyncSession, limits: Sequence[Limit]) -> None:
    """Return one reserved attempt under each limit (a success, or a check that could not run)."""
    for limit in limits:
        await session.execute(update(LoginThrottle)
                              .where(LoginThrottle.key == limit.key, LoginThrottle.attempts > 0)
                              .values(attempts=LoginThrottle.attempts - 1))


async def clear(session: AsyncSession, limits: Sequence[Limit]) -> None:
    """Forget every attempt under these limits (the right password or code was given)."""
    for limit in limits:
        await session.execute(delete(LoginThrottle).where(LoginThrottle.key == limit.key))


async def prune(session: AsyncSession, now: datetime, longest: timedelta) -> int:
    """Delete rows whose window ended long ago, skipping rows another request holds (caller commits)."""
    stale = select(LoginThrottle.key).where(LoginThrottle.window_started_at < now - longest).limit(500)
    if session.get_bind().dialect.name == "postgresql":
        stale = stale.with_for_update(skip_locked=True)
    result = await session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(stale.scalar_subquery())))
    return int(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of a DELETE
