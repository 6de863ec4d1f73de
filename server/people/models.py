"""Clients, guardians and who holds parental responsibility.

A client is a child or an adult by their age on the day of a session (``age_on``), never a stored flag.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.dates import age_on
from server.db.base import Base, intpk


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[intpk]
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    date_of_birth: Mapped[date]
    email: Mapped[str | None] = mapped_column(String(254))  # adult clients who receive their own links
    address: Mapped[str] = mapped_column(String(500), default="")
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    needs_one_to_one_support: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="approved")
    suspended_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    suspended_at: Mapped[datetime | None]
    suspended_reason: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]

    guardians: Mapped[list[GuardianLink]] = relationship(back_populates="client", lazy="selectin")

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}"

    def is_adult_on(self, day: date) -> bool:
        return age_on(self.date_of_birth, day) >= 18


class Guardian(Base):
    """A parent, carer or guardian; also a family unit for suspension purposes."""

    __tablename__ = "guardians"

    id: Mapped[intpk]
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    phone: Mapped[str] = mapped_column(String(40), default="")
    time_zone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    status: Mapped[str] = mapped_column(String(20), default="approved")
    suspended_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    suspended_at: Mapped[datetime | None]
    suspended_reason: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]

    links: Mapped[list[GuardianLink]] = relationship(back_populates="guardian", lazy="selectin")


class GuardianLink(Base):
    """A guardian's relation to a client: parental responsibility and account holding are separate facts."""

    __tablename__ = "guardian_links"
    __table_args__ = (UniqueConstraint("client_id", "guardian_id"),)

    id: Mapped[intpk]
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    guardian_id: Mapped[int] = mapped_column(ForeignKey("guardians.id", ondelete="CASCADE"), index=True)
    relationship_label: Mapped[str] = mapped_column(String(60), default="parent")
    parental_responsibility: Mapped[bool] = mapped_column(Boolean, default=True)
    account_holder: Mapped[bool] = mapped_column(Boolean, default=False)

    client: Mapped[Client] = relationship(back_populates="guardians", lazy="selectin")
    guardian: Mapped[Guardian] = relationship(back_populates="links", lazy="selectin")
