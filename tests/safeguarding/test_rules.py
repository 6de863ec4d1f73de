"""The safeguarding rules as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.safeguarding import rules

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_concern_escalates_once_when_24_hours_pass_undiscussed() -> None:
    due = T0 + rules.CONCERN_DISCUSS_WITHIN
    assert not rules.concern_overdue(due, None, None, due - timedelta(seconds=1))
    assert rules.concern_overdue(due, None, None, due)
    assert not rules.concern_overdue(due, T0, None, due)
    assert not rules.concern_overdue(due, None, due, due + timedelta(hours=1))
