"""Argon2id password hashing (argon2-cffi's defaults follow RFC 9106's second recommendation).

One hash or check costs about 0.2 s of CPU. Run on the event loop, twelve sign-ins at once stalled every
live session for seconds, so ``Passwords`` runs them in worker threads (argon2 releases the GIL), at most
``workers`` at a time: sign-in waits its turn, nothing else does. Past ``max_waiting`` queued checks a
sign-in is refused with 503 rather than queued for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from server.errors import InvalidInput, Unavailable

MIN_LENGTH = 12
_hasher = PasswordHasher()
T = TypeVar("T")


@cache
def _dummy() -> str:
    """A hash checked when the email is unknown (or has no password), so the work does not reveal accounts.

    Made on first use, not at import: a hash costs about 0.2 s, which every command would pay.
    """
    return _hasher.hash("not-a-real-password-0000")


def check_strength(password: str) -> None:
    if len(password) < MIN_LENGTH:
        raise InvalidInput(f"The password must be at least {MIN_LENGTH} characters long.", field="password")
    if len(password) > 1024:
        raise InvalidInput("The password must be at most 1024 characters long.", field="password")


def hash_password(password: str) -> str:
    """Blocking: call through ``Passwords.hash`` from the event loop."""
    check_strength(password)
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Blocking, and the same work whether or not ``stored`` is None (the dummy hash is checked then)."""
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


class Passwords:
    """Hash and check passwords in worker threads, ``workers`` at a time."""

    def __init__(self, workers: int, max_waiting: int = 64) -> None:
        self.workers = workers
        self.max_waiting = max_waiting
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting = 0

    async def _run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:  # one semaphore per event loop (tests run many)
            self._slots, self._loop = asyncio.Semaphore(self.workers), loop
        if self._waiting >= self.workers + self.max_waiting:
            raise Unavailable("Signing in is busy just now. Try again in a few seconds.", retry_after=5)
        self._waiting += 1
        try:
            async with self._slots:
                return await loop.run_in_executor(None, fn)
        finally:
            self._waiting -= 1

    async def verify(self, stored: str | None, password: str) -> bool:
        return await self._run(lambda: verify_password(stored, password))

    async def hash(self, password: str) -> str:
        check_strength(password)
        return await self._run(lambda: hash_password(password))
