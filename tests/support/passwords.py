"""Watch argon2's password checks from a test: how many ran, where (event loop or worker thread), how long.

``PasswordChecks`` wraps ``argon2.PasswordHasher.verify`` for one test. With ``hold=True`` a check that runs
in a worker thread waits until ``release()``, so a test can look at a burst while its checks are in flight.
A check on the event loop's own thread is never held (that would stall the loop the test runs on): it is
counted in ``on_loop`` instead, which is what the tests assert is zero.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import argon2
import pytest


class PasswordChecks:
    def __init__(self, hold: bool) -> None:
        self.hold = hold
        self.entered = 0
        self.running = 0
        self.most_at_once = 0
        self.on_loop = 0
        self.durations: list[float] = []
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.current_thread()
        self._changed = asyncio.Event()

    def _poke(self) -> None:
        if threading.current_thread() is self._loop_thread:
            self._changed.set()
        else:
            self._loop.call_soon_threadsafe(self._changed.set)

    def poke(self) -> None:
        """Something the test waits on changed (a response arrived)."""
        self._changed.set()

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def verify(hasher: argon2.PasswordHasher, stored: str, password: str) -> Any:
            on_loop = threading.current_thread() is self._loop_thread
            with self._lock:
                self.entered += 1
                self.running += 1
                self.most_at_once = max(self.most_at_once, self.running)
                self.on_loop += on_loop
            self._poke()
            try:
                if self.hold and not on_loop:
                    self._release.wait(timeout=60)  # a safety net only: the test releases long before
                started = time.perf_counter()
                try:
                    return real(hasher, stored, password)
                finally:
                    with self._lock:
                        self.durations.append(time.perf_counter() - started)
            finally:
                with self._lock:
                    self.running -= 1
                self._poke()

        return verify

    def release(self) -> None:
        self._release.set()

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate`` holds (re-checked whenever a check starts or ends, or ``poke``)."""
        while True:
            self._changed.clear()
            if predicate():
                return
            await self._changed.wait()


@contextmanager
def watched_checks(monkeypatch: pytest.MonkeyPatch, *, hold: bool = False) -> Iterator[PasswordChecks]:
    checks = PasswordChecks(hold)
    monkeypatch.setattr(argon2.PasswordHasher, "verify", checks.wrap(argon2.PasswordHasher.verify))
    try:
        yield checks
    finally:
        checks.release()
