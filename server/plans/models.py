"""Blended plans: provision type 4 of policies/000_* for one client, led by one practitioner.

A plan names the client's blended learning or therapy (title, goals, dates) and groups bookings of any kind
(live video or audio sessions, home and studio visits, sessions in settings) with the recorded and written
resources the client uses between sessions. The bookings themselves stay where they are: a plan only points
at them (``PlanBooking``), and a booking belongs to at most one plan (unique ``booking_id``).
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class BlendedPlan(Base):
    __tablename__ = "blended_plans"
    __table_args__ = (CheckConstraint("ends_on >= starts_on", name="dates_in_order"),)

    id: Mapped[intpk]
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    lead_practitioner_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    goals: Mapped[str] = mapped_column(Text, default="")
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    status: Mapped[str] = mapped_column(String(20), default=PlanStatus.ACTIVE)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime]
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    ended_at: Mapped[datetime | None]
    ended_reason: Mapped[str | None] = mapped_column(String(500))


class PlanBooking(Base):
    """One booking in one plan. Unique ``booking_id``: two plans cannot claim a booking, even at once."""

    __tablename__ = "blended_plan_bookings"

    id: Mapped[intpk]
    plan_id: Mapped[int] = mapped_column(ForeignKey("blended_plans.id", ondelete="CASCADE"), index=True)
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), unique=True)
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    added_at: Mapped[datetime]


class PlanResource(Base):
    """A learning resource of the plan: a practice recording, sheet music, written notes (policies/000_*)."""

    __tablename__ = "blended_plan_resources"
    __table_args__ = (CheckConstraint("url IS NOT NULL OR note IS NOT NULL", name="url_or_note"),)

    id: Mapped[intpk]
    plan_id: Mapped[int] = mapped_column(ForeignKey("blended_plans.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(String(2000))
    note: Mapped[str | None] = mapped_column(String(2000))
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    added_at: Mapped[datetime]
