"""Propose staff for a home visit: the nearest available, eligible member of staff first.

Pure logic over frozen inputs; ``server.bookings`` loads the candidates and shows the result to the admin,
who confirms one (the manager or safeguarding lead then authorises the visit, policies/002_*, 003_*).

Rules implemented (each exclusion says which one, for transparency to the admin):

* policies/001_* "Allocate a member of staff from those who have indicated that they can be considered
  for home visits ... determined by travel distance from the home to the nearest available member of
  staff": only opted-in staff; ranked by distance from where they would be coming from (the end location
  of their previous booking that day if any, else their base).
* policies/001_* home visits "will always be at least 30 minutes in length and for individuals".
* policies/000_* "The safeguarding manager may suspend the approval for providing sessions": suspended
  staff are excluded.
* policies/003_* "Prior to a staff member being assigned to undertake a home visit, the school will
  ensure the staff member has the appropriate level of DBS check. An enhanced DBS and barred list check":
  enhanced level required, checked within ``dbs_valid_years`` (organisational renewal period; a DBS
  certificate itself has no expiry date).
* policies/004_* "Training must be refreshed at least every three years": safeguarding training in date
  on the visit day.
* policies/000_* staff "unavailable for work during the day": nobody marked unavailable on the visit day is
  proposed for it (whatever the hour; evening work that day needs a manager, server/bookings/evening.py).
* Available: no booking overlaps the visit, the previous booking's end plus travel time reaches the home
  by the start, and the visit's end plus travel time reaches the next booking by its start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from server.accounts.models import DbsLevel
from server.dates import add_years
from server.errors import InvalidInput
from server.visits.distance import (
    DEFAULT_AVERAGE_SPEED_KMH,
    DistanceModel,
    Location,
    RoadEstimate,
    travel_minutes,
)

MIN_VISIT = timedelta(minutes=30)  # policies/001_*: at least 30 minutes
ENHANCED_LEVELS = frozenset({DbsLevel.ENHANCED, DbsLevel.ENHANCED_BARRED})


@dataclass(frozen=True)
class Booking:
    """Something already in a member of staff's diary. ``location`` None: remote, from their base."""

    start: datetime
    end: datetime
    location: Location | None = None
    label: str = ""

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidInput("booking times must be timezone-aware", field="start")
        if self.end <= self.start:
            raise InvalidInput("a booking must end after it starts", field="end")

    def span(self, tz: tzinfo | None = None) -> str:
        """``HH:MM-HH:MM`` in ``tz`` (the visit's time zone), so reasons read in local time."""
        return f"{self.start.astimezone(tz):%H:%M}-{self.end.astimezone(tz):%H:%M}"


@dataclass(frozen=True)
class Candidate:
    """A member of staff as allocation sees them."""

    staff_id: int
    name: str
    base: Location | None
    opted_in: bool
    approved: bool
    dbs_level: str | None
    dbs_checked_on: date | None
    training_on: date | None
    bookings: tuple[Booking, ...] = ()
    unavailable_days: frozenset[date] = frozenset()  # days marked unavailable for work (policies/000_*)


@dataclass(frozen=True)
class VisitRequest:
    """A home visit to place. ``start`` is local time (the visit day is ``start.date()``)."""

    home: Location
    start: datetime
    duration: timedelta
    clients: int = 1

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise InvalidInput("the visit start must be timezone-aware", field="start")
        if self.duration < MIN_VISIT:
            # policies/001_*: "Home visits will always be at least 30 minutes in length".
            raise InvalidInput("a home visit lasts at least 30 minutes", field="duration")
        if self.clients != 1:
            # policies/001_*: home visits are "for individuals".
            raise InvalidInput("home visits are for one client only", field="clients")

    @property
    def end(self) -> datetime:
        return self.start + self.duration

    @property
    def day(self) -> date:
        return self.start.date()


@dataclass(frozen=True)
class AllocationRules:
    """Tunable numbers (settings); defaults follow the policies where they give one."""

    average_speed_kmh: float = DEFAULT_AVERAGE_SPEED_KMH
    buffer_minutes: int = 5  # parking and walking to the door (policies/000_*: parking must be available)
    training_valid_years: int = 3  # policies/004_*
    dbs_valid_years: int = 3  # organisational renewal practice; the policies set no period
    required_dbs: frozenset[str] = field(default_factory=lambda: frozenset(str(v) for v in ENHANCED_LEVELS))


@dataclass(frozen=True)
class Proposal:
    """An eligible member of staff, with how far they would travel and from where."""

    staff_id: int
    name: str
    distance_km: float
    travel_minutes: int
    coming_from: str  # "base" or "booking 09:00-10:00"
    from_location: Location


@dataclass(frozen=True)
class Exclusion:
    """A member of staff who cannot take the visit, and every reason why."""

    staff_id: int
    name: str
    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


