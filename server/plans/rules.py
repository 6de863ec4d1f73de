"""The rules of a blended plan, as pure functions: resource addresses and what makes provision blended."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from server.bookings.attendance import ATTENDED
from server.bookings.models import BookingKind, BookingStatus
from server.visits.models import VisitOutcome

MAX_URL = 2000
# Timetable attendance words meaning the session took place: a visit checked out as held, a live session
# the family joined (server/bookings/attendance.py).
HELD = frozenset({VisitOutcome.HELD.value, ATTENDED})
# Control characters, any whitespace (a space has no place in a URL) and Unicode line separators.
_NOT_ONE_LINE = re.compile(r"[\x00-\x20\x7f\x85\xa0\u2028\u2029]")


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a resource link, or None.

    Families open these links: only https (no http, javascript:, data: or file: that a page could be
    tricked into running), one line (it goes into pages and emails as it is), a host, and no user name
    or password inside it.
    """
    if not url:
        return "give the address of the resource"
    if len(url) > MAX_URL:
        return f"the address is longer than {MAX_URL} characters"
    if _NOT_ONE_LINE.search(url):
        return "the address must be one line, without spaces, line breaks or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "the address is not a valid URL"
    if parts.scheme.lower() != "https":
        return "the address must start with https://"
    if not parts.hostname:
        return "the address has no host name"
    if parts.username is not None or parts.password is not None:
        return "the address must not carry a user name or password"
    if port == 0:
        return "the address has an invalid port"
    return None


def missing_parts(kinds: Iterable[BookingKind], resources: int) -> list[str]:
    """What the plan still lacks to be blended provision as policies/000_* defines it: face-to-face
    sessions, live video or audio sessions, and recorded or written learning resources."""
    kinds = set(kinds)
    missing = []
    if not any(not k.is_remote for k in kinds):
        missing.append("a face-to-face session (home visit, studio visit or session in a setting)")
    if not any(k.is_remote for k in kinds):
        missing.append("a live video or audio session")
    if resources == 0:
        missing.append("a learning resource")
    return missing


@dataclass(frozen=True)
class Summary:
    total: int
    by_kind: dict[str, int]
    held: int
    cancelled: int
    missing: list[str]


def summarise(bookings: Iterable[tuple[str, str, str | None]], resources: int) -> Summary:
    """Counts over the plan's bookings, given as (kind, status, timetable attendance).

    Cancelled bookings are counted but do not make the provision blended: a plan whose only visit was
    cancelled still lacks a face-to-face session.
    """
    rows = list(bookings)
    return Summary(
        total=len(rows),
        by_kind=dict(Counter(kind for kind, _, _ in rows)),
        held=sum(1 for _, _, attendance in rows if attendance in HELD),
        cancelled=sum(1 for _, status, _ in rows if status == BookingStatus.CANCELLED),
        missing=missing_parts((BookingKind(kind) for kind, status, _ in rows if status != BookingStatus.CANCELLED),
                              resources),
    )
