"""Safeguarding rules as pure functions of their inputs and the time (no database, no clock)."""

from __future__ import annotations

from datetime import datetime, timedelta

CONCERN_DISCUSS_WITHIN = timedelta(hours=24)  # policies/000_*, 001_*


def concern_overdue(discuss_by: datetime, discussed_at: datetime | None, escalated_at: datetime | None,
                    now: datetime) -> bool:
    """policies/001_*: an issue is discussed with a manager within 24 hours; escalate once when it is not."""
    return discussed_at is None and escalated_at is None and now >= discuss_by
