"""Safeguarding concerns (policies/000_*, 004_*). The holds a concern places on recordings live with the
recordings (server/recording/holds.py)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from server.db.base import Base, intpk


class ConcernCategory(enum.StrEnum):
    """The kinds of harm listed in policies/004_* (plus "other" and concerns about staff)."""

    NEGLECT = "neglect"
    EMOTIONAL_ABUSE = "emotional_abuse"
    PHYSICAL_ABUSE = "physical_abuse"
    SEXUAL_ABUSE = "sexual_abuse"
    SELF_HARM = "self_harm"
    SUBSTANCE_ABUSE = "substance_abuse"
    DOMESTIC_ABUSE = "domestic_abuse"
    FORCED_MARRIAGE = "forced_marriage"
    POOR_PARENTING = "poor_parenting"
    PEER_ON_PEER_ABUSE = "peer_on_peer_abuse"
    ONLINE_ABUSE = "online_abuse"
    UPSKIRTING = "upskirting"
    EXPLOITATION_TRAFFICKING = "exploitation_trafficking"
    RELATIONSHIP_ABUSE = "relationship_abuse"
    FABRICATED_ILLNESS = "fabricated_illness"
    BULLYING = "bullying"
    GENDER_BASED_VIOLENCE = "gender_based_violence"
    GANG_VIOLENCE = "gang_violence"
    FGM = "fgm"
    HATE_ABUSE = "hate_abuse"
    RADICALISATION = "radicalisation"
    SEXUAL_IMAGERY = "sexual_imagery"
    ALLEGATION_AGAINST_STAFF = "allegation_against_staff"
    HOME_VISIT_ISSUE = "home_visit_issue"
    OTHER = "other"


class Concern(Base):
    """A concern, raised by a member of staff, a parent (through a link) or a client."""

    __tablename__ = "concerns"

    id: Mapped[intpk]
    category: Mapped[str] = mapped_column(String(40))
    details: Mapped[str] = mapped_column(Text)
    raised_by: Mapped[str] = mapped_column(String(40))  # actor ref: "staff:3", "guardian:2", "client:4"
    raised_by_staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"), index=True)
    booking_id: Mapped[int | None] = mapped_column(ForeignKey("bookings.id"), index=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id"), index=True)
    raised_at: Mapped[datetime]
    discuss_by: Mapped[datetime] = mapped_column(index=True)
    discussed_at: Mapped[datetime | None]
    discussed_with_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    discussion_note: Mapped[str | None] = mapped_column(Text)
    escalated_at: Mapped[datetime | None]
