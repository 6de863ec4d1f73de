"""Bookings of remote sessions and who is invited to them.

Later issues add the face-to-face kinds (home and studio visits) as further ``BookingKind`` values.
"""

from __future__ import annotations

import enum
from datetime import date, datetime, timedelta

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.db.base import Base, intpk
from server.subjects import Subject


class BookingKind(enum.StrEnum):
    LIVE_VIDEO = "live_video"
    LIVE_AUDIO = "live_audio"
    # Face-to-face provision (policies/001_*); details in server.visits.models.Visit
    HOME_VISIT = "home_visit"
    STUDIO_VISIT = "studio_visit"
    SETTING_SESSION = "setting_session"

    @property
    def is_remote(self) -> bool:
        return self in (BookingKind.LIVE_VIDEO, BookingKind.LIVE_AUDIO)


class BookingStatus(enum.StrEnum):
    REQUESTED = "requested"  # a visit waiting for authorisation (policies/001_*, 003_*)
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


LIVE = (BookingStatus.CONFIRMED, BookingStatus.REQUESTED)  # still to take place (or waiting for a manager)


class InviteeRole(enum.StrEnum):
    GUARDIAN = "guardian"
    CLIENT = "client"  # an adult client joining in their own right


class Booking(Base):
    __tablename__ = "bookings"
    __table_args__ = (CheckConstraint("duration_minutes > 0", name="positive_duration"),)

    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(20))
    practitioner_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    starts_at: Mapped[datetime] = mapped_column(index=True)
    duration_minutes: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default=BookingStatus.CONFIRMED)
    music_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    sequence: Mapped[int] = mapped_column(default=0)  # bumped on every change, for calendar updates
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    created_at: Mapped[datetime]
    # A manager's agreement to evening work, for any kind of booking (server/bookings/evening.py)
    evening_agreed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    evening_agreed_at: Mapped[datetime | None]

    invitees: Mapped[list[BookingInvitee]] = relationship(
        back_populates="booking", lazy="selectin", cascade="all, delete-orphan"
    )

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def audio_only(self) -> bool:
        return self.kind == BookingKind.LIVE_AUDIO


class BookingInvitee(Base):
    """A guardian or an adult client asked to join a booking; each gets their own links."""

    __tablename__ = "booking_invitees"
    __table_args__ = (
        CheckConstraint(
            "(guardian_id IS NULL) <> (client_id IS NULL)", name="one_person"
        ),
    )

    id: Mapped[intpk]
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    guardian_id: Mapped[int | None] = mapped_column(ForeignKey("guardians.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"))

    booking: Mapped[Booking] = relationship(back_populates="invitees")

    @property
    def subject(self) -> Subject:
        if self.guardian_id is not None:
            return Subject.guardian(self.guardian_id)
        assert self.client_id is not None  # noqa: S101 - the one_person check constraint
        return Subject.client(self.client_id)


class SessionAttendance(Base):
    """Who was in a live session and when (policies/000_*: attendance records kept accurately).

    One row per booking and person (``subject``, e.g. ``guardian:3``), written by the session hub on every
    join and leave: the first join, the latest join and the latest leave. Present now: no leave since the
    latest join."""

    __tablename__ = "session_attendance"
    __table_args__ = (UniqueConstraint("booking_id", "subject"),)

    id: Mapped[intpk]
    booking_id: Mapped[int] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(40))
    role: Mapped[str] = mapped_column(String(20))  # host, participant or observer
    first_joined_at: Mapped[datetime]
    last_joined_at: Mapped[datetime]
    last_left_at: Mapped[datetime | None]

    @property
    def family(self) -> bool:
        """A guardian or the client, as opposed to staff."""
        return Subject(self.subject).is_family


class StaffUnavailability(Base):
    """A day a practitioner was unavailable for work: no evening sessions then without a manager (000)."""

    __tablename__ = "staff_unavailability"
    __table_args__ = (UniqueConstraint("staff_id", "day"),)

    id: Mapped[intpk]
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    day: Mapped[date]
    reason: Mapped[str] = mapped_column(String(500))
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("staff.id"))
    recorded_at: Mapped[datetime]
