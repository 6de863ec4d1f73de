"""The rules a booking must keep, as pure functions of their inputs (no database, no clock).

``BookingService`` gathers the facts and calls these; each refuses with a ``DuetError`` naming the field, in
words for the admin who made the booking. Sources: policies/000_* (a child joins with a guardian; a client
needing 1:1 support comes with their responsible adult; no evening work after a day unavailable without a
manager), policies/002_*, 003_* (no evening home visit without a manager).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from server.errors import Conflict, InvalidInput, PolicyViolation

MIN_DURATION_MINUTES = 5
MAX_DURATION_MINUTES = 240


def is_evening(start_local: datetime, duration_minutes: int, evening_hour: int) -> bool:
    """policies/000_*, 003_*: running past ``evening_hour`` (local time) is out of hours."""
    end_local = start_local + timedelta(minutes=duration_minutes)
    limit = datetime.combine(start_local.date(), time(evening_hour), start_local.tzinfo)
    return end_local > limit


def check_time(starts_at: datetime, duration_minutes: int, now: datetime, *, allow_started: bool = False) -> None:
    """A start with its zone, not in the past (the demo may book one that began up to 5 minutes ago), and a
    duration in range.

    Raises:
        InvalidInput: naming ``starts_at`` or ``duration_minutes``.
    """
    if starts_at.tzinfo is None:
        raise InvalidInput("Give the start time with its time zone offset.", field="starts_at")
    if starts_at < now - (timedelta(minutes=5) if allow_started else timedelta(0)):
        raise InvalidInput("The session would start in the past. Choose a later start time.", field="starts_at")
    if not MIN_DURATION_MINUTES <= duration_minutes <= MAX_DURATION_MINUTES:
        raise InvalidInput(f"The duration must be between {MIN_DURATION_MINUTES} and {MAX_DURATION_MINUTES} "
                           "minutes.", field="duration_minutes")


@dataclass(frozen=True)
class Slot:
    """Another booking's time, to look for a clash."""

    booking_id: int
    starts_at: datetime
    ends_at: datetime


def check_no_clash(who: str, starts_at: datetime, duration_minutes: int, others: Iterable[Slot]) -> None:
    """Refuse a time that overlaps another live booking of the same person (``who`` names them).

    Raises:
        Conflict: naming the booking it clashes with.
    """
    ends_at = starts_at + timedelta(minutes=duration_minutes)
    for other in others:
        if other.starts_at < ends_at and other.ends_at > starts_at:
            raise Conflict(f"{who} already has booking {other.booking_id} at that time.", field="starts_at")


def clash_window(starts_at: datetime, duration_minutes: int) -> tuple[datetime, datetime]:
    """The range of start times another booking may have and still overlap this one."""
    return starts_at - timedelta(minutes=MAX_DURATION_MINUTES), starts_at + timedelta(minutes=duration_minutes)


@dataclass(frozen=True)
class Invitees:
    """Who is asked to join, and what is known of the client on the session day."""

    client_name: str
    adult: bool
    needs_one_to_one_support: bool
    client_has_email: bool
    guardians: int  # linked, approved guardians invited
    invite_client: bool


def check_invitees(facts: Invitees) -> None:
    """A child joins with a guardian; an adult may join in their own right (with an email to send the link
    to); a client needing 1:1 support comes with their responsible adult (policies/000_*).

    Raises:
        PolicyViolation, InvalidInput: naming ``guardian_ids`` or ``invite_client``.
    """
    if facts.invite_client:
        if not facts.adult:
            raise PolicyViolation(f"{facts.client_name} is under 18 on the day; invite a guardian instead.",
                                  field="invite_client", rule="child_joins_with_guardian")
        if not facts.client_has_email:
            raise InvalidInput(f"{facts.client_name} has no email address to send the link to.",
                               field="invite_client")
    if not facts.guardians and not facts.invite_client:
        raise InvalidInput("Invite at least one guardian or the adult client.", field="guardian_ids")
    if facts.needs_one_to_one_support and not facts.guardians:
        raise PolicyViolation(f"{facts.client_name} needs 1:1 support: invite the responsible adult agreed for the "
                              "pastoral role (a linked guardian or carer) as well.", field="guardian_ids",
                              rule="one_to_one_support")
