"""The .ics file on its own: what a calendar application reads."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from email.headerregistry import Address

import pytest
from icalendar import Calendar

from server.errors import InvalidInput
from server.mail.calendar import CalendarEvent, Method, booking_uid, build_ics

EVENT = CalendarEvent(
    booking_id=42,
    start=datetime(2026, 6, 2, 16, 0, tzinfo=timezone(timedelta(hours=1))),  # 15:00 UTC
    duration_minutes=45,
    summary="Sam: live video session with Ann Tutor",
    description="Join with your personal link: https://duet.example.org/j/x?a=1,b;c",
    organizer=Address("Duet", "no-reply", "duet.example.org"),
    attendee=Address("Jo Parent", "jo", "example.org"),
    sequence=3,
    stamp=datetime(2026, 5, 1, 9, 0, tzinfo=UTC),
    url="https://duet.example.org/j/x",
)


def parse(data: bytes) -> tuple[Calendar, dict[str, object]]:
    cal = Calendar.from_ical(data)
    [event] = cal.walk("VEVENT")
    return cal, event  # type: ignore[return-value]


def test_request_has_utc_times_uid_sequence_and_people() -> None:
    data = build_ics(EVENT, method=Method.REQUEST, domain="duet.example.org")
    assert b"DTSTART:20260602T150000Z" in data and b"DTEND:20260602T154500Z" in data
    cal, event = parse(data)
    assert str(cal["METHOD"]) == "REQUEST"
    assert str(event["UID"]) == booking_uid(42, "duet.example.org") == "booking-42@duet.example.org"
    assert int(event["SEQUENCE"]) == 3  # type: ignore[call-overload]
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["DESCRIPTION"]) == EVENT.description  # commas and semicolons survive escaping
    assert str(event["ATTENDEE"]) == "mailto:jo@example.org"
    assert event["ATTENDEE"].params["CN"] == "Jo Parent"  # type: ignore[attr-defined]


def test_cancel_keeps_uid_and_marks_cancelled() -> None:
    cal, event = parse(build_ics(EVENT, method=Method.CANCEL, domain="duet.example.org"))
    assert str(cal["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"
    assert str(event["UID"]) == "booking-42@duet.example.org"


def test_bad_events_are_refused() -> None:
    with pytest.raises(InvalidInput, match="timezone-aware"):
        build_ics(
            replace(EVENT, start=datetime(2026, 6, 2, 16, 0)),  # noqa: DTZ001 - naive on purpose
            method=Method.REQUEST,
            domain="duet.example.org",
        )
    with pytest.raises(InvalidInput, match="SEQUENCE"):
        build_ics(replace(EVENT, sequence=-1), method=Method.REQUEST, domain="duet.example.org")
    with pytest.raises(InvalidInput, match="at least one minute"):
        build_ics(replace(EVENT, duration_minutes=0), method=Method.REQUEST, domain="duet.example.org")
