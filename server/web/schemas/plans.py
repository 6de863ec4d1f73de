"""Request and response bodies of the blended plans API (server/web/api/plans.py)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import Field

from server.web.http import Body, OneLine, Out
from server.web.schemas.visits import TimetableEntry


class PlanBody(Body):
    client_id: int = Field(gt=0)
    lead_practitioner_id: int = Field(gt=0)
    title: OneLine = Field(min_length=3, max_length=200)
    goals: str = Field(default="", max_length=4000)  # goals and notes; several lines are fine
    starts_on: date
    ends_on: date


class AttachBody(Body):
    booking_id: int = Field(gt=0)


class ResourceBody(Body):
    title: OneLine = Field(min_length=1, max_length=200)
    url: str | None = Field(default=None, max_length=2000)  # https only, one line: server/plans/rules.py
    note: str | None = Field(default=None, max_length=2000)


class EndBody(Body):
    reason: str = Field(default="", max_length=500)


class ResourceOut(Out):
    id: int
    title: str
    url: str | None
    note: str | None
    added_by_id: int | None
    added_at: datetime


class SummaryOut(Out):
    total: int
    by_kind: dict[str, int]  # booking kind -> how many (cancelled included)
    held: int  # bookings that took place: visits held, live sessions the family attended
    cancelled: int
    blended: bool  # face-to-face and live sessions and a resource, as policies/000_* defines blended provision
    missing: list[str]  # what it lacks to be blended


class PlanBrief(Out):
    id: int
    client_id: int
    lead_practitioner_id: int
    title: str
    starts_on: date
    ends_on: date
    status: str


class PlanOut(PlanBrief):
    goals: str
    created_by_id: int | None
    created_at: datetime
    ended_by_id: int | None
    ended_at: datetime | None
    ended_reason: str | None
    bookings: list[TimetableEntry]  # in time order, with the attendance the timetable shows
    resources: list[ResourceOut]
    summary: SummaryOut
