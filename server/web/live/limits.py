"""How many messages one person may send a live session: a token bucket kept per person, not per socket,
so a reconnect does not start a fresh allowance."""

from __future__ import annotations

from server.clock import Clock

RATE_PER_SECOND = 20.0
BURST = 40.0


class RateLimiter:
    """A token bucket on the media clock: message timing is real time, even under a fake Clock."""

    def __init__(self, clock: Clock, rate: float = RATE_PER_SECOND, burst: float = BURST) -> None:
        self.clock = clock
        self.rate, self.burst, self.tokens = rate, burst, burst
        self.last = clock.monotonic()
        self.refused = 0

    def allow(self) -> bool:
        now = self.clock.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.refused += 1
        return False
