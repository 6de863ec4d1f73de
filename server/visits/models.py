"""Face-to-face visits: the visit details beside a booking, approved studios, workspace checks, alerts.

A visit is a ``Booking`` (kind home_visit, studio_visit or setting_session) plus one ``Visit`` row holding
what the policies ask to be recorded: where, why a home visit, the account holder's written confirmation,
who authorised it and for what purpose, the lone-working itinerary and check-in/out. Overdue alerts are
rows of their own (``VisitAlert``), unique per visit and stage, so an alert is never sent twice.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class LocationKind(enum.StrEnum):
    """policies/001_*: the order of preference is setting, then music centre, then home."""

    SETTING = "setting"
    MUSIC_CENTRE = "music_centre"
    HOME = "home"
    STUDIO = "studio"


class VisitOutcome(enum.StrEnum):
    HELD = "held"
    NO_SHOW = "no_show"
    CANCELLED_SAFETY = "cancelled_safety"


class AlertStage(enum.StrEnum):
    MANAGER = "manager"
    SAFEGUARDING = "safeguarding"


class Studio(Base):
    """A studio; only approved studios can host a studio visit (policies/000_*)."""

    __tablename__ = "studios"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(500))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    approved: Mapped[bool] = mapped_column(Boolean, default=False)
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    approved_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class Visit(Base):
    """The face-to-face half of a booking."""

    __tablename__ = "visits"

    id: Mapped[intpk]
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), unique=True)
    location_kind: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(500), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    studio_id: Mapped[int | None] = mapped_column(ForeignKey("studios.id"))
    responsible_adult: Mapped[str | None] = mapped_column(String(200))
    preferred_location_available: Mapped[bool] = mapped_column(Boolean, default=False)
    home_reason: Mapped[str | None] = mapped_column(String(2000))
    # The account holder's written confirmation of the home-visit conditions (policies/001_*)
    conditions_confirmed_by: Mapped[str | None] = mapped_column(String(40))  # "guardian:3" / "client:4"
    conditions_evidence: Mapped[str | None] = mapped_column(String(500))
    conditions_recorded_at: Mapped[datetime | None]
    evening: Mapped[bool] = mapped_column(Boolean, default=False)  # the agreement is on the booking
    purpose: Mapped[str | None] = mapped_column(String(2000))
    authorised_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    authorised_at: Mapped[datetime | None]
    # Lone working (policies/002_*, 003_*)
    itinerary_address: Mapped[str | None] = mapped_column(String(500))
    expected_arrival: Mapped[datetime | None]
    expected_return: Mapped[datetime | None] = mapped_column(index=True)
    checked_in_at: Mapped[datetime | None]
    checked_out_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))
    outcome_reason: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]


class VisitRecord(Base):
    """The practitioner's record after a visit (policies/002_* "after the visit"): what happened, and whether
    there are safeguarding concerns. One per visit; a table of its own so that the administration team, who
    read visits, do not read it (the practitioner, managers and the safeguarding lead do)."""

    __tablename__ = "visit_records"

    id: Mapped[intpk]
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), unique=True)
    notes: Mapped[str] = mapped_column(Text)
    safeguarding_concerns: Mapped[bool] = mapped_column(Boolean)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[datetime]


class WorkspaceCheck(Base):
    """A completed workspace checklist (kind "checklist") or a reported change to the home ("change")."""

    __tablename__ = "workspace_checks"

    id: Mapped[intpk]
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"))
    kind: Mapped[str] = mapped_column(String(20))
    answers: Mapped[str] = mapped_column(Text, default="{}")  # JSON {item: bool}
    note: Mapped[str] = mapped_column(String(2000), default="")
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[datetime]
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    confirmed_at: Mapped[datetime | None]


class VisitAlert(Base):
    """One overdue check-out alert step. Unique per (visit, stage): a restart or a second node cannot resend."""

    __tablename__ = "visit_alerts"
    __table_args__ = (UniqueConstraint("visit_id", "stage"),)

    id: Mapped[intpk]
    visit_id: Mapped[int] = mapped_column(ForeignKey("visits.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    recipients: Mapped[str] = mapped_column(String(2000))
    sent_at: Mapped[datetime]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    acknowledged_at: Mapped[datetime | None]
