"""Request and response bodies of the visits API (server/web/api/visits.py)."""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, Field

from server.bookings.models import BookingKind
from server.visits.models import LocationKind
from server.visits.records import AfterVisit
from server.web.http import Body, Out


class ConditionsBody(Body):
    confirmed_by: str = Field(pattern=r"^(guardian|client):\d{1,12}$")
    parking: bool
    accessible: bool
    window_or_open_door: bool
    carer_on_site: bool
    evidence: str = Field(max_length=500)


class VisitBody(Body):
    kind: BookingKind
    practitioner_id: int = Field(gt=0)
    client_id: int = Field(gt=0)
    starts_at: AwareDatetime
    duration_minutes: int = Field(ge=5, le=240)
    guardian_ids: list[int] = Field(default_factory=list, max_length=10)
    invite_client: bool = False
    location: LocationKind | None = None
    address: str = Field(default="", max_length=500)
    clients: int = Field(default=1, ge=1, le=30)
    preferred_location_available: bool = False
    home_reason: str | None = Field(default=None, max_length=2000)
    conditions: ConditionsBody | None = None
    studio_id: int | None = Field(default=None, gt=0)
    responsible_adult: str | None = Field(default=None, max_length=200)


class PurposeBody(Body):
    purpose: str = Field(min_length=5, max_length=2000)


class ChecklistBody(Body):
    answers: dict[str, bool]
    note: str = Field(default="", max_length=2000)


class ItineraryBody(Body):
    address: str | None = Field(default=None, max_length=500)
    expected_arrival: AwareDatetime
    expected_return: AwareDatetime


class AlertOut(Out):
    stage: str
    sent_at: datetime
    recipients: str
    acknowledged_by_id: int | None
    acknowledged_at: datetime | None


class VisitOut(Out):
    booking_id: int
    kind: str
    status: str
    practitioner_id: int
    client_id: int
    starts_at: datetime
    ends_at: datetime
    location_kind: str
    address: str
    studio_id: int | None
    responsible_adult: str | None
    home_reason: str | None
    conditions_confirmed_by: str | None
    evening: bool
    evening_agreed_by_id: int | None
    purpose: str | None
    authorised_by_id: int | None
    expected_arrival: datetime | None
    expected_return: datetime | None
    checked_in_at: datetime | None
    checked_out_at: datetime | None
    outcome: str | None
    outcome_reason: str | None
    blocked_reason: str | None
    alerts: list[AlertOut]


class ProposalOut(Out):
    staff_id: int
    name: str
    distance_km: float
    travel_minutes: int
    coming_from: str


class ExclusionOut(Out):
    staff_id: int
    name: str
    reasons: list[str]


class ProposalsOut(Out):
    proposals: list[ProposalOut]
    excluded: list[ExclusionOut]


class CheckOut(Out):
    id: int
    client_id: int
    booking_id: int | None
    kind: str
    recorded_at: datetime
    confirmed_by_id: int | None
    confirmed_at: datetime | None


class AttendeeOut(Out):
    """Someone who joined a live session: first join, and last leave (None: still there)."""

    subject: str
    name: str
    role: str
    first_joined_at: datetime
    last_left_at: datetime | None


class TimetableEntry(Out):
    booking_id: int
    kind: str
    status: str
    practitioner_id: int
    client_id: int
    starts_at: datetime
    ends_at: datetime
    location_kind: str | None
    # visits: held, no_show, cancelled_safety, or "checked in"; live sessions: "attended" (the family joined),
    # "did not attend" (joining closed with nobody from the family), or None (not yet, or not to take place)
    attendance: str | None
    attendees: list[AttendeeOut] | None = None  # live sessions: everyone who joined; None for visits
    plan_id: int | None = None  # the blended plan the booking belongs to (server/plans)
    plan_title: str | None = None


class OverdueOut(VisitOut):
    practitioner: str
    phone: str | None
    vehicle: str | None


class AfterVisitBody(Body):
    notes: str = Field(min_length=10, max_length=20000)
    safeguarding_concerns: bool


class AfterVisitOut(Out):
    booking_id: int
    notes: str
    safeguarding_concerns: bool
    recorded_by_id: int
    recorded_at: datetime
    concern_ids: list[int]  # concerns you raised about this visit
    next_step: str | None  # with concerns: raise one (and how), or which one is raised

    @classmethod
    def of(cls, made: AfterVisit) -> AfterVisitOut:
        r = made.record
        return cls(booking_id=made.booking_id, notes=r.notes, safeguarding_concerns=r.safeguarding_concerns,
                   recorded_by_id=r.recorded_by_id, recorded_at=r.recorded_at, concern_ids=made.concern_ids,
                   next_step=made.next_step)