@dataclass(frozen=True)
class Allocation:
    proposals: tuple[Proposal, ...]
    excluded: tuple[Exclusion, ...]

    @property
    def best(self) -> Proposal | None:
        return self.proposals[0] if self.proposals else None


def credential_reasons(c: Candidate, day: date, rules: AllocationRules) -> list[str]:
    """DBS and safeguarding training in date on ``day``; also used for studio and setting sessions."""
    reasons = []
    if c.dbs_level is None or c.dbs_checked_on is None:
        reasons.append("no DBS check recorded")
    elif c.dbs_level not in rules.required_dbs:
        reasons.append(f"DBS check is {c.dbs_level}, an enhanced check is needed")
    elif c.dbs_checked_on > day:
        reasons.append(f"DBS check dated {c.dbs_checked_on} is after the visit day")
    elif (expiry := add_years(c.dbs_checked_on, rules.dbs_valid_years)) <= day:
        reasons.append(f"DBS check out of date since {expiry}")
    if c.training_on is None:
        reasons.append("no safeguarding training recorded")
    elif c.training_on > day:
        reasons.append(f"safeguarding training dated {c.training_on} is after the visit day")
    elif (expiry := add_years(c.training_on, rules.training_valid_years)) <= day:
        reasons.append(f"safeguarding training out of date since {expiry}")
    return reasons


def _schedule(
    c: Candidate, base: Location, req: VisitRequest, distance: DistanceModel, rules: AllocationRules
) -> tuple[list[str], Booking | None]:
    """Reasons the diary rules the visit out, and the booking they would be coming from."""
    tz = req.start.tzinfo
    reasons: list[str] = []
    previous: Booking | None = None
    following: Booking | None = None
    for b in c.bookings:
        if b.start < req.end and req.start < b.end:
            reasons.append(f"busy {b.span(tz)}")
        elif b.end <= req.start and b.end.astimezone(tz).date() == req.day:
            if previous is None or b.end > previous.end:
                previous = b
        elif (
            b.start >= req.end
            and b.start.astimezone(tz).date() == req.day
            and (following is None or b.start < following.start)
        ):
            following = b
    if reasons:
        return reasons, previous

    def minutes(a: Location, b: Location) -> int:
        return travel_minutes(distance.distance_km(a, b), rules.average_speed_kmh, rules.buffer_minutes)

    if previous is not None:
        need = minutes(previous.location or base, req.home)
        if previous.end + timedelta(minutes=need) > req.start:
            reasons.append(f"cannot arrive in time from the booking {previous.span(tz)} ({need} min travel)")
    if following is not None:
        need = minutes(req.home, following.location or base)
        if req.end + timedelta(minutes=need) > following.start:
            reasons.append(f"cannot reach the next booking {following.span(tz)} in time ({need} min travel)")
    return reasons, previous


def propose(
    request: VisitRequest,
    candidates: Iterable[Candidate],
    *,
    distance: DistanceModel | None = None,
    rules: AllocationRules | None = None,
) -> Allocation:
    """Rank the eligible staff for ``request`` by travel distance, and say why the others are excluded.

    Ties in distance go to the lower staff id so the order is stable between runs.
    """
    model: DistanceModel = distance or RoadEstimate()
    rules = rules or AllocationRules()
    ranked: list[tuple[float, int, Proposal]] = []
    excluded: list[Exclusion] = []
    for c in candidates:
        reasons: list[str] = []
        if not c.opted_in:
            reasons.append("not opted in to home visits")
        if not c.approved:
            reasons.append("approval suspended")
        if request.day in c.unavailable_days:
            reasons.append(f"marked unavailable for work on {request.day}")
        if c.base is None:
            reasons.append("no base location recorded")
        reasons += credential_reasons(c, request.day, rules)
        previous: Booking | None = None
        if c.base is not None:
            diary, previous = _schedule(c, c.base, request, model, rules)
            reasons += diary
        if reasons or c.base is None:
            excluded.append(Exclusion(c.staff_id, c.name, tuple(reasons)))
            continue
        origin = (previous.location or c.base) if previous else c.base
        km = model.distance_km(origin, request.home)
        ranked.append(
            (
                km,
                c.staff_id,
                Proposal(
                    staff_id=c.staff_id,
                    name=c.name,
                    distance_km=round(km, 2),
                    travel_minutes=travel_minutes(km, rules.average_speed_kmh, rules.buffer_minutes),
                    coming_from=f"booking {previous.span(request.start.tzinfo)}" if previous else "base",
                    from_location=origin,
                ),
            )
        )
    ranked.sort(key=lambda r: (r[0], r[1]))
    excluded.sort(key=lambda e: e.staff_id)
    return Allocation(tuple(r[2] for r in ranked), tuple(excluded))
