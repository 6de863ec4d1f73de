"""The session as an iCalendar (.ics) attachment, so it lands in the reader's calendar.

iTIP (RFC 5546): one stable UID per booking and a SEQUENCE that grows with each
change let calendar apps update or cancel the same event instead of adding a new
one. METHOD:REQUEST for an invitation or change, METHOD:CANCEL with
STATUS:CANCELLED for a cancellation (RFC 5546 sections 3.2.2 and 3.2.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from enum import StrEnum

from icalendar import Calendar, Event, vCalAddress, vText

from server.errors import InvalidInput
from server.mail.headers import check_domain

PRODID = "-//Duet//Duet session booking//EN"


class Method(StrEnum):
    REQUEST = "REQUEST"
    CANCEL = "CANCEL"


@dataclass(frozen=True)
class CalendarEvent:
    """What the calendar entry says; times are aware and stored in UTC."""

    booking_id: int
    start: datetime
    duration_minutes: int
    summary: str
    description: str
    organizer: Address
    attendee: Address
    sequence: int
    stamp: datetime
    url: str | None = None


def booking_uid(booking_id: int, domain: str) -> str:
    """The UID every email about one booking shares: ``booking-<id>@<domain>``."""
    return f"booking-{booking_id}@{check_domain(domain)}"


def _cal_address(addr: Address, role: str | None = None) -> vCalAddress:
    cal = vCalAddress(f"mailto:{addr.addr_spec}")
    if addr.display_name:
        cal.params["cn"] = vText(addr.display_name)
    if role:
        cal.params["role"] = vText(role)
        cal.params["partstat"] = vText("NEEDS-ACTION")
        cal.params["rsvp"] = vText("FALSE")  # no replies to a no-reply address
    return cal


def build_ics(event: CalendarEvent, *, method: Method, domain: str) -> bytes:
    """Serialise ``event`` as a one-event VCALENDAR for ``method``."""
    if event.start.tzinfo is None or event.stamp.tzinfo is None:
        raise InvalidInput("Calendar times must be timezone-aware.", field="start")
    if event.sequence < 0:
        raise InvalidInput("The calendar SEQUENCE cannot be negative.", field="sequence")
    if event.duration_minutes <= 0:
        raise InvalidInput("A session must last at least one minute.", field="duration_minutes")
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method.value)
    vevent = Event()
    start = event.start.astimezone(UTC)
    vevent.add("uid", booking_uid(event.booking_id, domain))
    vevent.add("dtstamp", event.stamp.astimezone(UTC))
    vevent.add("dtstart", start)
    vevent.add("dtend", start + timedelta(minutes=event.duration_minutes))
    vevent.add("sequence", event.sequence)
    vevent.add("summary", event.summary)
    vevent.add("description", event.description)
    if event.url:
        vevent.add("url", event.url)
    vevent.add("organizer", _cal_address(event.organizer))
    vevent.add("attendee", _cal_address(event.attendee, role="REQ-PARTICIPANT"))
    vevent.add("status", "CANCELLED" if method is Method.CANCEL else "CONFIRMED")
    vevent.add("transp", "OPAQUE")
    cal.add_component(vevent)
    return bytes(cal.to_ical())
